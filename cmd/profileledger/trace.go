package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/profileledger/profileledger/investigate"
)

const traceDescription = `
Follows a value (an item id, say) through the whole store: every profile
that holds it or ever held it, and for each, when it arrived and how (a
trade with whom, a message, a rollback, or a plain mutation of what type)
and when it left. A value live in two profiles at once (or twice in one)
is flagged DUPE, and the event that duplicated it is marked: the arrival
that came from no one who gave it up.

The value is matched as a string, or as JSON if it is JSON (42, true).
-path restricts where to look, with * for any member or element
(/inventory/*/id); by default it is looked for anywhere in the data. The
scan reads every profile's log, with progress on standard error.`

func (m *Main) runTrace(ctx context.Context, args []string) int {
	fs := m.newFlagSet("trace", "[flags] <store> <value>", traceDescription)
	nf := addNATSFlags(fs, time.Hour)
	asJSON := fs.Bool("json", false, "print the trace as one JSON object")
	path := fs.String("path", "", "only look at locations matching this `pattern` (e.g. /inventory/*/id)")
	quiet := fs.Bool("quiet", false, "no progress on standard error")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return m.usageError(fs, "want a store and a value, got %d arguments", len(pos))
	}
	if err := nf.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	pattern, err := investigate.ParsePattern(*path)
	if err != nil {
		return m.usageError(fs, "-path: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	iv, err := openInvestigation(ctx, nf, "trace", pos[0])
	if err != nil {
		return m.fail("trace", err)
	}
	defer iv.close()
	var opts []investigate.ScanOption
	if !*quiet {
		fn, done := progress(m.stderr, "trace")
		defer done()
		opts = append(opts, investigate.WithProgress(fn))
	}
	t, err := investigate.Trace(ctx, iv.src, pos[1], pattern, opts...)
	if err != nil {
		return m.fail("trace", err)
	}
	if *asJSON {
		writeJSON(m.stdout, t)
		return exitOK
	}
	out, done := m.humanOut()
	defer done()
	printTrace(out, painter(isTerminal(m.stdout)), t)
	return exitOK
}

// printTrace prints a value's holders and its timeline.
func printTrace(w io.Writer, p painter, t investigate.TraceResult) {
	state := fmt.Sprintf("live %d time(s)", t.Live)
	if t.Dupe {
		state = p.red("DUPE: " + state)
	}
	fmt.Fprintf(w, "value %s: %d profile(s) hold or held it; %s\n", t.Value, len(t.Holders), state)
	for _, h := range t.Holders {
		now := "gone"
		if h.Count > 0 {
			now = fmt.Sprintf("holds it at %s", strings.Join(h.Paths, ", "))
		}
		fmt.Fprintf(w, "\n%q: %s\n", h.Key, now)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  \tSEQ\tSTORED (UTC)\tHOW\tWHO/WHY")
		for _, mv := range h.Moves {
			mark := ""
			if mv.Duplicated {
				mark = "\n  " + p.red("^ DUPLICATED here: also held by "+strings.Join(quoteAll(mv.DupedFrom), ", ")+"; event "+mv.EventID)
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s%s\n", mv.Kind, mv.Seq, fmtTime(mv.Stored), mv.How, whoWhy(mv.Meta), mark)
		}
		tw.Flush()
	}
	if origins := t.Origins(); len(origins) > 0 {
		fmt.Fprintln(w, "\norigin of the dupe:")
		for _, o := range origins {
			if o.Suspect != "" {
				fmt.Fprintf(w, "  %s\n", p.yellow("suspect: "+o.Suspect))
			}
			fmt.Fprintf(w, "  profile %q, seq %d: %s\n    event %s\n    session %s, epoch %d\n    stored %s, writer's clock %s\n",
				o.Key, o.Seq, o.How, o.EventID, o.Session, o.Epoch, o.Stored.UTC().Format(time.RFC3339Nano), o.Time.UTC().Format(time.RFC3339Nano))
		}
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
