package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/keys"
)

const eraseDescription = `
Erases the profile <key> of <store> for good (Store.Erase; GDPR's right to
erasure), or with -user every profile linked to that user id
(Store.EraseUser, which finds them in the store's user-id index). A live
holder is asked to hand over first (a silent one is waited out, up to the
lease's TTL); then the profile's events, inbox, snapshots and user-id links
are removed, and one "pl.erased" tombstone is left, with no personal data:
when, this node, and -actor and -reason. Afterwards the profile is new, and
a session that held it elsewhere ends as lost. Erasing again is harmless.

Erase asks first: it prints what it is about to erase on standard error
and reads one line from standard input, and erases only if that line is
"yes". Anything else, or no input at all (a script, cron), erases nothing
and exits 1. -yes skips the question. So a script must say -yes (or pipe
"yes" in) to erase anything.`

// eraseOutput is erase's -json output.
type eraseOutput struct {
	Store  string   `json:"store"`
	UserID string   `json:"user_id,omitempty"`
	Erased []string `json:"erased"` // the profile keys erased
}

func (m *Main) runErase(ctx context.Context, args []string) int {
	fs := m.newFlagSet("erase", "[flags] <store> (<key> | -user <id>)", eraseDescription)
	conn := addNATSFlags(fs, 30*time.Second)
	asJSON := fs.Bool("json", false, "print what was erased as one JSON object")
	userID := fs.String("user", "", "erase every profile linked to this user `id` instead of one key")
	yes := fs.Bool("yes", false, "erase without asking")
	reason := fs.String("reason", "", "why, recorded in the tombstone (e.g. a ticket)")
	actor := fs.String("actor", "", "who, recorded in the tombstone (default: this OS user's name)")
	pos, code, ok := m.parseArgs(fs, args)
	if !ok {
		return code
	}
	var store, key string
	switch {
	case *userID == "" && len(pos) == 2:
		store, key = pos[0], pos[1]
		if _, err := keys.Encode(key); err != nil {
			return m.usageError(fs, "key %q: %v", key, err)
		}
	case *userID != "" && len(pos) == 1:
		store = pos[0]
	case *userID != "":
		return m.usageError(fs, "with -user, want a store only, got %d arguments", len(pos))
	default:
		return m.usageError(fs, "want a store and a key (or a store and -user), got %d arguments", len(pos))
	}
	if err := conn.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	meta := map[string]string{}
	if *actor == "" {
		if u, err := user.Current(); err == nil {
			*actor = u.Username
		}
	}
	if *actor != "" {
		meta[profileledger.MetaActor] = *actor
	}
	if *reason != "" {
		meta[profileledger.MetaReason] = *reason
	}

	nc, js, err := conn.connect("erase")
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger erase: %v\n", err)
		return exitFail
	}
	defer nc.Close()
	octx, cancel := context.WithTimeout(ctx, conn.timeout)
	defer cancel()
	st, err := openCLIStore(octx, js, store, "profileledger-erase")
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger erase: %v\n", err)
		return exitFail
	}
	defer closeCLIStore(st)

	if !*yes {
		what := fmt.Sprintf("every profile of store %s linked to user id %q", store, *userID)
		if key != "" {
			info, err := st.Info(octx, key)
			if err != nil {
				fmt.Fprintf(m.stderr, "profileledger erase: %v\n", err)
				return exitFail
			}
			what = describeForErase(store, info)
		}
		if !m.confirm(ctx, fmt.Sprintf("About to erase %s, for good: events, inbox, snapshots and user-id links.\nType \"yes\" to erase: ", what)) {
			fmt.Fprintln(m.stderr, "profileledger erase: not confirmed; nothing was erased")
			return exitFail
		}
	}

	// The erasure gets its own time: the question may have taken a while.
	ectx, ecancel := context.WithTimeout(profileledger.WithMeta(ctx, meta), conn.timeout)
	defer ecancel()
	out := eraseOutput{Store: store, UserID: *userID, Erased: []string{}}
	if key != "" {
		err = st.Erase(ectx, key)
		if err == nil {
			out.Erased = append(out.Erased, key)
		}
	} else {
		var erased []string
		erased, err = st.EraseUser(ectx, *userID)
		out.Erased = append(out.Erased, erased...)
	}
	if *asJSON {
		enc := json.NewEncoder(m.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	} else {
		printErased(m.stdout, out)
	}
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger erase: %v (erasing again is safe)\n", err)
		return exitFail
	}
	return exitOK
}

// describeForErase says what erasing the profile of info removes.
func describeForErase(store string, info profileledger.Info) string {
	if !info.Exists {
		s := fmt.Sprintf("profile %q of store %s, which has no events", info.Key, store)
		if info.PendingMessages > 0 {
			s += fmt.Sprintf(" (%d inbox messages wait)", info.PendingMessages)
		}
		return s
	}
	s := fmt.Sprintf("profile %q of store %s (version %d, epoch %d, %d pending messages", info.Key, store, info.Version, info.Epoch, info.PendingMessages)
	if len(info.UserIDs) > 0 {
		s += ", user ids " + strings.Join(info.UserIDs, ", ")
	}
	if info.Holder != "" {
		s += ", held by " + info.Holder + ", which will be asked to hand over"
	}
	return s + ")"
}

func printErased(w io.Writer, out eraseOutput) {
	switch {
	case out.UserID == "" && len(out.Erased) == 1:
		fmt.Fprintf(w, "erased profile %q of store %s: only its tombstone is left\n", out.Erased[0], out.Store)
	case out.UserID == "":
	case len(out.Erased) == 0:
		fmt.Fprintf(w, "no profile of store %s is linked to user id %q\n", out.Store, out.UserID)
	default:
		fmt.Fprintf(w, "erased %d profile(s) of store %s linked to user id %q:\n", len(out.Erased), out.Store, out.UserID)
		for _, k := range out.Erased {
			fmt.Fprintf(w, "  %q\n", k)
		}
	}
}

// confirm prints question to stderr and reports whether the next line of
// standard input is "yes". No input, or ctx ending first, is a no.
func (m *Main) confirm(ctx context.Context, question string) bool {
	fmt.Fprint(m.stderr, question)
	answer := make(chan string, 1)
	// A read from a terminal cannot be cancelled: on Ctrl-C the command
	// returns and the process exits with the read still waiting.
	go func() {
		line, _ := bufio.NewReader(m.stdin).ReadString('\n')
		answer <- line
	}()
	select {
	case line := <-answer:
		switch {
		case !strings.HasSuffix(line, "\n"): // the input ended (Ctrl-D, no input at all)
			fmt.Fprintln(m.stderr)
		case !isCharDevice(m.stdin): // a terminal echoed the answer already; a pipe did not
			fmt.Fprintf(m.stderr, "%q\n", strings.TrimRight(line, "\r\n"))
		}
		return strings.TrimSpace(line) == "yes"
	case <-ctx.Done():
		fmt.Fprintln(m.stderr)
		return false
	}
}

// isCharDevice reports whether r is a character device: a terminal, or
// /dev/null.
func isCharDevice(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
