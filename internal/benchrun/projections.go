package benchrun

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
)

// projectorBatch is the pull batch of both sides of projector_tput: the
// projection's own (Projection pulls 512 at a time).
const projectorBatch = 512

// benchProjectorTput: projector_tput_vs_raw_consume. A store with a
// backlog of events (one event per message, spread over profiles); each
// round folds the whole backlog once through a new projection (from the
// start, a counting handler: the fold, the handler call and the ack), and
// once through a new raw durable pull consumer on the same filter that only
// acknowledges; the two alternate.
func benchProjectorTput(ctx context.Context, r *benchRun, _ func(string) bool) ([]Result, error) {
	_, js, err := r.env.connect("projector")
	if err != nil {
		return nil, err
	}
	st, err := r.env.openStore(ctx, js, "projector", "bench", newBenchProfile(512))
	if err != nil {
		return nil, err
	}
	defer closeStore(st)
	profiles, per := r.size.ProjectorProfiles, r.size.ProjectorEvents
	if profiles < 1 || per < 2 || r.size.ProjectorRounds < 1 {
		return nil, fmt.Errorf("size %s: ProjectorProfiles, ProjectorEvents (at least 2) and ProjectorRounds must be set", r.size.Label)
	}
	keys := make([]string, profiles)
	for i := range keys {
		keys[i] = fmt.Sprintf("proj-%05d", i)
	}
	t0 := time.Now()
	sessions, err := startSessions(ctx, st, keys, AggregateWorkers)
	if err != nil {
		return nil, err
	}
	err = parallel(ctx, profiles, AggregateWorkers, func(ctx context.Context, i int) error {
		for range per - 1 {
			if err := sessions[i].Mutate(ctx, "coin", addCoin); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	total := profiles * per // fences and mutations
	r.printf("%d events over %d profiles in %v", total, profiles, time.Since(t0).Round(time.Millisecond))
	n := storeNames(st)
	stream, err := js.Stream(ctx, n.Stream)
	if err != nil {
		return nil, err
	}

	round := 0
	project := func(ctx context.Context, _ time.Duration) (rate, error) {
		round++
		var events atomic.Int64
		all := make(chan struct{})
		p, err := st.Project(fmt.Sprintf("tput%d", round), func(ctx context.Context, c *profileledger.Change[benchProfile]) error {
			if events.Add(1) == int64(total) {
				close(all)
			}
			return nil
		}, profileledger.ProjectFromStart())
		if err != nil {
			return rate{}, err
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- p.Run(rctx) }()
		select {
		case <-all:
		case err := <-done:
			cancel()
			return rate{}, fmt.Errorf("projection stopped: %v", err)
		case <-ctx.Done():
		}
		elapsed := time.Since(start)
		cancel()
		if err := <-done; err != nil {
			return rate{}, err
		}
		if name, err := n.Projection(p.Name()); err == nil {
			stream.DeleteConsumer(context.Background(), name)
		}
		return rate{ops: total, elapsed: elapsed}, ctx.Err()
	}
	raw := func(ctx context.Context, _ time.Duration) (rate, error) {
		round++
		name := fmt.Sprintf("raw%d", round)
		start := time.Now()
		cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: name, FilterSubject: n.ProjectionFilter(), AckPolicy: jetstream.AckExplicitPolicy,
			MaxAckPending: 4 * projectorBatch, DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		if err != nil {
			return rate{}, err
		}
		defer stream.DeleteConsumer(context.Background(), name)
		it, err := cons.Messages(jetstream.PullMaxMessages(projectorBatch))
		if err != nil {
			return rate{}, err
		}
		defer it.Stop()
		for got := 0; got < total; got++ {
			m, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				return rate{}, err
			}
			m.Ack()
		}
		return rate{ops: total, elapsed: time.Since(start)}, nil
	}
	rs, err := alternateRates(ctx, r.size.ProjectorRounds, 0, side{"projection", project}, side{"raw-consume", raw})
	if err != nil {
		return nil, err
	}
	return []Result{result("projector_tput_vs_raw_consume", rs[0].perSecond(), UnitRate, rs[1].perSecond(),
		"projection (fold, handler, ack) %v; raw durable consumer that only acks %v; %d events over %d profiles per round, %d rounds each after a warm-up, alternating",
		rs[0], rs[1], total, profiles, r.size.ProjectorRounds)}, nil
}

// benchProjectorLag: projector_lag_p99_ms. The aggregate mutation load
// (AggregateWorkers workers over Sessions sessions, as
// aggregate_tput_vs_async) runs for a few seconds while a projection
// follows it; each event's lag is the time from the server storing its
// message to the projection's handler seeing it.
func benchProjectorLag(ctx context.Context, r *benchRun, _ func(string) bool) ([]Result, error) {
	_, js, err := r.env.connect("lag")
	if err != nil {
		return nil, err
	}
	st, err := r.env.openStore(ctx, js, "lag", "bench", newBenchProfile(512))
	if err != nil {
		return nil, err
	}
	defer closeStore(st)
	n := r.size.Sessions
	if r.size.LagLoad <= 0 || n < 1 {
		return nil, fmt.Errorf("size %s: LagLoad and Sessions must be set", r.size.Label)
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("lag-%05d", i)
	}
	sessions, err := startSessions(ctx, st, keys, AggregateWorkers)
	if err != nil {
		return nil, err
	}
	// The projection runs on its own connection, as another process's would.
	_, pjs, err := r.env.connect("lag-projection")
	if err != nil {
		return nil, err
	}
	pst, err := r.env.openStore(ctx, pjs, "lag", "projection", newBenchProfile(512))
	if err != nil {
		return nil, err
	}
	defer closeStore(pst)
	var mu sync.Mutex
	var lags latencies
	recording := atomic.Bool{}
	p, err := pst.Project("lag", func(ctx context.Context, c *profileledger.Change[benchProfile]) error {
		if recording.Load() && c.LastInMessage {
			d := time.Since(c.Event.Stored)
			mu.Lock()
			lags = append(lags, d)
			mu.Unlock()
		}
		return nil
	}, profileledger.ProjectFromNow())
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	defer func() { cancel(); <-done }()
	// Warm up (the consumer is made, the workers run), then record.
	load := func(d time.Duration) (rate, error) {
		return workFor(ctx, AggregateWorkers, d, func(ctx context.Context, w, i int) error {
			return sessions[(w+AggregateWorkers*i)%n].Mutate(ctx, "coin", addCoin)
		})
	}
	if _, err := load(300 * time.Millisecond); err != nil {
		return nil, err
	}
	// The warm-up's backlog (and each profile's first load) drained: the
	// recording measures following, not catching up.
	drained := func() bool {
		s, err := p.Status(ctx)
		return err == nil && s.LagEvents() == 0
	}
	for deadline := time.Now().Add(30 * time.Second); !drained(); {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the projection did not drain the warm-up: %+v", p.Counts())
		}
		time.Sleep(10 * time.Millisecond)
	}
	recording.Store(true)
	rt, err := load(r.size.LagLoad)
	if err != nil {
		return nil, err
	}
	// Let the projection drain what the load left.
	deadline := time.Now().Add(30 * time.Second)
	for p.Counts().Pending > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	recording.Store(false)
	mu.Lock()
	l := lags
	mu.Unlock()
	if len(l) == 0 {
		return nil, fmt.Errorf("the projection saw no event")
	}
	return []Result{result("projector_lag_p99_ms", float64(l.at(0.99).Microseconds())/1e3, UnitMillis, 0,
		"from the server storing an event to the projection's handler: %s over %d messages; the load: %v Mutate (%.0f /s, %d workers over %d sessions); projection %+v",
		l.summary(), len(l), rt, rt.perSecond(), AggregateWorkers, n, p.Counts())}, nil
}

// snapshotterEvery is the gain scenario's snapshotter interval: below the
// holders' 256, or a crashed holder's 255 events would never be cut.
const snapshotterEvery = 64

// benchSnapshotterGain: snapshotter_cold_get_vs_without and
// snapshotter_start_after_crash_vs_without. Two stores get the same
// profiles, each written by a holder that crashed (its connection closed)
// after 255 events, one short of its own snapshot; the snapshotter runs on
// one of the stores. Then Get (p50, alternating) and a Steal StartSession
// of each crashed profile (once each: it writes a snapshot when it ends)
// on both.
func benchSnapshotterGain(ctx context.Context, r *benchRun, want func(string) bool) ([]Result, error) {
	k := r.size.CrashedProfiles
	if k < 1 {
		return nil, fmt.Errorf("size %s: CrashedProfiles must be set", r.size.Label)
	}
	keys := make([]string, k)
	for i := range keys {
		keys[i] = fmt.Sprintf("crashed-%04d", i)
	}
	stores := make([]*profileledger.Store[benchProfile], 2)
	for i, name := range []string{"gain-with", "gain-without"} {
		// The holders, on a connection that dies.
		nc, hjs, err := r.env.connect(name + "-holder")
		if err != nil {
			return nil, err
		}
		hst, err := r.env.openStore(ctx, hjs, name, "holder", newBenchProfile(512))
		if err != nil {
			return nil, err
		}
		sessions, err := startSessions(ctx, hst, keys, AggregateWorkers)
		if err != nil {
			return nil, err
		}
		err = parallel(ctx, k, AggregateWorkers, func(ctx context.Context, i int) error {
			for range 254 { // and the fence: 255 events
				if err := sessions[i].Mutate(ctx, "coin", addCoin); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		nc.Close()
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		hst.Close(cctx) // abandons the sessions: the connection is gone
		cancel()
		_, js, err := r.env.connect(name)
		if err != nil {
			return nil, err
		}
		if stores[i], err = r.env.openStore(ctx, js, name, "bench", newBenchProfile(512)); err != nil {
			return nil, err
		}
		defer closeStore(stores[i])
	}
	with, without := stores[0], stores[1]
	snap, err := with.Snapshotter(snapshotterEvery)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	t0 := time.Now()
	go func() { done <- snap.Run(rctx) }()
	for {
		s, err := snap.Status(ctx)
		if err == nil && s.LagEvents() == 0 && snap.Counts().Snapshots >= uint64(k) {
			break
		}
		if ctx.Err() != nil || time.Since(t0) > time.Minute {
			cancel()
			<-done
			return nil, fmt.Errorf("the snapshotter did not catch up: %+v, %v", snap.Counts(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	caughtUp := time.Since(t0)
	cancel()
	if err := <-done; err != nil {
		return nil, err
	}
	r.printf("snapshotter: %d events, %d snapshots in %v", snap.Counts().Events, snap.Counts().Snapshots, caughtUp.Round(time.Millisecond))

	getOn := func(st *profileledger.Store[benchProfile], name string) sampler {
		i := 0
		return sampler{name, func(ctx context.Context) (time.Duration, error) {
			key := keys[i%k]
			i++
			t0 := time.Now()
			v, err := st.Get(ctx, key)
			d := time.Since(t0)
			if err == nil && v.Version == 0 {
				err = fmt.Errorf("%s: %q has no events", name, key)
			}
			return d, err
		}}
	}
	gets, err := alternate(ctx, 20, r.size.Samples/3, getOn(with, "get-with"), getOn(without, "get-without"))
	if err != nil {
		return nil, err
	}
	startOn := func(st *profileledger.Store[benchProfile], name string) sampler {
		i := 0
		return sampler{name, func(ctx context.Context) (time.Duration, error) {
			key := keys[i]
			i++
			t0 := time.Now()
			s, err := st.StartSession(ctx, key, profileledger.Steal())
			d := time.Since(t0)
			if err != nil {
				return d, err
			}
			if s.LoadReport().Replayed > 255 {
				return d, fmt.Errorf("%s: %q replayed %d events", name, key, s.LoadReport().Replayed)
			}
			return d, s.End(ctx)
		}}
	}
	starts, err := alternate(ctx, 0, k, startOn(with, "start-with"), startOn(without, "start-without"))
	if err != nil {
		return nil, err
	}
	return []Result{
		result("snapshotter_cold_get_vs_without", gets[0].µs(0.5), UnitMicros, gets[1].µs(0.5),
			"Get of a profile whose holder crashed after 255 events: with the snapshotter %s; without (255 events replayed) %s; %d samples each over %d profiles",
			gets[0].summary(), gets[1].summary(), len(gets[0].latencies), k),
		result("snapshotter_start_after_crash_vs_without", starts[0].µs(0.5), UnitMicros, starts[1].µs(0.5),
			"StartSession (Steal) of a profile whose holder crashed after 255 events, each once: with the snapshotter (every %d events) %s; without %s; the snapshotter caught up with %d events in %v",
			snapshotterEvery, starts[0].summary(), starts[1].summary(), snap.Counts().Events, caughtUp.Round(time.Millisecond)),
	}, nil
}
