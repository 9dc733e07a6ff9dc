package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/profileledger/profileledger/internal/keys"
)

const infoDescription = `
Shows what the profile <key> of <store> is and who holds it, without taking
it (Store.Info; ProfileStore's KeyInfo, Session and SessionLoadCount): its
version (the sequence of its last event), epoch (how many sessions it has
had), the node and session holding it now, its user ids, how many inbox
messages wait to be handled, when it was created (since its last erasure)
and last changed, and how many migration steps it has had.

A profile that has no events (or only an erasure's tombstone) says
"exists: no".`

// infoOutput is info's -json output.
type infoOutput struct {
	Store           string     `json:"store"`
	Key             string     `json:"key"`
	Exists          bool       `json:"exists"`
	Version         uint64     `json:"version"`
	Epoch           uint64     `json:"epoch"`
	Holder          string     `json:"holder"` // "" if free
	HolderSession   string     `json:"holder_session,omitempty"`
	HolderSince     *time.Time `json:"holder_since,omitempty"`
	UserIDs         []string   `json:"user_ids"`
	PendingMessages int        `json:"pending_messages"`
	Created         *time.Time `json:"created,omitempty"`
	Updated         *time.Time `json:"updated,omitempty"`
	Migrations      int        `json:"migrations"`
}

func (m *Main) runInfo(ctx context.Context, args []string) int {
	fs := m.newFlagSet("info", "[flags] <store> <key>", infoDescription)
	conn := addNATSFlags(fs, 30*time.Second)
	asJSON := fs.Bool("json", false, "print the profile's info as one JSON object")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return m.usageError(fs, "want a store and a key, got %d arguments", len(pos))
	}
	store, key := pos[0], pos[1]
	if _, err := keys.Encode(key); err != nil {
		return m.usageError(fs, "key %q: %v", key, err)
	}
	if err := conn.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}

	ctx, cancel := context.WithTimeout(ctx, conn.timeout)
	defer cancel()
	nc, js, err := conn.connect("info")
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger info: %v\n", err)
		return exitFail
	}
	defer nc.Close()
	st, err := openCLIStore(ctx, js, store, "profileledger-info")
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger info: %v\n", err)
		return exitFail
	}
	defer closeCLIStore(st)
	info, err := st.Info(ctx, key)
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger info: %v\n", err)
		return exitFail
	}

	out := infoOutput{
		Store: store, Key: info.Key, Exists: info.Exists, Version: info.Version, Epoch: info.Epoch,
		Holder: info.Holder, HolderSession: info.HolderSession, HolderSince: timeOrNil(info.HolderSince),
		UserIDs: info.UserIDs, PendingMessages: info.PendingMessages,
		Created: timeOrNil(info.Created), Updated: timeOrNil(info.Updated), Migrations: info.Migrations,
	}
	if out.UserIDs == nil {
		out.UserIDs = []string{}
	}
	if *asJSON {
		enc := json.NewEncoder(m.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return exitOK
	}
	printInfo(m.stdout, out)
	return exitOK
}

// printInfo prints out as aligned "field  value" lines.
func printInfo(w io.Writer, out infoOutput) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(field, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", field, fmt.Sprintf(format, args...))
	}
	row("store", "%s", out.Store)
	row("key", "%q", out.Key)
	row("exists", "%s", yesNo(out.Exists))
	row("version", "%d", out.Version)
	row("epoch", "%d (sessions so far)", out.Epoch)
	switch {
	case out.Holder == "":
		row("holder", "none")
	case out.HolderSince != nil:
		row("holder", "%s (session %s, since %s)", out.Holder, out.HolderSession, formatTime(*out.HolderSince))
	default:
		row("holder", "%s (session %s, starting)", out.Holder, out.HolderSession)
	}
	ids := "none"
	if len(out.UserIDs) > 0 {
		ids = strings.Join(out.UserIDs, ", ")
	}
	row("user ids", "%s", ids)
	row("pending messages", "%d", out.PendingMessages)
	row("created", "%s", formatTimePtr(out.Created))
	row("updated", "%s", formatTimePtr(out.Updated))
	row("migrations", "%d", out.Migrations)
	tw.Flush()
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func formatTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return formatTime(*t)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
