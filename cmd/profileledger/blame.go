package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/profileledger/profileledger/investigate"
)

const blameDescription = `
Prints every event that changed the value at a JSON pointer in a profile's
data: its sequence, when, the value before and after, who and why, and how
(trade, message, rollback, mutation). When the value is an array, each of
its elements follows, with the event that put it there.`

func (m *Main) runBlame(ctx context.Context, args []string) int {
	fs := m.newFlagSet("blame", "[flags] <store> <key> <pointer>", blameDescription)
	nf := addNATSFlags(fs, time.Minute)
	asJSON := fs.Bool("json", false, "print the blame as one JSON object")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 3 {
		return m.usageError(fs, "want a store, a key and a JSON pointer, got %d arguments", len(pos))
	}
	if err := nf.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	if ptr := pos[2]; ptr != "" && !strings.HasPrefix(ptr, "/") {
		return m.usageError(fs, "pointer %q: a JSON pointer starts with /", ptr)
	}
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	iv, err := openInvestigation(ctx, nf, "blame", pos[0])
	if err != nil {
		return m.fail("blame", err)
	}
	defer iv.close()
	b, err := investigate.Blame(ctx, iv.src, pos[1], pos[2])
	if err != nil {
		return m.fail("blame", err)
	}
	if *asJSON {
		writeJSON(m.stdout, b)
		return exitOK
	}
	out, done := m.humanOut()
	defer done()
	fmt.Fprintf(out, "%s of profile %q: changed by %d event(s)\n\n", b.Path, b.Key, len(b.Changes))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tSTORED (UTC)\tBEFORE -> AFTER\tWHO/WHY\tHOW")
	for _, c := range b.Changes {
		fmt.Fprintf(tw, "%d\t%s\t%s -> %s\t%s\t%s\n", c.Seq, fmtTime(c.Stored), clip(rawOr(c.Before), 24), clip(rawOr(c.After), 24), clip(whoWhy(c.Meta), 32), c.How)
	}
	tw.Flush()
	if len(b.Elements) > 0 {
		fmt.Fprintf(out, "\nelements now:\n\n")
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "INDEX\tVALUE\tSEQ\tSTORED (UTC)\tWHO/WHY\tHOW")
		for _, e := range b.Elements {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", strconv.Itoa(e.Index), clip(string(e.Value), 30), e.Seq, fmtTime(e.Stored), clip(whoWhy(e.Meta), 32), e.How)
		}
		tw.Flush()
	}
	return exitOK
}
