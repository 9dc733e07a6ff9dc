package benchrun

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/retry"
)

// benchHandover: handover_p99_ms. Two Stores on two connections take one
// profile from each other in turn: every StartSession asks the live holder
// (the other Store) to hand over, and then makes one mutation.
func benchHandover(ctx context.Context, r *benchRun, _ func(string) bool) ([]Result, error) {
	var jss []jetstream.JetStream
	for i := range 2 {
		_, js, err := r.env.connect(fmt.Sprintf("handover-%d", i+1))
		if err != nil {
			return nil, err
		}
		jss = append(jss, js)
	}
	res, err := handover(ctx, r, jss, "handover_p99_ms", "two connections")
	if err != nil {
		return nil, err
	}
	return []Result{res}, nil
}

// handover measures result name (handover_p99_ms or its cluster twin)
// between a Store on each of jss; where says where they are connected.
func handover(ctx context.Context, r *benchRun, jss []jetstream.JetStream, name, where string) (Result, error) {
	var stores []*profileledger.Store[benchProfile]
	for i, js := range jss {
		st, err := r.env.openStore(ctx, js, "handover", fmt.Sprintf("holder-%d", i+1), newBenchProfile(512))
		if err != nil {
			return Result{}, err
		}
		defer closeStore(st)
		stores = append(stores, st)
	}
	const key = "hot"
	if _, err := stores[0].StartSession(ctx, key); err != nil {
		return Result{}, err
	}
	i := 0
	handover := func(ctx context.Context) (time.Duration, error) {
		i++
		t0 := time.Now()
		s, err := stores[i%2].StartSession(ctx, key)
		d := time.Since(t0)
		if err != nil {
			return d, err
		}
		return d, s.Apply(ctx, "coin", profileledger.Inc("/coins", 1))
	}
	ls, err := alternate(ctx, 20, r.size.Handovers, sampler{"handover", handover})
	if err != nil {
		return Result{}, err
	}
	ms := func(q float64) float64 { return ls[0].µs(q) / 1e3 }
	slow := 0
	for _, d := range ls[0].latencies {
		if d > 100*time.Millisecond {
			slow++
		}
	}
	return result(name, ms(0.99), UnitMillis, 0,
		"p50 %.2f ms, p90 %.2f ms, max %.2f ms, %d over 100 ms; %d hand-overs between two Stores on %s, each followed by one mutation",
		ms(0.5), ms(0.9), ms(1), slow, len(ls[0].latencies), where), nil
}

// benchTakeover: takeover_dead_vs_ttl. Holders, each a Store on its own
// connection, hold one profile each; each crashes (its connection is closed:
// no End, no Close, no more renewals or hand-over replies) at a random moment
// of its renewal period, and a contender Store starts a session on its
// profile at once. The time is from the crash to StartSession's return.
func benchTakeover(ctx context.Context, r *benchRun, _ func(string) bool) ([]Result, error) {
	_, js, err := r.env.connect("takeover-contender")
	if err != nil {
		return nil, err
	}
	connect := func(name string, _ int) (*nats.Conn, jetstream.JetStream, error) { return r.env.connect(name) }
	res, err := takeover(ctx, r, js, connect, "takeover_dead_vs_ttl", "")
	if err != nil {
		return nil, err
	}
	return []Result{res}, nil
}

// takeover measures result name (takeover_dead_vs_ttl or its cluster
// twin): the contender's Store is on js, and the i-th holder of a round
// on a connection of connect's; where ends the note ("" or "; ...").
func takeover(ctx context.Context, r *benchRun, js jetstream.JetStream, connect func(name string, i int) (*nats.Conn, jetstream.JetStream, error), name, where string) (Result, error) {
	ttl := r.size.LeaseTTL
	contender, err := r.env.openStore(ctx, js, "takeover", "contender", newBenchProfile(512), profileledger.WithLeaseTTL(ttl))
	if err != nil {
		return Result{}, err
	}
	defer closeStore(contender)

	var mu sync.Mutex
	var ds latencies
	for round := range r.size.CrashRounds {
		type holder struct {
			key   string
			crash func()
			store *profileledger.Store[benchProfile]
		}
		holders := make([]holder, r.size.Crashers)
		for i := range holders {
			name := fmt.Sprintf("holder-%d-%d", round, i)
			nc, js, err := connect("takeover-"+name, i)
			if err != nil {
				return Result{}, err
			}
			// It is going to lose its session: its warnings are no news.
			st, err := r.env.openStore(ctx, js, "takeover", name, newBenchProfile(512),
				profileledger.WithLeaseTTL(ttl), profileledger.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				return Result{}, err
			}
			key := fmt.Sprintf("dead-%d-%d", round, i)
			if _, err := st.StartSession(ctx, key); err != nil {
				st.Close(ctx)
				return Result{}, err
			}
			holders[i] = holder{key: key, crash: nc.Close, store: st}
		}
		err := parallel(ctx, len(holders), len(holders), func(ctx context.Context, i int) error {
			h := holders[i]
			// Renewals come every TTL/3: crash anywhere in that period.
			if !retry.Sleep(ctx, rand.N(ttl/3)) {
				return ctx.Err()
			}
			t0 := time.Now()
			h.crash()
			sctx, cancel := context.WithTimeout(ctx, 10*ttl+10*time.Second)
			defer cancel()
			s, err := contender.StartSession(sctx, h.key)
			d := time.Since(t0)
			if err != nil {
				return fmt.Errorf("take over %s: %w", h.key, err)
			}
			mu.Lock()
			ds = append(ds, d)
			mu.Unlock()
			return s.End(ctx)
		})
		// The crashed stores cannot end anything: close them quickly.
		var wg sync.WaitGroup
		for _, h := range holders {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				h.store.Close(cctx)
			})
		}
		wg.Wait()
		if err != nil {
			return Result{}, err
		}
	}
	s := func(q float64) float64 { return ds.µs(q) / 1e6 }
	late := 0 // past the TTL by more than half of it
	for _, d := range ds {
		if d > ttl*3/2 {
			late++
		}
	}
	return result(name, s(0.5), UnitSeconds, ttl.Seconds(),
		"min %.3f s, max %.3f s (ratio %.2f), %d over 1.5 TTL; %d crashes (%d rounds of %d holders, each on its own connection), lease TTL %v%s",
		s(0), s(1), s(1)/ttl.Seconds(), late, len(ds), r.size.CrashRounds, r.size.Crashers, ttl, where), nil
}
