package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/profileledger/profileledger/investigate"
	"github.com/profileledger/profileledger/web"
)

const dupesDescription = `
Scans every profile's current data for values at the locations -path
matches (* is any member or element: /inventory/*/id, /inventory/*) that
are held in more than one profile, or twice in one, and prints the trace
of each: who holds it, how it got there, and the event that duplicated it.

Exits 1 if any dupe is found (or the scan fails), 0 if none: a check to
run from cron. Progress goes to standard error; Ctrl-C stops the scan.

With -ui, the base URL of a "profileledger ui" server for the same store
(e.g. http://127.0.0.1:8428), each dupe is followed by the URL of its item
page: its trace drawn as a graph, to paste into a ticket.`

func (m *Main) runDupes(ctx context.Context, args []string) int {
	fs := m.newFlagSet("dupes", "[flags] <store> -path <pattern>", dupesDescription)
	nf := addNATSFlags(fs, time.Hour)
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	path := fs.String("path", "", "where the values are, with * for any member or element (`pattern`, required)")
	quiet := fs.Bool("quiet", false, "no progress on standard error")
	ui := fs.String("ui", "", "print each dupe's web page on the profileledger ui server at this base `URL`")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return m.usageError(fs, "want one store, got %d arguments", len(pos))
	}
	if *path == "" {
		return m.usageError(fs, "-path is required (e.g. -path '/inventory/*/id')")
	}
	if err := nf.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	pattern, err := investigate.ParsePattern(*path)
	if err != nil {
		return m.usageError(fs, "-path: %v", err)
	}
	if *ui != "" {
		if _, err := web.Link(*ui, "/"); err != nil {
			return m.usageError(fs, "-ui: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	iv, err := openInvestigation(ctx, nf, "dupes", pos[0])
	if err != nil {
		return m.fail("dupes", err)
	}
	defer iv.close()
	var opts []investigate.ScanOption
	if !*quiet {
		fn, done := progress(m.stderr, "dupes")
		defer done()
		opts = append(opts, investigate.WithProgress(fn))
	}
	rep, err := investigate.Dupes(ctx, iv.src, pattern, opts...)
	if err != nil {
		return m.fail("dupes", err)
	}
	if *asJSON {
		writeJSON(m.stdout, rep)
	} else {
		p := painter(isTerminal(m.stdout))
		out, done := m.humanOut()
		defer done()
		summary := fmt.Sprintf("%d dupe(s) found", len(rep.Dupes))
		if len(rep.Dupes) > 0 {
			summary = p.red(summary)
		} else {
			summary = p.green(summary)
		}
		fmt.Fprintf(out, "store %s, %s: %d profiles, %d values; %s\n", pos[0], rep.Pattern, rep.Profiles, rep.Values, summary)
		for _, d := range rep.Dupes {
			at := make([]string, len(d.At))
			for i, l := range d.At {
				at[i] = fmt.Sprintf("%q %s", l.Key, l.Path)
			}
			fmt.Fprintf(out, "\n== %s at %s\n", d.Value, strings.Join(at, "; "))
			if *ui != "" {
				link, _ := web.Link(*ui, web.ItemURL(web.ValueText(d.Value), rep.Pattern))
				fmt.Fprintf(out, "web: %s\n", link)
			}
			printTrace(out, p, d.Trace)
		}
	}
	if len(rep.Dupes) > 0 {
		return exitFail
	}
	return exitOK
}
