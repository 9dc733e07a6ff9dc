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

const diffDescription = `
Prints what changed in a profile's data between two points, each a
version or an RFC 3339 time: the ops that turn the data at <A> into the
data at <B>, and a side-by-side of the changed paths, before and after.`

func (m *Main) runDiff(ctx context.Context, args []string) int {
	fs := m.newFlagSet("diff", "[flags] <store> <key> <A> <B>", diffDescription)
	nf := addNATSFlags(fs, time.Minute)
	asJSON := fs.Bool("json", false, "print the diff as one JSON object")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 4 {
		return m.usageError(fs, "want a store, a key and two versions or times, got %d arguments", len(pos))
	}
	if err := nf.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	a, err := investigate.ParsePoint(pos[2])
	if err != nil {
		return m.usageError(fs, "<A>: %v", err)
	}
	b, err := investigate.ParsePoint(pos[3])
	if err != nil {
		return m.usageError(fs, "<B>: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	iv, err := openInvestigation(ctx, nf, "diff", pos[0])
	if err != nil {
		return m.fail("diff", err)
	}
	defer iv.close()
	d, err := investigate.Diff(ctx, iv.src, pos[1], a, b)
	if err != nil {
		return m.fail("diff", err)
	}
	if *asJSON {
		writeJSON(m.stdout, d)
		return exitOK
	}
	out, done := m.humanOut()
	defer done()
	printDiff(out, d)
	return exitOK
}

// printDiff prints a diff's ops and its side-by-side.
func printDiff(w io.Writer, d investigate.DiffResult) {
	fmt.Fprintf(w, "profile %q, version %d -> %d: %d change(s)\n", d.Key, d.FromVersion, d.ToVersion, len(d.Ops))
	if len(d.Ops) == 0 {
		return
	}
	fmt.Fprintln(w, "\nops:")
	for _, o := range d.Ops {
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %s %s %s", o.Op, o.Path, o.Value), " "))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "PATH\tAT %d\tAT %d\n", d.FromVersion, d.ToVersion)
	for _, c := range d.Changes {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Path, clip(rawOr(c.Before), 30), clip(rawOr(c.After), 30))
	}
	tw.Flush()
}

// clip shortens s to n runes for a table cell.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
