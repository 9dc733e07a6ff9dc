package pltest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
)

// Workload is a small random workload on your own profile type T: players
// start sessions of a few profiles on several Stores (the game servers),
// so that profiles are handed over between Stores and sometimes stolen,
// and run your mutation and trade functions on them. Run then reads every
// profile's log back and checks it against what each call was told —
// the verification profileledger's demo does:
//
//   - every acknowledged mutation and trade is in the log exactly once (a
//     trade in both profiles' logs), a rejected one never, an uncertain
//     one at most once (a trade on both sides or on neither);
//   - each session's acknowledged events are in the log in the order they
//     were acknowledged;
//   - the log keeps the auditor's invariants (Audit runs over the whole
//     store, snapshots included);
//   - Store.Get of every profile equals the plain fold of its log, and
//     equals what your functions give when they are replayed, in log
//     order, on the template — so a lost, doubled or reordered change, or
//     a change your function made that the log did not record, shows up;
//   - Check, if set, holds on the final data of all profiles.
//
// Every failed check fails the test (t.Error), one line each.
//
// Each call's event type is its function's Name followed by "#" and a
// number, which is how Run finds it in the log. Functions must be
// deterministic — depend only on the profiles they are given — as
// Mutate's and Trade's functions should be anyway (they may run more than
// once), and must change the profile whenever they return nil: a mutation
// that changes nothing appends nothing, and Run would report it as an
// acknowledged write that is missing. A function may return an error to
// decline (say, not enough coins): nothing is appended, and Run counts it
// as declined.
type Workload[T any] struct {
	// Template is the stores' template: a new profile starts as it.
	Template T
	// Mutations are what a player does to one profile; each call picks one
	// at random. At least one is required.
	Mutations []Mutation[T]
	// Trades, if any, are run between two profiles held by the same Store
	// (profileledger.Trade); a call is a trade about one time in four.
	Trades []Trade[T]
	// Options are given to profileledger.Open for every Store.
	Options []profileledger.Option
	// URLs are the servers the Stores connect to, one Store (with its own
	// connection) per URL; a URL may repeat, and may be a Proxy's. If
	// empty, Run starts a server (Run) for three Stores.
	URLs []string
	// Keys is how many profiles are played ("user:1", "user:2", ...): few,
	// so that players contend for them. Default 4, at least 2 with Trades.
	Keys int
	// Players is how many players play at once. Default 4.
	Players int
	// Calls is how many mutations and trades are tried in all. Default 200.
	Calls int
	// Seed makes the random choices repeatable (the timing is not).
	Seed uint64
	// Check, if set, is called with the final data of every profile, by
	// key; an error fails the test. Put invariants across profiles here,
	// such as conservation of coins by trades.
	Check func(profiles map[string]T) error
}

// Mutation is one kind of change a player makes to one profile.
type Mutation[T any] struct {
	// Name is the event type (before the "#" and number Run adds).
	Name string
	// Fn changes the profile, as Session.Mutate's function does.
	Fn func(p *T) error
}

// Trade is one kind of change to two profiles at once.
type Trade[T any] struct {
	// Name is the event type of both events (before the "#" and number).
	Name string
	// Fn changes both profiles, as profileledger.Trade's function does.
	Fn func(a, b *T) error
}

// WorkloadReport counts what a Workload did.
type WorkloadReport struct {
	// Calls is how many mutations and trades were tried.
	Calls int
	// Acknowledged, Rejected, Declined and Uncertain count the calls by
	// outcome; Declined ones are those the function itself refused.
	Acknowledged, Rejected, Declined, Uncertain int
	// UncertainLanded is how many uncertain calls are in the log.
	UncertainLanded int
	// Trades is how many trades were acknowledged.
	Trades int
	// Starts is how many sessions started (Steals of them by stealing);
	// Ends how many the players ended themselves (Close ended the rest).
	Starts, Steals, Ends int
	// Events is how many events the logs hold, session markers included.
	Events int
	// Errors counts the errors the players saw, by message.
	Errors map[string]int
}

const (
	// workloadTimeout bounds a whole Workload run.
	workloadTimeout = 3 * time.Minute
	// startTimeout and callTimeout bound each StartSession and each
	// Mutate or Trade.
	startTimeout = 5 * time.Second
	callTimeout  = 3 * time.Second
	// stealOdds is one in how many starts steal.
	stealOdds = 10
	// tradeOdds is one in how many calls are trades, when there are some.
	tradeOdds = 4
)

// call is one mutation or trade a player tried, and what it was told.
type call struct {
	typ      string   // the event type, unique to the call
	keys     []string // the profile; a trade's two, its a first
	sessions []string // the sessions' ids, in keys' order
	mutation int      // index in Mutations, or -1 for a trade
	trade    int      // index in Trades, or -1
	outcome  Outcome  // Rejected also for a declined call
	declined bool     // the function returned the error
	errText  string   // the error, if any
	ackSeq   int      // acknowledgement order, across the run
}

// run is one Workload run in progress.
type run[T any] struct {
	w      *Workload[T]
	keys   []string
	stores []*profileledger.Store[T]
	next   atomic.Int64 // calls handed out

	mu     sync.Mutex
	calls  []*call
	acks   int
	report WorkloadReport
}

// Run runs the workload and verifies it (see Workload), and returns what
// it did. Call it from the test's goroutine. The Stores it opens are
// closed before the verification, so every session has ended by then. It
// takes a few seconds with the defaults, and at most a few minutes.
func (w Workload[T]) Run(t testing.TB) WorkloadReport {
	t.Helper()
	if len(w.Mutations) == 0 {
		t.Fatal("pltest: Workload needs at least one Mutation")
	}
	w.Keys = cmp0(w.Keys, 4)
	w.Players = cmp0(w.Players, 4)
	w.Calls = cmp0(w.Calls, 200)
	if len(w.Trades) > 0 && w.Keys < 2 {
		t.Fatal("pltest: Workload with Trades needs at least 2 Keys")
	}
	urls := w.URLs
	if len(urls) == 0 {
		u := Run(t).URL()
		urls = []string{u, u, u}
	}
	r := &run[T]{w: &w, report: WorkloadReport{Errors: map[string]int{}}}
	for i := range w.Keys {
		r.keys = append(r.keys, "user:"+strconv.Itoa(i+1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), workloadTimeout)
	defer cancel()
	for i, u := range urls {
		js := Connect(t, u)
		opts := append([]profileledger.Option{profileledger.WithNode(fmt.Sprintf("node-%d", i+1))}, w.Options...)
		st, err := profileledger.Open(ctx, js, StoreName, w.Template, opts...)
		if err != nil {
			t.Fatalf("pltest: workload: open store on %s: %v", u, err)
		}
		t.Cleanup(func() { closeStore(st) }) // if the run stops early
		r.stores = append(r.stores, st)
	}

	var wg sync.WaitGroup
	for p := range w.Players {
		wg.Go(func() { r.play(ctx, rand.New(rand.NewPCG(w.Seed, uint64(p)))) })
	}
	wg.Wait()
	for _, st := range r.stores {
		if err := closeStore(st); err != nil {
			r.noteErr("close", err)
		}
	}
	if ctx.Err() != nil {
		t.Errorf("pltest: workload: not done after %v", workloadTimeout)
	}
	r.verify(ctx, t, Connect(t, urls[0]))
	rep := r.report
	t.Logf("pltest: workload: %d calls: %d acknowledged (%d trades), %d rejected, %d declined, %d uncertain (%d landed); %d starts (%d steals), %d ends; %d events",
		rep.Calls, rep.Acknowledged, rep.Trades, rep.Rejected, rep.Declined, rep.Uncertain, rep.UncertainLanded,
		rep.Starts, rep.Steals, rep.Ends, rep.Events)
	if len(rep.Errors) > 0 {
		var b strings.Builder
		b.WriteString("pltest: workload: errors the players saw:")
		for _, e := range slices.Sorted(maps.Keys(rep.Errors)) {
			fmt.Fprintf(&b, "\n%5d × %s", rep.Errors[e], e)
		}
		t.Log(b.String())
	}
	return rep
}

func cmp0(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// closeStore closes st, bounded; closing twice is safe.
func closeStore[T any](st *profileledger.Store[T]) error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return st.Close(ctx)
}

// take hands out the next call's number, false once all are handed out.
func (r *run[T]) take() (int, bool) {
	n := r.next.Add(1)
	return int(n), n <= int64(r.w.Calls)
}

// play is one player: it starts a session of a random profile on a random
// Store, makes a few calls, and ends the session or leaves it to be
// handed over, until the calls run out.
func (r *run[T]) play(ctx context.Context, rng *rand.Rand) {
	for ctx.Err() == nil && r.next.Load() < int64(r.w.Calls) {
		st := r.stores[rng.IntN(len(r.stores))]
		key := r.keys[rng.IntN(len(r.keys))]
		s, ok := r.start(ctx, st, key, rng.IntN(stealOdds) == 0)
		if !ok {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for range 1 + rng.IntN(6) {
			n, ok := r.take()
			if !ok {
				break
			}
			var c *call
			if len(r.w.Trades) > 0 && rng.IntN(tradeOdds) == 0 {
				c = r.trade(ctx, rng, st, s, n)
			} else {
				c = r.mutate(ctx, rng, s, n)
			}
			if c != nil && c.outcome != Acknowledged && !c.declined {
				break // the session may be over: start again
			}
		}
		if rng.IntN(3) == 0 {
			r.end(ctx, s)
		}
	}
}

func (r *run[T]) start(ctx context.Context, st *profileledger.Store[T], key string, steal bool) (*profileledger.Session[T], bool) {
	var opts []profileledger.SessionOption
	if steal {
		opts = append(opts, profileledger.Steal())
	}
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	s, err := st.StartSession(sctx, key, opts...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.report.Errors["start: "+brief(err.Error(), 80)]++
		return nil, false
	}
	r.report.Starts++
	if steal {
		r.report.Steals++
	}
	return s, true
}

func (r *run[T]) end(ctx context.Context, s *profileledger.Session[T]) {
	ectx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := s.End(ectx); err != nil {
		r.noteErr("end", err)
		return
	}
	r.mu.Lock()
	r.report.Ends++
	r.mu.Unlock()
}

// fnResult keeps the last error a user function returned, which may be
// on another goroutine (a group commit runs its members' functions).
type fnResult struct {
	mu  sync.Mutex
	err error
}

func (f *fnResult) set(err error) error {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
	return err
}

// declined reports whether err is the function's own error.
func (f *fnResult) declined(err error) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return err != nil && f.err != nil && errors.Is(err, f.err)
}

func (r *run[T]) mutate(ctx context.Context, rng *rand.Rand, s *profileledger.Session[T], n int) *call {
	i := rng.IntN(len(r.w.Mutations))
	m := r.w.Mutations[i]
	c := &call{typ: m.Name + "#" + strconv.Itoa(n), keys: []string{s.Key()}, sessions: []string{s.ID()}, mutation: i, trade: -1}
	var res fnResult
	mctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := s.Mutate(mctx, c.typ, func(p *T) error { return res.set(m.Fn(p)) })
	r.record(c, err, res.declined(err))
	return c
}

func (r *run[T]) trade(ctx context.Context, rng *rand.Rand, st *profileledger.Store[T], a *profileledger.Session[T], n int) *call {
	var other []string
	for _, k := range r.keys {
		if k != a.Key() {
			other = append(other, k)
		}
	}
	b, ok := r.start(ctx, st, other[rng.IntN(len(other))], false)
	if !ok {
		return nil // not tried: the number is not used
	}
	i := rng.IntN(len(r.w.Trades))
	tr := r.w.Trades[i]
	c := &call{typ: tr.Name + "#" + strconv.Itoa(n), keys: []string{a.Key(), b.Key()}, sessions: []string{a.ID(), b.ID()}, mutation: -1, trade: i}
	var res fnResult
	tctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := profileledger.Trade(tctx, c.typ, a, b, func(x, y *T) error { return res.set(tr.Fn(x, y)) })
	r.record(c, err, res.declined(err))
	if rng.IntN(2) == 0 {
		r.end(ctx, b)
	}
	return c
}

// record notes what a call was told.
func (r *run[T]) record(c *call, err error, declined bool) {
	c.outcome, c.declined = OutcomeOf(err), declined
	if declined {
		c.outcome = Rejected
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
	r.report.Calls++
	switch {
	case declined:
		r.report.Declined++
	case c.outcome == Acknowledged:
		r.report.Acknowledged++
		r.acks++
		c.ackSeq = r.acks
		if c.trade >= 0 {
			r.report.Trades++
		}
	case c.outcome == Rejected:
		r.report.Rejected++
	default:
		r.report.Uncertain++
	}
	if err != nil {
		c.errText = err.Error()
		if !declined {
			r.report.Errors[brief(err.Error(), 80)]++
		}
	}
}

func (r *run[T]) noteErr(what string, err error) {
	r.mu.Lock()
	r.report.Errors[what+": "+brief(err.Error(), 80)]++
	r.mu.Unlock()
}

// brief cuts s to at most n bytes.
func brief(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
