package integration_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
)

// holdMany starts one session per key on n, each with one acknowledged
// item named after its key, and returns them in key order.
func holdMany(t *testing.T, ctx context.Context, n *node, keys []string) []*profileledger.Session[Player] {
	t.Helper()
	out := make([]*profileledger.Session[Player], len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i, k := range keys {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			s, err := n.st.StartSession(ctx, k)
			if err == nil {
				err = s.Mutate(ctx, "item", addItem(k+"/held"))
			}
			out[i], errs[i] = s, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

func manyKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return keys
}

// TestANodeThatStopsHeartbeatingLosesEverySessionAndEachIsTakenOver: node A
// holds 40 profiles and drops off the network (its proxy cut). A's one
// heartbeat stops; A itself gives every session up as lost after a TTL
// without a beat; node B, asking for each profile (a hand-over request
// nobody answers), takes every one over once A's heartbeat has lapsed —
// with every write A acknowledged in B's data, and a clean audit.
func TestANodeThatStopsHeartbeatingLosesEverySessionAndEachIsTakenOver(t *testing.T) {
	srv := pltest.Run(t)
	tp := pltest.Proxy(t, srv.URL())
	const ttl = time.Second
	a := openNode(t, tp.URL(), "a", true)
	b := openNode(t, srv.URL(), "b", false, profileledger.WithHandoverTimeout(200*time.Millisecond))
	ctx := testCtx(t, 2*time.Minute)
	keys := manyKeys("node", 40)
	held := holdMany(t, ctx, a, keys)

	tp.Cut()
	cutAt := time.Now()
	took := make([]time.Duration, len(keys))
	sessions := make([]*profileledger.Session[Player], len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() {
			s, err := b.st.StartSession(ctx, k)
			took[i], sessions[i], errs[i] = time.Since(cutAt), s, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i, s := range held {
		select {
		case <-s.Done():
		case <-ctx.Done():
			t.Fatalf("A's session of %s is still live a minute after A's heartbeat stopped", keys[i])
		}
		if !errors.Is(s.Err(), profileledger.ErrSessionLost) {
			t.Errorf("A's session of %s ended with %v, want ErrSessionLost", keys[i], s.Err())
		}
	}
	for i, s := range sessions {
		if got := s.Data().Inventory; !slices.Equal(got, []string{keys[i] + "/held"}) {
			t.Errorf("B's data of %s = %v, want A's acknowledged item", keys[i], got)
		}
		if err := s.End(ctx); err != nil {
			t.Error(err)
		}
	}
	for i, k := range keys {
		// Taken over, not handed over: A, cut off, could end nothing.
		for _, r := range readLog(t, b.js, k) {
			if r.Event.Session == held[i].ID() && r.Event.Type == ledger.TypeSessionEnded {
				t.Errorf("%s: A's session.ended is in the log; A was cut off", k)
			}
		}
	}
	slices.Sort(took)
	t.Logf("take-over after the cut: first %v, median %v, last %v (lease TTL %v)", took[0], took[len(took)/2], took[len(took)-1], ttl)
	auditStore(t, b.js)
}

// TestAFrozenNodeIsFencedOnEveryProfileItHeld: node A holds 20 profiles
// and freezes (its proxy holds all traffic, the connection stays open) with
// one mutation in flight on each. B takes every profile over once A's
// heartbeat lapses, and writes. When A thaws, each of its held-back appends
// reaches the server after B's fence and is refused: no write of A follows
// B's session.started on any profile, every session of A is lost, and
// everything B acknowledged is there.
func TestAFrozenNodeIsFencedOnEveryProfileItHeld(t *testing.T) {
	srv := pltest.Run(t)
	tp := pltest.Proxy(t, srv.URL())
	a := openNode(t, tp.URL(), "a", true)
	b := openNode(t, srv.URL(), "b", false, profileledger.WithHandoverTimeout(200*time.Millisecond))
	ctx := testCtx(t, 2*time.Minute)
	keys := manyKeys("frozen", 20)
	held := holdMany(t, ctx, a, keys)

	tp.Freeze()
	inflight := make([]chan error, len(keys))
	for i, s := range held {
		inflight[i] = make(chan error, 1)
		go func() {
			mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			inflight[i] <- s.Mutate(mctx, "zombie.write", addItem(keys[i]+"/zombie"))
		}()
	}
	// Sequencing only: let A's appends leave for the frozen proxy first.
	time.Sleep(100 * time.Millisecond)
	sessions := make([]*profileledger.Session[Player], len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() {
			s, err := b.st.StartSession(ctx, k)
			if err == nil {
				err = s.Mutate(ctx, "item", addItem(k+"/b"))
			}
			sessions[i], errs[i] = s, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	tp.Thaw()
	for i := range keys {
		if err := <-inflight[i]; err == nil {
			t.Errorf("A's mutation of %s, held back while B took over, was acknowledged", keys[i])
		}
		select {
		case <-held[i].Done():
		case <-ctx.Done():
			t.Fatalf("A's session of %s is live after the thaw", keys[i])
		}
		if !errors.Is(held[i].Err(), profileledger.ErrSessionLost) {
			t.Errorf("A's session of %s ended with %v, want ErrSessionLost", keys[i], held[i].Err())
		}
	}
	for i, k := range keys {
		recs := readLog(t, b.js, k)
		if n := countItem(recs, k+"/zombie"); n != 0 {
			t.Errorf("%s: A's held-back write is in the log %d times", k, n)
		}
		if n := countItem(recs, k+"/b"); n != 1 {
			t.Errorf("%s: B's acknowledged write is in the log %d times", k, n)
		}
		fence := -1
		for j, r := range recs {
			if r.Event.Type == ledger.TypeSessionStarted && r.Event.Session == sessions[i].ID() {
				fence = j
			}
		}
		if fence < 0 {
			t.Fatalf("%s: B's fence is not in the log", k)
		}
		for _, r := range recs[fence:] {
			if r.Event.Session == held[i].ID() {
				t.Errorf("%s: A's event %s (seq %d) follows B's fence", k, r.Event.Type, r.Seq)
			}
		}
		checkLog(t, k, recs)
		if err := sessions[i].End(ctx); err != nil {
			t.Error(err)
		}
	}
	auditStore(t, b.js)
}

// TestCloseEndsManySessionsCleanly holds many sessions in one process and
// closes the store: every session ends cleanly (session.ended in its log,
// lease released, so the next start is immediate) and nothing leaks. The
// default is 1,000 sessions; PL_SESSIONS=100000 runs the figure
// (`PL_SESSIONS=100000 go test -run TestCloseEndsManySessionsCleanly
// -timeout 30m ./integration`, without -race).
func TestCloseEndsManySessionsCleanly(t *testing.T) {
	n := 1000
	if v := os.Getenv("PL_SESSIONS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("PL_SESSIONS=%q: want a positive count", v)
		}
	}
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	st, err := profileledger.Open(context.Background(), js, storeName, tmpl(), profileledger.WithLeaseTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 30*time.Minute)
	keys := manyKeys("many", n)
	start := time.Now()
	sessions := make([]*profileledger.Session[Player], n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, k := range keys {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			sessions[i], errs[i] = st.StartSession(ctx, k)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	started := time.Since(start)
	if h := st.Health(); h.SessionsHeld != n {
		t.Fatalf("sessions held = %d, want %d", h.SessionsHeld, n)
	}
	runtime.GC()
	goroutines := runtime.NumGoroutine()
	closeAt := time.Now()
	if err := st.Close(ctx); err != nil {
		t.Fatalf("Close with %d sessions: %v", n, err)
	}
	closed := time.Since(closeAt)
	t.Logf("%d sessions: started in %v (%.0f/s), %d goroutines while held, Close took %v (%.0f sessions/s)",
		n, started.Round(time.Millisecond), float64(n)/started.Seconds(), goroutines, closed.Round(time.Millisecond), float64(n)/closed.Seconds())
	for i, s := range sessions {
		select {
		case <-s.Done():
		default:
			t.Fatalf("session %s still live after Close", keys[i])
		}
		if err := s.Err(); !errors.Is(err, profileledger.ErrSessionEnded) {
			t.Errorf("session %s ended with %v, want ErrSessionEnded", keys[i], err)
		}
	}
	// A sample of profiles: session.ended is last, and the lease is free.
	st2, err := profileledger.Open(context.Background(), js, storeName, tmpl())
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close(context.Background())
	for i := 0; i < n; i += max(n/50, 1) {
		recs := readLog(t, js, keys[i])
		if last := recs[len(recs)-1].Event; last.Type != ledger.TypeSessionEnded || last.Session != sessions[i].ID() {
			t.Errorf("%s: last event is %s of %s, want the closed session's session.ended", keys[i], last.Type, last.Session)
		}
		s, err := st2.StartSession(ctx, keys[i], profileledger.NoWait())
		if err != nil {
			t.Errorf("%s: NoWait start after Close = %v, want the lease free", keys[i], err)
			continue
		}
		s.End(ctx)
	}
}

// TestWhatAHolderMissedWhileCutOffIsCaughtUpWhenItReconnects: holder A,
// idle with a message handler, is cut off for a moment. Meanwhile B steals
// one of its profiles (A cannot get the notice, nor see its lease
// rewritten) and a message is sent to another. When A reconnects it
// checks the leases of its sessions and reads their inboxes: the robbed
// session ends lost, the message is handled.
func TestWhatAHolderMissedWhileCutOffIsCaughtUpWhenItReconnects(t *testing.T) {
	srv := pltest.Run(t)
	tp := pltest.Proxy(t, srv.URL())
	a := openNode(t, tp.URL(), "a", true, profileledger.WithLeaseTTL(5*time.Second))
	b := openNode(t, srv.URL(), "b", false, profileledger.WithLeaseTTL(5*time.Second))
	ctx := testCtx(t, time.Minute)
	robbed, err := a.st.StartSession(ctx, "robbed")
	if err != nil {
		t.Fatal(err)
	}
	mailbox, err := a.st.StartSession(ctx, "mailbox")
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan string, 1)
	mailbox.HandleMessages(func(p *Player, m profileledger.Message) error {
		select {
		case handled <- string(m.Payload):
		default:
		}
		return nil
	})
	tp.Cut()
	sb, err := b.st.StartSession(ctx, "robbed", profileledger.Steal())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.st.Message(ctx, "mailbox", []byte("while you were out")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // sequencing: the cut lasts a moment, well inside the 5 s TTL
	tp.Heal()
	select {
	case got := <-handled:
		if got != "while you were out" {
			t.Errorf("handled %q", got)
		}
	case <-ctx.Done():
		t.Fatal("the message sent while the holder was cut off was not handled after it reconnected")
	}
	select {
	case <-robbed.Done():
	case <-ctx.Done():
		t.Fatal("the session stolen while its holder was cut off is still live after it reconnected")
	}
	if !errors.Is(robbed.Err(), profileledger.ErrSessionLost) {
		t.Errorf("robbed session ended with %v, want ErrSessionLost", robbed.Err())
	}
	if err := mailbox.Err(); err != nil {
		t.Errorf("the mailbox session is over: %v", err)
	}
	if err := sb.End(ctx); err != nil {
		t.Error(err)
	}
}

// TestADeadHolderIsTakenOverWhenItsHeartbeatLapsesNotWhenTheRequestTimesOut:
// holder A freezes (its connection stays open, so a hand-over request to it
// is delivered and never answered, as to a member that has not yet seen a
// dead holder's connection close). B's request would wait 30 s; B watches
// A's heartbeat meanwhile and takes over when it lapses — within a start
// context of 15 s, which would end first otherwise.
func TestADeadHolderIsTakenOverWhenItsHeartbeatLapsesNotWhenTheRequestTimesOut(t *testing.T) {
	srv := pltest.Run(t)
	tp := pltest.Proxy(t, srv.URL())
	a := openNode(t, tp.URL(), "a", true)
	b := openNode(t, srv.URL(), "b", false, profileledger.WithHandoverTimeout(30*time.Second))
	ctx := testCtx(t, time.Minute)
	sa, err := a.st.StartSession(ctx, "frozen-holder")
	if err != nil {
		t.Fatal(err)
	}
	if err := sa.Mutate(ctx, "item", addItem("a-0")); err != nil {
		t.Fatal(err)
	}
	tp.Freeze()
	defer tp.Thaw()
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	sb, err := b.st.StartSession(sctx, "frozen-holder")
	if err != nil {
		t.Fatalf("B's start while A's request hangs = %v; want a take-over once A's heartbeat lapsed", err)
	}
	if got := sb.Data().Inventory; !slices.Equal(got, []string{"a-0"}) {
		t.Errorf("B's data = %v, want A's acknowledged item", got)
	}
	if err := sb.End(ctx); err != nil {
		t.Error(err)
	}
}
