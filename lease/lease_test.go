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

func TestRenewKeepsTheLeaseAliveAcrossManyTTLs(t *testing.T) {
	b := bucket(t)
	c := ctx(t)
	l, err := b.Acquire(c, "k", recA)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2500 * time.Millisecond) // 2.5 TTLs
	for time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		if l, err = b.Renew(c, l); err != nil {
			t.Fatal(err)
		}
	}
	cur, ok, err := b.Get(c, "k")
	if err != nil || !ok || cur.Record.Session != "A" {
		t.Fatalf("after renewals across 2.5 TTLs: %+v, %v, %v (a renewal dropped the key)", cur, ok, err)
	}
	// The last renewal still carries the TTL: without renewals it expires.
	waitExpired(t, b, "k", 5*time.Second)
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

func TestTheServerExpiresAnUnrenewedLease(t *testing.T) {
	b := bucket(t)
	c := ctx(t)
	l, err := b.Acquire(c, "k", recA)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("expired after %v (TTL 1 s)", waitExpired(t, b, "k", 10*time.Second))
	if _, err := b.Renew(c, l); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("Renew after expiry = %v, want ErrLost", err)
	}
	if _, err := b.Acquire(c, "k", recB); err != nil {
		t.Fatalf("Acquire after expiry: %v", err)
	}
}

func TestStealIsACompareAndSetAndTheOldHolderLosesIt(t *testing.T) {
	b := bucket(t)
	c := ctx(t)
	la, err := b.Acquire(c, "k", recA)
	if err != nil {
		t.Fatal(err)
	}
	la2, err := b.Renew(c, la)
	if err != nil {
		t.Fatal(err)
	}
	// Stealing at an old revision fails: the lease moved since.
	if _, err := b.Steal(c, "k", la.Revision, recB); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("Steal at a stale revision = %v, want ErrLost", err)
	}
	if _, err := b.Steal(c, "k", la2.Revision, recB); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Renew(c, la2); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("old holder's Renew = %v, want ErrLost", err)
	}
	if err := b.Release(c, la2); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("old holder's Release = %v, want ErrLost", err)
	}
	if cur, _, _ := b.Get(c, "k"); cur.Record.Session != "B" {
		t.Fatalf("lease is %+v after the old holder's attempts, want B's", cur)
	}
}

func TestRenewAfterALostAckAdoptsItsOwnRevision(t *testing.T) {
	b := bucket(t)
	c := ctx(t)
	l, err := b.Acquire(c, "k", recA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Renew(c, l); err != nil { // its ack "lost": the holder keeps l
		t.Fatal(err)
	}
	l2, err := b.Renew(c, l)
	if err != nil {
		t.Fatalf("renew with the pre-ack revision = %v, want success", err)
	}
	if err := b.Release(c, l); err != nil { // again with an old revision
		t.Fatalf("release with an old revision of its own lease = %v", err)
	}
	_ = l2
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
