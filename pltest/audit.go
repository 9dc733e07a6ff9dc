package pltest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/ledger"
)

// readTimeout bounds Audit and ReadLog.
const readTimeout = time.Minute

// Audit runs the auditor (audit.Store) over the whole store: every
// profile's log — event ids unique, epochs never decreasing, each epoch
// opened by its session.started and written by one session, nothing after
// session.ended, every event folding — and every stored snapshot against
// the fold of its log. Every violation fails the test, one per line, in
// one error. If the store cannot be read at all, the test fails at once
// (t.Fatal). The report is returned for the caller's own checks (how many
// profiles and events were read).
//
// A store may be audited while in use; call Audit after the sessions have
// ended to check their final session.ended too.
func Audit(t testing.TB, js jetstream.JetStream, store string) *audit.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	rep, err := audit.Store(ctx, js, store)
	if err != nil {
		t.Fatalf("pltest: audit store %s: %v", store, err)
	}
	if len(rep.Violations) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "pltest: audit of store %s (%d profiles, %d events, %d snapshots) found %d violations:",
			store, rep.Profiles, rep.Events, rep.Snapshots, len(rep.Violations))
		for _, v := range rep.Violations {
			b.WriteString("\n")
			b.WriteString(v.String())
		}
		t.Error(b.String())
	}
	return rep
}

// ReadLog returns every record on one profile's event subject, in order:
// what the profile's log holds, events and anything else (a record whose
// Err is set is not an event). On a cluster it reads through the last
// sequence the stream's leader knows, so an acknowledged append is never
// missed because a replica answered. It fails the test if the log cannot
// be read; a profile with no log returns nil.
func ReadLog(t testing.TB, js jetstream.JetStream, store, key string) []ledger.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	recs, err := readLog(ctx, js, store, key)
	if err != nil {
		t.Fatalf("pltest: read the log of %q in store %s: %v", key, store, err)
	}
	return recs
}

func readLog(ctx context.Context, js jetstream.JetStream, store, key string) ([]ledger.Record, error) {
	n, err := names.New(store)
	if err != nil {
		return nil, err
	}
	tok, err := keys.Encode(key)
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, n.Stream)
	if err != nil {
		return nil, err
	}
	l := ledger.NewLog(js, stream, 1<<20)
	defer l.Close()
	subject := n.Events(tok)
	last, err := l.LastFromLeader(ctx, subject)
	if err != nil || last == 0 {
		return nil, err
	}
	var out []ledger.Record
	err = l.ReadThrough(ctx, subject, 0, last, func(r ledger.Record) error {
		out = append(out, r)
		return nil
	})
	return out, err
}
