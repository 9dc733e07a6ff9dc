package lease_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/profileledger/profileledger/lease"
	"github.com/profileledger/profileledger/pltest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func bucket(t testing.TB) *lease.Bucket {
	t.Helper()
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	b, err := lease.OpenBucket(ctx(t), js, lease.Config{Bucket: "L", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

var recA = lease.Record{Session: "A", Node: "a", Control: "ctl.a"}
var recB = lease.Record{Session: "B", Node: "b", Control: "ctl.b"}

func TestAcquireIsExclusiveAndReleaseFreesIt(t *testing.T) {
	b := bucket(t)
	c := ctx(t)
	la, err := b.Acquire(c, "k", recA)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Acquire(c, "k", recB)
	var held *lease.HeldError
	if !errors.As(err, &held) || !errors.Is(err, lease.ErrHeld) || held.Current.Record.Session != "A" {
		t.Fatalf("second Acquire = %v, want HeldError naming A", err)
	}
	// Acquiring again for the same session (a lost ack) returns the lease.
	if again, err := b.Acquire(c, "k", recA); err != nil || again.Revision != la.Revision {
		t.Fatalf("re-acquire by the holder = %+v, %v", again, err)
	}
	if err := b.Release(c, la); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Get(c, "k"); ok {
		t.Fatal("lease still held after Release")
	}
	if _, err := b.Acquire(c, "k", recB); err != nil {
		t.Fatalf("Acquire after Release (over the delete marker): %v", err)
	}
}

func waitExpired(t *testing.T, b *lease.Bucket, key string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		_, ok, err := b.Get(ctx(t), key)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("the lease did not expire within %v: a write dropped its TTL", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestARecordWithoutAHeartbeatLivesByItsOwnTTL(t *testing.T) {
	b := bucket(t)
	c := ctx(t)
	if _, err := b.Acquire(c, "k", recA); err != nil {
		t.Fatal(err)
	}
	t.Logf("expired after %v (TTL 1 s)", waitExpired(t, b, "k", 10*time.Second))
	if _, err := b.Acquire(c, "k", recB); err != nil {
		t.Fatalf("Acquire after expiry: %v", err)
	}
}

func TestARecordNamingAHeartbeatLivesAsLongAsItBeats(t *testing.T) {
	b := bucket(t)
	c := ctx(t)
	hb, err := b.StartHeartbeat(c, "n1", lease.NodeRecord{Node: "a"})
	if err != nil {
		t.Fatal(err)
	}
	rec := recA
	rec.Holder = hb.ID()
	l, err := b.Acquire(c, "k", rec)
	if err != nil {
		t.Fatal(err)
	}
	for range 8 { // 2.4 TTLs
		time.Sleep(300 * time.Millisecond)
		if err := hb.Beat(c); err != nil {
			t.Fatal(err)
		}
	}
	cur, ok, err := b.Get(c, "k")
	if err != nil || !ok || cur.Revision != l.Revision {
		t.Fatalf("after 2.4 TTLs of beats the lease is %+v, %v, %v; want it untouched at revision %d (a record naming a heartbeat has no TTL)", cur, ok, err, l.Revision)
	}
	if live, err := b.Live(c, cur); err != nil || !live {
		t.Fatalf("Live while the heartbeat beats = %v, %v", live, err)
	}
	// It stops beating: the server's TTL removes the heartbeat, the lease
	// stays, and is dead.
	deadline := time.Now().Add(10 * time.Second)
	for {
		live, err := b.Live(c, cur)
		if err != nil {
			t.Fatal(err)
		}
		if !live {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the heartbeat outlived its TTL by 9 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, ok, _ := b.Get(c, "k"); !ok {
		t.Fatal("the lease record went with its heartbeat; it should stay until taken over")
	}
	if err := hb.Beat(c); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("Beat after the heartbeat lapsed = %v, want ErrLost", err)
	}
}

func TestABeatAfterALostReplyAdoptsItsOwnRevision(t *testing.T) {
	b := bucket(t)
	c := ctx(t)
	hb, err := b.StartHeartbeat(c, "n1", lease.NodeRecord{Node: "a"})
	if err != nil {
		t.Fatal(err)
	}
	// The same create again (its reply "lost") adopts the heartbeat...
	again, err := b.StartHeartbeat(c, "n1", lease.NodeRecord{Node: "a"})
	if err != nil {
		t.Fatalf("StartHeartbeat again = %v", err)
	}
	if err := again.Beat(c); err != nil {
		t.Fatal(err)
	}
	// ...and a beat at a revision that a write of its own moved succeeds.
	if err := hb.Beat(c); err != nil {
		t.Fatalf("Beat at a revision its own write moved = %v", err)
	}
	// Another node's record under the same id is not ours.
	if _, err := b.StartHeartbeat(c, "n1", lease.NodeRecord{Node: "b"}); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("StartHeartbeat of an id another record holds = %v, want ErrLost", err)
	}
}

func TestStoppingAHeartbeatFreesItsLeasesAtOnce(t *testing.T) {
	b := bucket(t)
	c := ctx(t)
	hb, err := b.StartHeartbeat(c, "n1", lease.NodeRecord{Node: "a"})
	if err != nil {
		t.Fatal(err)
	}
	rec := recA
	rec.Holder = hb.ID()
	l, err := b.Acquire(c, "k", rec)
	if err != nil {
		t.Fatal(err)
	}
	// While it beats, WaitHolder does not report it dead.
	stop := make(chan struct{})
	beats := make(chan error, 1)
	go func() {
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				beats <- nil
				return
			case <-tk.C:
				if err := hb.Beat(c); err != nil {
					beats <- err
					return
				}
			}
		}
	}()
	wctx, cancel := context.WithTimeout(c, 1500*time.Millisecond)
	_, res, err := b.WaitHolder(wctx, l, time.Now(), 20*time.Millisecond)
	cancel()
	close(stop)
	if berr := <-beats; berr != nil {
		t.Fatal(berr)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitHolder on a beating holder over 1.5 TTLs = %v, %v; want the context's deadline", res, err)
	}
	if err := hb.Stop(c); err != nil {
		t.Fatal(err)
	}
	got, res, err := b.WaitHolder(c, l, time.Now(), 20*time.Millisecond)
	if err != nil || res != lease.Expired || got.Revision != l.Revision {
		t.Fatalf("WaitHolder after Stop = %+v, %v, %v; want Expired at revision %d", got, res, err, l.Revision)
	}
}

func TestStealIsACompareAndSet(t *testing.T) {
	b := bucket(t)
	c := ctx(t)
	la, err := b.Acquire(c, "k", recA)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Steal(c, "k", la.Revision, recB)
	if err != nil {
		t.Fatal(err)
	}
	// Stealing at an old revision fails: the lease moved since.
	if _, err := b.Steal(c, "k", la.Revision, recA); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("Steal at a stale revision = %v, want ErrLost", err)
	}
	if err := b.Release(c, la); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("old holder's Release = %v, want ErrLost", err)
	}
	if cur, _, _ := b.Get(c, "k"); cur.Record.Session != "B" || cur.Revision != lb.Revision {
		t.Fatalf("lease is %+v after the old holder's attempts, want B's", cur)
	}
}

func TestWaitSinceReportsExpiryByTheCallersClock(t *testing.T) {
	b := bucket(t)
	c := ctx(t)
	l, err := b.Acquire(c, "k", recA)
	if err != nil {
		t.Fatal(err)
	}
	seen := time.Now().Add(-time.Second) // saw it a whole TTL ago
	got, res, err := b.WaitSince(c, l, seen, 20*time.Millisecond)
	if err != nil || res != lease.Expired || got.Revision != l.Revision {
		t.Fatalf("WaitSince = %+v, %v, %v; want Expired at revision %d", got, res, err, l.Revision)
	}
	wctx, cancel := context.WithTimeout(c, 100*time.Millisecond)
	defer cancel()
	if _, _, err := b.WaitSince(wctx, l, time.Now(), 20*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitSince under a short ctx = %v", err)
	}
}
