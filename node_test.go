package profileledger_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/lease"
	"github.com/profileledger/profileledger/pltest"
)

// TestIdleSessionsCostOneHeartbeat: liveness is per node. A store holding
// 300 idle sessions, each with a message handler, sends its heartbeat — a
// few messages per TTL — and nothing per session, and runs no goroutine
// per session. (Per-session
// leases renewed every third of the TTL would send 2,700 messages in the
// three TTLs measured here.)
func TestIdleSessionsCostOneHeartbeat(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	runtime.GC()
	before := runtime.NumGoroutine()
	st := openOn(t, js, "idle")
	ctx := ctxT(t)
	const n = 300
	var wg sync.WaitGroup
	errs := make([]error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			s, err := st.StartSession(ctx, fmt.Sprintf("idle-%d", i))
			if err == nil {
				err = s.Mutate(ctx, "coins", addCoins(1))
				// A message handler costs nothing while no message comes.
				s.HandleMessages(func(p *Player, m profileledger.Message) error { return nil })
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // sequencing: background snapshots and the handlers' first inbox reads settle
	runtime.GC()
	held := runtime.NumGoroutine()
	out0 := js.Conn().Stats().OutMsgs
	const ttls = 3
	time.Sleep(ttls * time.Second) // the window measured: three lease TTLs
	sent := js.Conn().Stats().OutMsgs - out0
	t.Logf("%d idle sessions: %d messages sent in %d TTLs; goroutines %d before Open, %d while held", n, sent, ttls, before, held)
	if max := uint64(ttls*3 + 6); sent > max {
		t.Errorf("%d idle sessions sent %d messages in %d TTLs; one heartbeat sends about %d", n, sent, ttls, ttls*3)
	}
	// The store's own (its heartbeat, its subscriptions, its reconnect
	// watch) are a handful; one per session would be n.
	if extra := held - before; extra >= n/10 {
		t.Errorf("holding %d idle sessions runs %d goroutines more than before Open: some are per session", n, extra)
	}
}

// TestAStolenIdleHolderLetsGoAtOnce: a steal sends the old holder a notice;
// the old holder checks the lease and ends its session as lost without
// waiting for its next append (which the fence would refuse anyway).
func TestAStolenIdleHolderLetsGoAtOnce(t *testing.T) {
	srv := pltest.Run(t)
	a := openOn(t, pltest.Connect(t, srv.URL()), "players")
	b := openOn(t, pltest.Connect(t, srv.URL()), "players")
	sa := start(t, a, "k")
	sb := start(t, b, "k", profileledger.Steal())
	select {
	case <-sa.Done():
	case <-ctxT(t).Done():
		t.Fatal("the robbed idle session is still live 30 s after the steal")
	}
	if !errors.Is(sa.Err(), profileledger.ErrSessionLost) {
		t.Fatalf("robbed session ended with %v, want ErrSessionLost", sa.Err())
	}
	if err := sb.Mutate(ctxT(t), "coins", addCoins(1)); err != nil {
		t.Fatal(err)
	}
}

// TestAFalseStealNoticeIsIgnored: anyone can publish a notice; only the
// lease decides. A notice naming a session whose lease is still its own
// changes nothing.
func TestAFalseStealNoticeIsIgnored(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	st := openOn(t, js, "players")
	s := start(t, st, "k")
	_, l := leaseOf(t, js, "players", "k")
	lease.NotifyStolen(js.Conn(), l, "a liar")
	// The notice is handled on its own goroutine; a mutation after a
	// round trip of the lease read shows the session unmoved.
	time.Sleep(200 * time.Millisecond) // sequencing: let the notice be handled
	if err := s.Mutate(ctxT(t), "coins", addCoins(1)); err != nil {
		t.Fatalf("Mutate after a false notice = %v", err)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("session over after a false notice: %v", err)
	}
}

// TestAStaleLeaseRecordIsTakenOverAtOnce: a lease record that names a live
// node but a session that node does not hold (it ended without deleting
// its lease) does not lock the profile until the node dies: the node
// answers the hand-over request "not held", and the contender takes the
// lease over at the revision it saw.
func TestAStaleLeaseRecordIsTakenOverAtOnce(t *testing.T) {
	b := staleLease(t)
	// A's heartbeat beats on: without the "not held" answer this start
	// would wait until its context ends.
	s := start(t, b, "stale")
	if err := s.Mutate(ctxT(t), "coins", addCoins(1)); err != nil {
		t.Fatal(err)
	}
}

// staleLease sets up store A holding profile "real", and a lease record of
// profile "stale" that names A's heartbeat and control subject but a
// session A never had (as one its session left behind). It returns store
// B, on a connection of its own.
func staleLease(t *testing.T) *profileledger.Store[Player] {
	t.Helper()
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	a := openOn(t, js, "players")
	b := openOn(t, pltest.Connect(t, srv.URL()), "players")
	start(t, a, "real")
	bucket, real := leaseOf(t, js, "players", "real")
	rec := real.Record
	rec.Session = "gone-session"
	tok, err := keys.Encode("stale")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := names.New("players")
	rec.Control = n.Control(controlID(t, real.Record.Control), tok)
	if _, err := bucket.Acquire(ctxT(t), tok, rec); err != nil {
		t.Fatal(err)
	}
	return b
}

// leaseOf returns the lease bucket of store and the live lease of key.
func leaseOf(t *testing.T, js jetstream.JetStream, store, key string) (*lease.Bucket, lease.Lease) {
	t.Helper()
	n, err := names.New(store)
	if err != nil {
		t.Fatal(err)
	}
	b, err := lease.OpenBucket(ctxT(t), js, lease.Config{Bucket: n.Leases, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := keys.Encode(key)
	if err != nil {
		t.Fatal(err)
	}
	l, ok, err := b.Get(ctxT(t), tok)
	if err != nil || !ok {
		t.Fatalf("lease of %s: %+v, %v, %v", key, l, ok, err)
	}
	if l.Record.Holder == "" {
		t.Fatalf("lease of %s names no heartbeat: %+v", key, l.Record)
	}
	return b, l
}

// controlID returns the store id in a control subject pl.<store>.ctl.<id>.<token>.
func controlID(t *testing.T, subject string) string {
	t.Helper()
	f := strings.Split(subject, ".")
	if len(f) != 5 || f[2] != "ctl" {
		t.Fatalf("control subject %q is not pl.<store>.ctl.<id>.<token>", subject)
	}
	return f[3]
}

// TestNoWaitTakesALeaseItsLiveNodeNoLongerHolds: a lease record left
// behind by a session that is gone, on a node that lives on, does not lock
// the profile for NoWait: the node answers the probe "not held".
func TestNoWaitTakesALeaseItsLiveNodeNoLongerHolds(t *testing.T) {
	b := staleLease(t)
	s, err := b.StartSession(ctxT(t), "stale", profileledger.NoWait())
	if err != nil {
		t.Fatalf("NoWait start on a lease its live node does not hold = %v, want a session", err)
	}
	if err := s.Mutate(ctxT(t), "coins", addCoins(1)); err != nil {
		t.Fatal(err)
	}
	// And a profile the node does hold stays locked.
	if _, err := b.StartSession(ctxT(t), "real", profileledger.NoWait()); !errors.Is(err, profileledger.ErrLocked) {
		t.Fatalf("NoWait start on a held profile = %v, want ErrLocked", err)
	}
}

// TestAHolderWhoseLeaseIsRewrittenLetsGoWithoutANotice: the store watches
// its lease bucket. A lease rewritten under another session — a steal
// whose notice was lost — ends the idle session at once.
func TestAHolderWhoseLeaseIsRewrittenLetsGoWithoutANotice(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	st := openOn(t, js, "players")
	s := start(t, st, "k")
	bucket, l := leaseOf(t, js, "players", "k")
	rec := l.Record
	rec.Session = "a-stealer-whose-notice-was-lost"
	if _, err := bucket.Steal(ctxT(t), l.Key, l.Revision, rec); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-ctxT(t).Done():
		t.Fatal("the session whose lease was rewritten is still live 30 s later")
	}
	if !errors.Is(s.Err(), profileledger.ErrSessionLost) {
		t.Fatalf("session ended with %v, want ErrSessionLost", s.Err())
	}
}
