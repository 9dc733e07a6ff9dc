package main

import (
	"context"
	"fmt"
	"os/user"
	"strconv"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/investigate"
)

const rollbackDescription = `
Rolls a profile's data back to what it was at <version>, through the
library (Session.Rollback): one "pl.rollback" event, with who (-actor) and
why (-reason, required). Nothing before it is rewritten. The profile's
holder, if any, is asked to hand over first.

Rollback prints the diff it will apply and asks first: it reads one line
from standard input and rolls back only if that line is "yes". -yes skips
the question. Rolling back past a trade undoes this side only (see trades).`

// rollbackOutput is rollback's -json output.
type rollbackOutput struct {
	Store      string                 `json:"store"`
	Key        string                 `json:"key"`
	To         uint64                 `json:"to"`
	NewVersion uint64                 `json:"new_version"`
	Diff       investigate.DiffResult `json:"diff"`
}

func (m *Main) runRollback(ctx context.Context, args []string) int {
	fs := m.newFlagSet("rollback", "[flags] <store> <key> <version> -reason R", rollbackDescription)
	nf := addNATSFlags(fs, time.Minute)
	asJSON := fs.Bool("json", false, "print what was done as one JSON object")
	reason := fs.String("reason", "", "why, recorded in the event (required)")
	actor := fs.String("actor", "", "who, recorded in the event (default: this OS user's name)")
	yes := fs.Bool("yes", false, "roll back without asking")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 3 {
		return m.usageError(fs, "want a store, a key and a version, got %d arguments", len(pos))
	}
	version, err := strconv.ParseUint(pos[2], 10, 64)
	if err != nil || version == 0 {
		return m.usageError(fs, "version %q: want a positive number", pos[2])
	}
	if *reason == "" {
		return m.usageError(fs, "-reason is required")
	}
	if err := nf.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	if *actor == "" {
		if u, err := user.Current(); err == nil {
			*actor = u.Username
		}
	}
	store, key := pos[0], pos[1]
	octx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	iv, err := openInvestigation(octx, nf, "rollback", store)
	if err != nil {
		return m.fail("rollback", err)
	}
	defer iv.close()
	info, err := iv.st.Info(octx, key)
	if err != nil {
		return m.fail("rollback", err)
	}
	if version > info.Version {
		return m.fail("rollback", fmt.Errorf("profile %q is at version %d; cannot roll back to %d", key, info.Version, version))
	}
	d, err := investigate.Diff(octx, iv.src, key, investigate.Point{Version: info.Version}, investigate.Point{Version: version})
	if err != nil {
		return m.fail("rollback", err)
	}
	printDiff(m.stderr, d)
	if !*yes {
		q := fmt.Sprintf("\nAbout to roll profile %q of store %s back to version %d (it is at %d), applying the changes above.\nType \"yes\" to roll back: ", key, store, version, info.Version)
		if !m.confirm(ctx, q) {
			fmt.Fprintln(m.stderr, "profileledger rollback: not confirmed; nothing was changed")
			return exitFail
		}
	}
	meta := map[string]string{}
	if *actor != "" {
		meta[profileledger.MetaActor] = *actor
	}
	rctx, rcancel := context.WithTimeout(profileledger.WithMeta(ctx, meta), nf.timeout)
	defer rcancel()
	sess, err := iv.st.StartSession(rctx, key)
	if err != nil {
		return m.fail("rollback", err)
	}
	err = sess.Rollback(rctx, version, *reason)
	now := sess.Version()
	if eerr := sess.End(rctx); err == nil {
		err = eerr
	}
	if err != nil {
		return m.fail("rollback", err)
	}
	if *asJSON {
		writeJSON(m.stdout, rollbackOutput{Store: store, Key: key, To: version, NewVersion: now, Diff: d})
	} else {
		fmt.Fprintf(m.stdout, "rolled profile %q of store %s back to version %d: the rollback is version %d\n", key, store, version, now)
	}
	return exitOK
}
