package main

import (
	"context"
	"fmt"
	"time"

	"github.com/profileledger/profileledger/investigate"
)

const exportDescription = `
Writes every event of a store to standard output as JSON Lines, one event
a line: {"key", "seq", "index", "stored", "event"} (a message on a
profile's subject that is not an event has "bad" instead of "event"), in
the order the server stored them, through the last event stored when the
export began. It streams.

-key exports one profile; -from skips events stored before a time. To
resume an export, pass -after-seq the "seq" of the last line you have:
sequences are the store's stream sequences, shared by every profile and
growing in the order stored, so one number is the whole cursor. The
cursor to resume from is printed on standard error at the end (also after
Ctrl-C).`

func (m *Main) runExport(ctx context.Context, args []string) int {
	fs := m.newFlagSet("export", "[flags] <store>", exportDescription)
	nf := addNATSFlags(fs, 24*time.Hour)
	key := fs.String("key", "", "export this profile `key` only")
	from := fs.String("from", "", "skip events stored before this `time` (RFC 3339)")
	after := fs.Uint64("after-seq", 0, "resume: only events with a sequence above this `cursor`")
	fs.Bool("json", true, "the output is always JSON Lines (accepted for symmetry)")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return m.usageError(fs, "want one store, got %d arguments", len(pos))
	}
	if err := nf.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	o := investigate.ExportOptions{Key: *key, AfterSeq: *after}
	if *from != "" {
		t, err := time.Parse(time.RFC3339Nano, *from)
		if err != nil {
			return m.usageError(fs, "-from %q: %v", *from, err)
		}
		o.Since = t
	}
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	nc, js, err := nf.connect("export")
	if err != nil {
		return m.fail("export", err)
	}
	defer nc.Close()
	res, err := investigate.Export(ctx, js, pos[0], m.stdout, o)
	cursor := res.LastSeq
	if cursor == 0 {
		cursor = *after
	}
	fmt.Fprintf(m.stderr, "profileledger export: %d event(s); resume with -after-seq %d\n", res.Events, cursor)
	if err != nil {
		return m.fail("export", err)
	}
	return exitOK
}
