package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/profileledger/profileledger/audit"
)

const auditDescription = `
Audits every profile of a store: each log against the invariants (every
message an event, event ids unique, epochs never decreasing, each epoch
opened by its session.started — or, first in the log, by an erasure's
tombstone — and written by one session, nothing after session.ended or the
tombstone, every event folding, every inbox message handled at most once
and in inbox order, every handled message one of this profile's inbox or
since removed from the stream), and every stored snapshot, each revision
of the bucket's history, against the log (intact, under its own key, not
beyond the log, equal to the fold of the log up to its version).

Prints one line per violation and a summary; exits 1 if there is any
violation (or the store cannot be read), 0 if the store is clean. A store
in use may be audited; profiles created during the audit are left out.`

// auditOutput is the -json output: the report, and the error that cut the
// audit short, if any (the report then covers the profiles read until then).
type auditOutput struct {
	*audit.Report
	Error string `json:"error,omitempty"`
}

func (m *Main) runAudit(ctx context.Context, args []string) int {
	fs := m.newFlagSet("audit", "[connection flags] [-json] [-progress N] <store>", auditDescription)
	nf := addNATSFlags(fs, time.Hour)
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	every := fs.Int("progress", 0, "print progress to stderr every `N` profiles (0: never)")
	stores, code, ok := m.parseArgs(fs, args) // flags may come before or after the store name
	if !ok {
		return code
	}
	if len(stores) != 1 {
		return m.usageError(fs, "want one store, got %d arguments", len(stores))
	}
	if *every < 0 {
		return m.usageError(fs, "-progress %d: must be 0 (never) or more", *every)
	}
	if err := nf.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	store := stores[0]
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	nc, js, err := nf.connect("audit")
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger audit: %v\n", err)
		return exitFail
	}
	defer nc.Close()
	var opts []audit.Option
	if *every > 0 {
		opts = append(opts, audit.WithProgress(*every, func(p audit.Progress) {
			fmt.Fprintf(m.stderr, "profileledger audit: %d/%d profiles, %d events, %d snapshots, %d violations\n",
				p.Profiles, p.Total, p.Events, p.Snapshots, p.Violations)
		}))
	}
	start := time.Now()
	rep, err := audit.Store(ctx, js, store, opts...)
	if errors.Is(err, audit.ErrInvalidStore) {
		return m.usageError(fs, "%v", err)
	}

	if *asJSON {
		out := auditOutput{Report: rep}
		if err != nil {
			out.Error = err.Error()
		}
		enc := json.NewEncoder(m.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	} else {
		for _, v := range rep.Violations {
			fmt.Fprintln(m.stdout, v)
		}
	}
	if !*asJSON && err == nil {
		fmt.Fprintf(m.stdout, "store %s: %d profiles, %d events, %d snapshots, %d violations (%s)\n",
			store, rep.Profiles, rep.Events, rep.Snapshots, len(rep.Violations), time.Since(start).Round(time.Millisecond))
	}
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger audit: %v (the report covers the profiles read until then)\n", err)
		return exitFail
	}
	if !rep.Clean() {
		return exitFail
	}
	return exitOK
}
