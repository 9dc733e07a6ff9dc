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

Every profile's messages must form one hash chain (each names the one
before it by sequence and sha256): a deleted, altered, inserted or
reordered message is reported at the sequence where the chain breaks.

-digest prints the store's digest as JSON on stdout (every profile's chain
head and a Merkle root over them; violations and the summary go to
stderr): keep it elsewhere. -verify-digest FILE audits the store and also
checks that every head the digest recorded is still in the log with the
same hash, so that nothing before it changed since.

Prints one line per violation and a summary; exits 1 if there is any
violation (or the store cannot be read), 0 if the store is clean. A store
in use may be audited; profiles created during the audit are left out.`

// auditOutput is the -json output: the report, and the error that cut the
// audit short, if any (the report then covers the profiles read until then).
type auditOutput struct {
	*audit.Report
	Digest *audit.Digest `json:"digest,omitempty"`
	Error  string        `json:"error,omitempty"`
}

func (m *Main) runAudit(ctx context.Context, args []string) int {
	fs := m.newFlagSet("audit", "[connection flags] [-json] [-progress N] [-digest | -verify-digest FILE] <store>", auditDescription)
	nf := addNATSFlags(fs, time.Hour)
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	every := fs.Int("progress", 0, "print progress to stderr every `N` profiles (0: never)")
	takeDigest := fs.Bool("digest", false, "print the store's digest (chain heads and their Merkle root) as JSON on stdout")
	verifyFile := fs.String("verify-digest", "", "check the store against the digest in `FILE` (as -digest printed it)")
	expectRoot := fs.String("expect-root", "", "with -verify-digest: the digest's Merkle `root` as kept elsewhere; a digest file with another root is refused")
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
	if *takeDigest && *verifyFile != "" {
		return m.usageError(fs, "-digest and -verify-digest: one at a time")
	}
	store := stores[0]
	var kept *audit.Digest
	if *verifyFile != "" {
		var err error
		if kept, err = audit.ReadDigest(*verifyFile); err != nil {
			return m.usageError(fs, "-verify-digest: %v", err)
		}
		if kept.Store != store {
			return m.usageError(fs, "-verify-digest: %s is a digest of store %q, not %q", *verifyFile, kept.Store, store)
		}
		if *expectRoot != "" && *expectRoot != kept.Root {
			fmt.Fprintf(m.stderr, "profileledger audit: %s has root %s, not the %s kept elsewhere: the file was changed\n", *verifyFile, kept.Root, *expectRoot)
			return exitFail
		}
	} else if *expectRoot != "" {
		return m.usageError(fs, "-expect-root goes with -verify-digest")
	}
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
	var rep *audit.Report
	var digest *audit.Digest
	switch {
	case *takeDigest:
		digest, rep, err = audit.TakeDigest(ctx, js, store, opts...)
	case kept != nil:
		rep, err = audit.VerifyDigest(ctx, js, kept, opts...)
	default:
		rep, err = audit.Store(ctx, js, store, opts...)
	}
	if errors.Is(err, audit.ErrInvalidStore) {
		return m.usageError(fs, "%v", err)
	}
	text := m.stdout
	if *takeDigest {
		text = m.stderr // stdout holds the digest alone
	}

	if *asJSON {
		out := auditOutput{Report: rep, Digest: digest}
		if err != nil {
			out.Error = err.Error()
		}
		enc := json.NewEncoder(m.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	} else {
		for _, v := range rep.Violations {
			fmt.Fprintln(text, v)
		}
		if digest != nil {
			enc := json.NewEncoder(m.stdout)
			enc.SetIndent("", "  ")
			enc.Encode(digest)
		}
	}
	if !*asJSON && err == nil {
		fmt.Fprintf(text, "store %s: %d profiles, %d events, %d snapshots, %d violations (%s)\n",
			store, rep.Profiles, rep.Events, rep.Snapshots, len(rep.Violations), time.Since(start).Round(time.Millisecond))
		switch {
		case digest != nil:
			fmt.Fprintf(text, "digest: root %s over %d profile heads\n", digest.Root, len(digest.Heads))
		case kept != nil && rep.Clean():
			fmt.Fprintf(text, "digest of %s (root %s): all %d recorded heads are in the log, unchanged\n", kept.Time.Format(time.RFC3339), kept.Root, len(kept.Heads))
		}
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
