package integration_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
)

// Player is the profile type of these tests.
type Player struct {
	Coins     int      `json:"coins"`
	Inventory []string `json:"inventory"`
}

func tmpl() Player { return Player{Coins: 100, Inventory: []string{}} }

const storeName = "players"

// node is one simulated game server: its own connection and Store.
type node struct {
	nc *nats.Conn
	js jetstream.JetStream
	st *profileledger.Store[Player]
}

// openNode connects to url and opens the store. The store is closed at
// cleanup; closeErrOK says whether Close may fail (a node whose connection
// a test cut cannot end its sessions cleanly).
func openNode(t testing.TB, url, name string, closeErrOK bool, opts ...profileledger.Option) *node {
	t.Helper()
	js := pltest.Connect(t, url)
	opts = append([]profileledger.Option{profileledger.WithLeaseTTL(time.Second), profileledger.WithNode(name)}, opts...)
	st, err := profileledger.Open(context.Background(), js, storeName, tmpl(), opts...)
	if err != nil {
		t.Fatalf("Open on %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.Close(ctx); err != nil && !closeErrOK {
			t.Errorf("Close %s: %v", name, err)
		}
	})
	return &node{nc: js.Conn(), js: js, st: st}
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// readLog returns every record on the profile's event subject.
func readLog(t testing.TB, js jetstream.JetStream, key string) []ledger.Record {
	t.Helper()
	return pltest.ReadLog(t, js, storeName, key)
}

// auditStore runs the auditor over the whole store — every profile's log
// and every stored snapshot against the fold of its log — and fails t for
// each violation, or if it found no profile at all.
func auditStore(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	rep := pltest.Audit(t, js, storeName)
	if rep.Profiles == 0 {
		t.Error("audit found no profile: it audited nothing")
	}
	t.Logf("audit: %d profiles, %d events, %d snapshots, %d violations", rep.Profiles, rep.Events, rep.Snapshots, len(rep.Violations))
}

// checkLog fails t for every violation of DESIGN.md §2's per-profile
// invariants in recs.
func checkLog(t testing.TB, key string, recs []ledger.Record) {
	t.Helper()
	for _, v := range audit.Check(key, recs) {
		t.Errorf("%v", v)
	}
}

func itoa(n uint64) string { return fmt.Sprint(n) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
