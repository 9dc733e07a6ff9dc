package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/profileledger/profileledger/investigate"
)

const logDescription = `
Prints a profile's events, one line each: sequence, time the server stored
it, type, session (and node, for a session start), who and why (the
caller's metadata), how (trade, message, rollback, mutation) and a compact
summary of its ops ("/coins +50", "/items/- add \"sword#91\"").

-from and -to take a version or an RFC 3339 time; -type keeps events of
the given types (comma-separated); -path keeps events whose ops touch a
JSON pointer prefix. -follow keeps printing new events as they are
appended, until Ctrl-C (or -timeout, if given). -json prints one JSON
object a line.`

func (m *Main) runLog(ctx context.Context, args []string) int {
	fs := m.newFlagSet("log", "[flags] <store> <key>", logDescription)
	nf := addNATSFlags(fs, time.Minute)
	asJSON := fs.Bool("json", false, "print one JSON object per event (JSON Lines)")
	from := fs.String("from", "", "first `version or time` (RFC 3339)")
	to := fs.String("to", "", "last `version or time` (RFC 3339)")
	types := fs.String("type", "", "only events of these `types`, comma-separated")
	path := fs.String("path", "", "only events touching this JSON `pointer` prefix")
	follow := fs.Bool("follow", false, "keep printing new events until Ctrl-C (or -timeout, if given)")
	interval := fs.Duration("interval", 500*time.Millisecond, "with -follow, how often to look for new events")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return m.usageError(fs, "want a store and a key, got %d arguments", len(pos))
	}
	if err := nf.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	var f investigate.LogFilter
	for _, b := range []struct {
		s       string
		version *uint64
		time    *time.Time
	}{{*from, &f.FromVersion, &f.Since}, {*to, &f.ToVersion, &f.Until}} {
		if b.s == "" {
			continue
		}
		p, err := investigate.ParsePoint(b.s)
		if err != nil {
			return m.usageError(fs, "%v", err)
		}
		*b.version, *b.time = p.Version, p.Time
	}
	if *types != "" {
		f.Types = strings.Split(*types, ",")
	}
	if *path != "" && !strings.HasPrefix(*path, "/") {
		return m.usageError(fs, "-path %q: a JSON pointer starts with /", *path)
	}
	f.Path = *path
	store, key := pos[0], pos[1]
	timeoutSet := false
	fs.Visit(func(f *flag.Flag) { timeoutSet = timeoutSet || f.Name == "timeout" })
	if !*follow || timeoutSet { // -follow runs until Ctrl-C unless -timeout says otherwise
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, nf.timeout)
		defer cancel()
	}
	iv, err := openInvestigation(ctx, nf, "log", store)
	if err != nil {
		return m.fail("log", err)
	}
	defer iv.close()

	out, done := m.humanOut()
	defer done()
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	enc := json.NewEncoder(m.stdout)
	n := 0
	print := func(e investigate.Entry) error {
		n++
		if *asJSON {
			return enc.Encode(e)
		}
		if n == 1 {
			fmt.Fprintln(tw, "SEQ\tSTORED (UTC)\tTYPE\tSESSION/EPOCH\tWHO/WHY\tOPS")
		}
		seq := strconv.FormatUint(e.Seq, 10)
		if e.Index > 0 {
			seq += "." + strconv.Itoa(e.Index)
		}
		if e.Bad != "" {
			fmt.Fprintf(tw, "%s\t%s\t(not an event)\t-\t-\t%s\n", seq, fmtTime(e.Stored), e.Bad)
		} else {
			what := e.Summary
			switch {
			case strings.HasPrefix(e.How, "mutation "):
			case what == "-":
				what = e.How
			default:
				what = e.How + ": " + what
			}
			sess := shortID(e.Session) + "/" + strconv.FormatUint(e.Epoch, 10)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", seq, fmtTime(e.Stored), e.Type, sess, clip(whoWhy(e.Meta), 48), what)
		}
		if *follow {
			return tw.Flush()
		}
		return nil
	}
	if *follow {
		err = investigate.Follow(ctx, iv.src, key, f, *interval, print)
	} else {
		for e, lerr := range investigate.Log(ctx, iv.src, key, f) {
			if lerr != nil {
				err = lerr
				break
			}
			if err = print(e); err != nil {
				break
			}
		}
	}
	tw.Flush()
	if err != nil {
		return m.fail("log", err)
	}
	if n == 0 && !*asJSON {
		fmt.Fprintf(m.stderr, "profileledger log: no events of %q in store %s match\n", key, store)
	}
	return exitOK
}
