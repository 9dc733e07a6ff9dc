package profileledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
	"github.com/prometheus/client_golang/prometheus"
)

// seen records what a projection's handler was given.
type seen struct {
	mu        sync.Mutex
	calls     int
	bySeq     map[string]int // "key/seq/index" -> times handled
	again     int            // calls told Delivered > 1
	lastAfter map[string]Player
	lastSeq   map[string]uint64
	ids       map[string]bool
}

func newSeen() *seen {
	return &seen{bySeq: map[string]int{}, lastAfter: map[string]Player{}, lastSeq: map[string]uint64{}, ids: map[string]bool{}}
}

func (s *seen) handler(t testing.TB) profileledger.Handler[Player] {
	return func(ctx context.Context, c *profileledger.Change[Player]) error {
		after, err := c.After()
		if err != nil {
			t.Errorf("After of %q at %d: %v", c.Key, c.Event.Seq, err)
			return nil
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.calls++
		s.ids[c.Event.ID] = true
		s.bySeq[fmt.Sprintf("%s/%d/%d", c.Key, c.Event.Seq, c.Event.Index)]++
		if c.Redelivered() {
			s.again++
		}
		if c.Event.Seq >= s.lastSeq[c.Key] { // sequence-checked: an older redelivery does not win
			s.lastSeq[c.Key], s.lastAfter[c.Key] = c.Event.Seq, after
		}
		return nil
	}
}

func (s *seen) count(key string, seq uint64, index int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bySeq[fmt.Sprintf("%s/%d/%d", key, seq, index)]
}

func (s *seen) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// logEvents returns every event of key in the log of store "players".
func logEvents(t testing.TB, js jetstream.JetStream, key string) []ledger.Record {
	t.Helper()
	var out []ledger.Record
	for _, r := range pltest.ReadLog(t, js, "players", key) {
		if r.Err == nil {
			out = append(out, r)
		}
	}
	return out
}

// runProjection runs p until the test ends (or stop is called) and
// returns stop, which waits for Run and returns its error.
func runProjection[T any](t testing.TB, p *profileledger.Projection[T]) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// allHandled reports whether h saw every event of keys in the log.
func allHandled(t testing.TB, js jetstream.JetStream, h *seen, keys ...string) bool {
	for _, k := range keys {
		for _, r := range logEvents(t, js, k) {
			if r.Event.ID != "forged-1" && h.count(k, r.Seq, r.Index) == 0 {
				return false
			}
		}
	}
	return true
}

// everyEventHandled fails t unless h saw every event of keys in the log.
func everyEventHandled(t testing.TB, js jetstream.JetStream, h *seen, keys ...string) int {
	t.Helper()
	n := 0
	for _, k := range keys {
		for _, r := range logEvents(t, js, k) {
			if r.Event.ID == "forged-1" {
				continue // not an event of the profile: see the fold test
			}
			if h.count(k, r.Seq, r.Index) == 0 {
				t.Errorf("event %s of %q (seq %d, %s) never reached the handler", r.Event.ID, k, r.Seq, r.Event.Type)
			}
			n++
		}
	}
	return n
}

func TestAProjectionFoldsEveryEventWithTheRulesOfALoad(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	a, b := start(t, st, "a"), start(t, st, "b.x")
	for i := range 20 {
		if err := a.Mutate(ctxT(t), "coins", addCoins(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Group commits: several events in one message.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { b.Apply(ctxT(t), "lvl", profileledger.Inc("/level", 1)) })
	}
	wg.Wait()
	if err := profileledger.Trade(ctxT(t), "swap", a, b, func(x, y *Player) error {
		x.Inventory, y.Coins = append(x.Inventory, "sword"), y.Coins-5
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A forged write behind the fence, as a zombie's would be: the fold
	// skips it, as a load does, and no handler sees it.
	forged := ledger.Event{V: 1, ID: "forged-1", Type: "coins", Session: "zombie", Epoch: 1, Time: time.Now(),
		Ops: []ledger.Op{{Op: "replace", Path: "/coins", Value: []byte("1000000")}}}
	data, _ := forged.Encode()
	tok, _ := keys.Encode("a")
	if _, err := e.js.Publish(ctxT(t), "pl.players.ev."+tok, data); err != nil {
		t.Fatal(err)
	}

	h := newSeen()
	p, err := st.Project("checker", h.handler(t))
	if err != nil {
		t.Fatal(err)
	}
	runProjection(t, p)
	for _, key := range []string{"a", "b.x"} {
		v, err := st.Get(ctxT(t), key)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the projection to reach "+key, func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.lastSeq[key] >= v.Version
		})
		h.mu.Lock()
		got := h.lastAfter[key]
		h.mu.Unlock()
		if fmt.Sprint(got) != fmt.Sprint(v.Data) {
			t.Errorf("%q: projection's After %+v, Get %+v", key, got, v.Data)
		}
	}
	everyEventHandled(t, e.js, h, "a", "b.x")
	if h.ids["forged-1"] || p.Counts().Skipped == 0 {
		t.Errorf("the forged message was not skipped: counts %+v", p.Counts())
	}
	if h.again != 0 {
		t.Errorf("%d calls were told they were redeliveries; none were", h.again)
	}
}

func TestAProjectionResumesAfterItsProcessCrashesWithNothingMissed(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	s := start(t, st, "p")
	for range 50 {
		if err := s.Mutate(ctxT(t), "coins", addCoins(1)); err != nil {
			t.Fatal(err)
		}
	}
	// The first process: its handler blocks at the 30th event, with
	// events delivered and not acknowledged; then its connection dies.
	nc1, err := nats.Connect(e.srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	js1, _ := jetstream.New(nc1)
	st1, err := profileledger.Open(ctxT(t), js1, "players", template())
	if err != nil {
		t.Fatal(err)
	}
	h := newSeen()
	blocked := make(chan struct{})
	release := make(chan struct{})
	inner := h.handler(t)
	p1, err := st1.Project("resume", func(ctx context.Context, c *profileledger.Change[Player]) error {
		if h.total() == 30 {
			close(blocked)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return errors.New("crashed")
		}
		return inner(ctx, c)
	}, profileledger.ProjectAckWait(time.Second), profileledger.ProjectPinTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	stop1 := runProjection(t, p1)
	<-blocked
	nc1.Close() // the crash: no more acks, no unpin
	close(release)
	stop1()
	st1.Close(ctxT(t))

	// More events while nobody projects.
	for range 20 {
		if err := s.Mutate(ctxT(t), "coins", addCoins(1)); err != nil {
			t.Fatal(err)
		}
	}
	p2, err := st.Project("resume", h.handler(t), profileledger.ProjectAckWait(time.Second), profileledger.ProjectPinTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	runProjection(t, p2)
	waitFor(t, "the second process to catch up", func() bool { return allHandled(t, e.js, h, "p") })
	n := everyEventHandled(t, e.js, h, "p")
	if h.total() < n {
		t.Fatalf("%d calls for %d events", h.total(), n)
	}
	// The second process must not start over: the 30 events the first
	// acknowledged are not handled again; the one it was handling when it
	// died comes again, marked as a redelivery.
	if h.total() >= n+30 {
		t.Errorf("%d calls for %d events: the checkpoint was not kept", h.total(), n)
	}
	if h.again == 0 {
		t.Error("no call was told it was a redelivery; the event the first process died on was one")
	}
	v, _ := st.Get(ctxT(t), "p")
	if h.lastAfter["p"].Coins != v.Data.Coins {
		t.Errorf("projected coins %d, Get %d", h.lastAfter["p"].Coins, v.Data.Coins)
	}
}

func TestTwoInstancesOfAProjectionOneActiveAndTheOtherTakesOverLosingNothing(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	s := start(t, st, "p")

	instance := func(name string, h *seen) (*profileledger.Projection[Player], *nats.Conn, *profileledger.Store[Player]) {
		nc, err := nats.Connect(e.srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		sti, err := profileledger.Open(ctxT(t), js, "players", template())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sti.Close(context.Background()) })
		p, err := sti.Project("pair", h.handler(t), profileledger.ProjectAckWait(time.Second), profileledger.ProjectPinTTL(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return p, nc, sti
	}
	ha, hb := newSeen(), newSeen()
	pa, nca, _ := instance("a", ha)
	stopA := runProjection(t, pa)
	waitFor(t, "A to be pinned", func() bool {
		s.Mutate(ctxT(t), "coins", addCoins(1))
		return pa.Active()
	})
	pb, _, _ := instance("b", hb)
	runProjection(t, pb)
	for range 40 {
		if err := s.Mutate(ctxT(t), "coins", addCoins(1)); err != nil {
			t.Fatal(err)
		}
	}
	v1 := s.Version()
	waitFor(t, "A to handle the first events", func() bool {
		ha.mu.Lock()
		defer ha.mu.Unlock()
		return ha.lastSeq["p"] >= v1
	})
	if hb.total() != 0 {
		t.Fatalf("B handled %d events while A was active", hb.total())
	}
	// A dies: its connection is cut, it does not unpin.
	nca.Close()
	stopA()
	for range 40 {
		if err := s.Mutate(ctxT(t), "coins", addCoins(1)); err != nil {
			t.Fatal(err)
		}
	}
	v2 := s.Version()
	both := newSeen()
	waitFor(t, "B to take over", func() bool {
		hb.mu.Lock()
		defer hb.mu.Unlock()
		if hb.lastSeq["p"] < v2 {
			return false
		}
		both = newSeen()
		for _, h := range []*seen{ha, hb} {
			for k, n := range h.bySeq {
				both.bySeq[k] += n
			}
		}
		return true
	})
	everyEventHandled(t, e.js, both, "p")
	got := hb.lastAfter["p"]
	v, _ := st.Get(ctxT(t), "p")
	if got.Coins != v.Data.Coins {
		t.Errorf("B's projected coins %d, Get %d", got.Coins, v.Data.Coins)
	}
	if !pb.Active() {
		t.Error("B is not active after A died")
	}
}

func TestAProjectionFromNowSkipsTheBacklogAndFromStartRebuilds(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	s := start(t, st, "p")
	for range 10 {
		if err := s.Mutate(ctxT(t), "coins", addCoins(1)); err != nil {
			t.Fatal(err)
		}
	}
	backlog := s.Version()
	hn := newSeen()
	pn, err := st.Project("now", hn.handler(t), profileledger.ProjectFromNow())
	if err != nil {
		t.Fatal(err)
	}
	stop := runProjection(t, pn)
	waitFor(t, "the consumer", func() bool { _, err := pn.Status(ctxT(t)); return err == nil })
	if err := s.Mutate(ctxT(t), "coins", addCoins(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new event", func() bool { return hn.total() > 0 })
	stop()
	if hn.total() != 1 || hn.lastSeq["p"] <= backlog {
		t.Fatalf("from now: %d calls, last seq %d (backlog ends at %d)", hn.total(), hn.lastSeq["p"], backlog)
	}
	// The same name rebuilt: everything from the first event.
	hr := newSeen()
	pr, err := st.Project("now", hr.handler(t), profileledger.ProjectFromStart())
	if err != nil {
		t.Fatal(err)
	}
	runProjection(t, pr)
	last := s.Version()
	waitFor(t, "the rebuild", func() bool {
		hr.mu.Lock()
		defer hr.mu.Unlock()
		return hr.lastSeq["p"] >= last
	})
	everyEventHandled(t, e.js, hr, "p")
	v, _ := st.Get(ctxT(t), "p")
	if hr.lastAfter["p"].Coins != v.Data.Coins {
		t.Errorf("rebuilt coins %d, Get %d", hr.lastAfter["p"].Coins, v.Data.Coins)
	}
	st2, err := pr.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the status to show no lag", func() bool {
		st2, err = pr.Status(ctxT(t))
		return err == nil && st2.LagEvents() == 0 && st2.AckFloor >= last
	})
}

func TestBadProjectionInputIsRefused(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	h := newSeen().handler(t)
	for _, c := range []struct {
		name string
		err  func() error
	}{
		{"bad name", func() error { _, err := st.Project("a.b", h); return err }},
		{"no handler", func() error { _, err := st.Project("x", nil); return err }},
		{"empty cache", func() error { _, err := st.Project("x", h, profileledger.ProjectCache(0)); return err }},
		{"short pin", func() error { _, err := st.Project("x", h, profileledger.ProjectPinTTL(time.Millisecond)); return err }},
		{"snapshotter interval", func() error { _, err := st.Snapshotter(0); return err }},
	} {
		if err := c.err(); !errors.Is(err, profileledger.ErrInvalidInput) {
			t.Errorf("%s: %v, want ErrInvalidInput", c.name, err)
		}
	}
	if _, err := profileledger.ProjectionStatusOf(ctxT(t), e.js, "players", "never-ran"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("status of a projection that never ran: %v", err)
	}
}

func TestAFailingOrPanickingHandlerIsRetriedOnTheSameEventAndNothingIsSkipped(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	s := start(t, st, "p")
	for range 5 {
		if err := s.Mutate(ctxT(t), "coins", addCoins(1)); err != nil {
			t.Fatal(err)
		}
	}
	h := newSeen()
	inner := h.handler(t)
	var mu sync.Mutex
	failures := 0
	p, err := st.Project("flaky", func(ctx context.Context, c *profileledger.Change[Player]) error {
		mu.Lock()
		n := failures
		if c.Event.Seq == 3 && n < 2 {
			failures++
		}
		mu.Unlock()
		switch {
		case c.Event.Seq == 3 && n == 0:
			return errors.New("database down")
		case c.Event.Seq == 3 && n == 1:
			panic("handler bug")
		}
		return inner(ctx, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	runProjection(t, p)
	waitFor(t, "every event", func() bool { return allHandled(t, e.js, h, "p") })
	if c := p.Counts(); c.HandlerErrors != 2 {
		t.Fatalf("handler errors %d, want 2 (an error, then a panic)", c.HandlerErrors)
	}
	// No event was skipped or handled twice.
	if h.total() != len(logEvents(t, e.js, "p")) {
		t.Fatalf("%d calls for %d events", h.total(), len(logEvents(t, e.js, "p")))
	}
}

// TestAProjectionSkipsWhatAnErasurePurgedUnderIt: messages of a profile
// delivered to a projection before an erasure purged them, and folded
// after, have no predecessor left in the log: the projection skips them
// (it used to stop with ErrBadEvent, folding onto nothing), and the
// snapshotter writes no snapshot of the erased data.
func TestAProjectionSkipsWhatAnErasurePurgedUnderIt(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	ctx := ctxT(t)
	// The two profiles' events interleave: with a one-profile cache each
	// message of one needs a load.
	first, erased := start(t, st, "first"), start(t, st, "erased")
	for range 3 {
		for _, s := range []*profileledger.Session[Player]{first, erased} {
			if err := s.Mutate(ctx, "coins", addCoins(1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range []*profileledger.Session[Player]{first, erased} {
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The handler holds the projection on the first profile's first event
	// while "erased" is erased: its messages are delivered (buffered) by
	// then, and with a one-profile cache each needs a load.
	release := make(chan struct{})
	var once sync.Once
	handled := newSeen()
	inner := handled.handler(t)
	p, err := st.Project("erasure", func(ctx context.Context, c *profileledger.Change[Player]) error {
		if c.Key == "first" {
			once.Do(func() { <-release })
		}
		return inner(ctx, c)
	}, profileledger.ProjectCache(1), profileledger.ProjectFromStart())
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { errc <- p.Run(pctx) }()
	time.Sleep(300 * time.Millisecond) // sequencing: the first messages are delivered and the handler holds
	if err := st.Erase(ctx, "erased"); err != nil {
		t.Fatal(err)
	}
	close(release)
	// Wait for the projection to reach the end of the stream.
	for {
		status, err := p.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if status.LagEvents() == 0 {
			break
		}
		select {
		case err := <-errc:
			t.Fatalf("the projection stopped: %v", err)
		case <-ctx.Done():
			t.Fatal("the projection did not catch up")
		case <-time.After(50 * time.Millisecond):
		}
	}
	select {
	case err := <-errc:
		t.Fatalf("the projection stopped: %v", err)
	default:
	}
	if got := handled.total(); got == 0 {
		t.Fatal("the projection handled nothing")
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// TestAProjectionsMetricsCountWhatItDidAndShowAStall: the collector gives
// the events folded, the lag as of the last delivery, and the seconds
// since that delivery, which keep growing while nothing is delivered.
func TestAProjectionsMetricsCountWhatItDidAndShowAStall(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	ctx := ctxT(t)
	s := start(t, st, "k")
	for range 4 {
		if err := s.Mutate(ctx, "coins", addCoins(1)); err != nil {
			t.Fatal(err)
		}
	}
	h := newSeen()
	p, err := st.Project("metrics", h.handler(t))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p.Collector())
	runProjection(t, p)
	for !allHandled(t, e.js, h, "k") {
		select {
		case <-ctx.Done():
			t.Fatal("the projection did not handle the log")
		case <-time.After(20 * time.Millisecond):
		}
	}
	labels := map[string]string{"store": "players", "projection": "metrics"}
	if got := metricValue(t, reg, "profileledger_projection_events_total", labels); got != float64(h.total()) {
		t.Errorf("events_total = %v, want the %d events handled", got, h.total())
	}
	if got := metricValue(t, reg, "profileledger_projection_lag_events", labels); got != 0 {
		t.Errorf("lag_events = %v after catching up, want 0", got)
	}
	first := metricValue(t, reg, "profileledger_projection_seconds_since_delivery", labels)
	time.Sleep(200 * time.Millisecond) // the window measured: nothing is appended
	if later := metricValue(t, reg, "profileledger_projection_seconds_since_delivery", labels); later < first+0.1 {
		t.Errorf("seconds_since_delivery went from %v to %v over 200 ms without a delivery", first, later)
	}
}
