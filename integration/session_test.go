package integration_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
)

func inc(p *Player) error { p.Coins++; return nil }

func TestHandOverWhileMutatingKeepsEveryAcknowledgedWrite(t *testing.T) {
	srv := pltest.Run(t)
	a := openNode(t, srv.URL(), "a", false)
	b := openNode(t, srv.URL(), "b", false)
	ctx := testCtx(t, time.Minute)

	s1, err := a.st.StartSession(ctx, "user:1")
	if err != nil {
		t.Fatal(err)
	}
	var acked atomic.Int64
	var wg sync.WaitGroup
	stopped := make(chan error, 4)
	for range 4 { // several writers on the first holder, group-committed
		wg.Go(func() {
			for {
				err := s1.Mutate(ctx, "coin", inc)
				if err != nil {
					stopped <- err
					return
				}
				acked.Add(1)
			}
		})
	}
	for acked.Load() < 50 {
		time.Sleep(time.Millisecond)
	}
	t0 := time.Now()
	s2, err := b.st.StartSession(ctx, "user:1")
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	wg.Wait()
	close(stopped)
	for err := range stopped {
		if !errors.Is(err, profileledger.ErrSessionEnded) {
			t.Errorf("first holder's Mutate ended with %v, want ErrSessionEnded", err)
		}
	}
	if !errors.Is(s1.Err(), profileledger.ErrHandedOver) {
		t.Errorf("first session's Err() = %v, want ErrHandedOver", s1.Err())
	}
	if got, want := s2.Data().Coins, 100+int(acked.Load()); got != want {
		t.Fatalf("new holder sees %d coins, want %d (100 + %d acknowledged)", got, want, acked.Load())
	}
	if err := s2.Mutate(ctx, "coin", inc); err != nil {
		t.Fatal(err)
	}
	t.Logf("hand-over under load took %v after %d acknowledged mutations", took, acked.Load())
	checkLog(t, "user:1", readLog(t, a.js, "user:1"))
}

func TestStealFencesTheOldHolder(t *testing.T) {
	srv := pltest.Run(t)
	a := openNode(t, srv.URL(), "a", false)
	b := openNode(t, srv.URL(), "b", false)
	ctx := testCtx(t, time.Minute)

	s1, err := a.st.StartSession(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Mutate(ctx, "coin", inc); err != nil {
		t.Fatal(err)
	}
	s2, err := b.st.StartSession(ctx, "k", profileledger.Steal())
	if err != nil {
		t.Fatal(err)
	}
	err = s1.Mutate(ctx, "coin", inc)
	if !errors.Is(err, profileledger.ErrSessionLost) {
		t.Fatalf("old holder's Mutate after a steal = %v, want ErrSessionLost", err)
	}
	<-s1.Done()
	if !errors.Is(s1.Err(), profileledger.ErrSessionLost) {
		t.Fatalf("old holder's Err() = %v", s1.Err())
	}
	if got := s2.Data().Coins; got != 101 {
		t.Fatalf("stealer sees %d coins, want 101", got)
	}
	recs := readLog(t, a.js, "k")
	checkLog(t, "k", recs)
	var stealAt uint64
	for _, r := range recs {
		if r.Event.Type == ledger.TypeSessionStarted && r.Event.Session == s2.ID() {
			stealAt = r.Seq
		}
		if stealAt > 0 && r.Seq > stealAt && r.Event.Session == s1.ID() {
			t.Errorf("seq %d: the old holder wrote after the steal's fence at %d", r.Seq, stealAt)
		}
	}
	if stealAt == 0 {
		t.Fatal("no session.started of the stealer in the log")
	}
}

func TestDeadHolderIsTakenOverAfterTheLeaseTTL(t *testing.T) {
	srv := pltest.Run(t)
	a := openNode(t, srv.URL(), "a", true)
	b := openNode(t, srv.URL(), "b", false)
	ctx := testCtx(t, time.Minute)

	s1, err := a.st.StartSession(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Mutate(ctx, "coin", inc); err != nil {
		t.Fatal(err)
	}
	a.nc.Close() // the holder's process is gone: no End, no hand-over reply, no renewals
	t0 := time.Now()
	s2, err := b.st.StartSession(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	if got := s2.Data().Coins; got != 101 {
		t.Fatalf("taker sees %d coins, want 101", got)
	}
	if took > 10*time.Second {
		t.Errorf("take-over took %v with a 1 s lease", took)
	}
	<-s1.Done() // the cut-off holder notices it can no longer renew
	if !errors.Is(s1.Err(), profileledger.ErrSessionLost) {
		t.Errorf("cut-off holder's Err() = %v, want ErrSessionLost", s1.Err())
	}
	t.Logf("take-over after the holder died: %v (lease TTL 1 s)", took)
	checkLog(t, "k", readLog(t, b.js, "k"))
}

func TestNoWaitFailsWithErrLockedAndCancelStopsAWaitingStart(t *testing.T) {
	srv := pltest.Run(t)
	a := openNode(t, srv.URL(), "a", true, profileledger.WithLeaseTTL(5*time.Second))
	b := openNode(t, srv.URL(), "b", false, profileledger.WithLeaseTTL(5*time.Second))
	ctx := testCtx(t, time.Minute)
	if _, err := a.st.StartSession(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	_, err := b.st.StartSession(ctx, "k", profileledger.NoWait())
	if !errors.Is(err, profileledger.ErrLocked) {
		t.Fatalf("NoWait start = %v, want ErrLocked", err)
	}
	a.nc.Close() // a silent holder: the start below has to wait for its lease
	wctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err = b.st.StartSession(wctx, "k")
	if !errors.Is(err, profileledger.ErrLocked) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiting start = %v, want ErrLocked and context.Canceled", err)
	}
}

func TestContendedCounterCountsEveryAcknowledgedIncrementExactlyOnce(t *testing.T) {
	srv := pltest.Run(t)
	var nodes []*node
	for _, name := range []string{"a", "b", "c"} {
		nodes = append(nodes, openNode(t, srv.URL(), name, false))
	}
	ctx := testCtx(t, 2*time.Minute)
	var acked, uncertain atomic.Int64
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 15 {
				n := nodes[rng.IntN(len(nodes))]
				var opts []profileledger.SessionOption
				if i%4 == g%4 {
					opts = append(opts, profileledger.Steal())
				}
				s, err := n.st.StartSession(ctx, "counter", opts...)
				if err != nil {
					t.Errorf("start: %v", err)
					return
				}
				for range 1 + rng.IntN(3) {
					err := s.Mutate(ctx, "coin", inc)
					switch {
					case err == nil:
						acked.Add(1)
					case errors.Is(err, profileledger.ErrUncertain):
						uncertain.Add(1)
					case errors.Is(err, profileledger.ErrSessionLost), errors.Is(err, profileledger.ErrSessionEnded):
					default:
						t.Errorf("mutate: %v", err)
					}
				}
				if err := s.End(ctx); err != nil && !errors.Is(err, profileledger.ErrSessionLost) {
					t.Errorf("end: %v", err)
				}
			}
		})
	}
	wg.Wait()
	v, err := nodes[0].st.Get(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	got := int64(v.Data.Coins - 100)
	if uncertain.Load() != 0 {
		t.Errorf("%d increments had an unknown outcome on a healthy server", uncertain.Load())
	}
	if got != acked.Load() {
		t.Fatalf("counter = %d, acknowledged increments = %d", got, acked.Load())
	}
	t.Logf("%d acknowledged increments, counter %d", acked.Load(), got)
	checkLog(t, "counter", readLog(t, nodes[0].js, "counter"))
}

func TestGarbageOnTheEventSubjectIsReportedNotFolded(t *testing.T) {
	srv := pltest.Run(t)
	a := openNode(t, srv.URL(), "a", false)
	ctx := testCtx(t, time.Minute)
	s, err := a.st.StartSession(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Mutate(ctx, "coin", inc); err != nil {
		t.Fatal(err)
	}
	// A third party with publish rights writes junk onto the profile.
	ack, err := a.js.Publish(ctx, "pl.players.ev.k", []byte(`{"not":"an event"}`))
	if err != nil {
		t.Fatal(err)
	}
	// The live holder's next append is fenced by the junk, reads past it,
	// and goes on.
	if err := s.Mutate(ctx, "coin", inc); err != nil {
		t.Fatalf("mutate after junk: %v", err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := a.st.Get(ctx, "k", profileledger.AtVersion(s.Version()))
	if err != nil {
		t.Fatal(err)
	}
	if v.Data.Coins != 102 {
		t.Fatalf("coins = %d, want 102", v.Data.Coins)
	}
	// A full replay (no snapshot at or below the junk) reports it.
	full, err := a.st.Get(ctx, "k", profileledger.AtTime(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Report.SkippedMessages) != 1 || full.Report.SkippedMessages[0].Seq != ack.Sequence {
		t.Fatalf("report = %+v, want the junk at seq %d", full.Report, ack.Sequence)
	}
	if full.Data.Coins != 102 {
		t.Fatalf("full replay coins = %d", full.Data.Coins)
	}

	// An event-shaped message whose ops do not fold stops the load, naming
	// its sequence.
	bad := `{"v":1,"id":"x1","type":"forged","session":"zz","epoch":99,"time":"2026-01-01T00:00:00Z","ops":[{"op":"inc","path":"/nope","value":1}]}`
	ack, err = a.js.Publish(ctx, "pl.players.ev.k", []byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.st.StartSession(ctx, "k")
	if !errors.Is(err, profileledger.ErrBadEvent) {
		t.Fatalf("start over a bad event = %v, want ErrBadEvent", err)
	}
	if want := "sequence " + itoa(ack.Sequence); !contains(err.Error(), want) {
		t.Fatalf("error %q does not name %q", err, want)
	}
}

func TestHandOverRequestsAreAnsweredByTheHolderNotStored(t *testing.T) {
	srv := pltest.Run(t)
	a := openNode(t, srv.URL(), "a", false)
	b := openNode(t, srv.URL(), "b", false)
	ctx := testCtx(t, time.Minute)
	for i := range 6 {
		n := []*node{a, b}[i%2]
		if _, err := n.st.StartSession(ctx, "hot"); err != nil {
			t.Fatal(err)
		}
	}
	st, err := a.js.Stream(ctx, "PL_"+storeName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	for subj := range info.State.Subjects {
		if !strings.HasPrefix(subj, "pl."+storeName+".ev.") {
			t.Errorf("the event stream stored %q: only events belong in it", subj)
		}
	}
	// Every start after the first was a hand-over: 5 ends, 6 starts.
	ended := 0
	for _, r := range readLog(t, a.js, "hot") {
		if r.Event.Type == ledger.TypeSessionEnded && r.Event.Meta[ledger.MetaReason] == "handover" {
			ended++
		}
	}
	if ended != 5 {
		t.Fatalf("%d hand-over ends in the log, want 5", ended)
	}
}
