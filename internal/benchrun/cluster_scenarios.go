package benchrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/names"
)

// The cluster scenarios run on an embedded 3-node cluster (benchEnv with a
// benchCluster): every Store is opened with WithReplicas(3), every baseline
// stream and bucket is R3. Clients connect to members chosen by where the
// store's event stream is led, and each note says where.

// placeStore opens store s once (creating its R3 stream and buckets) and
// returns the index of the member leading its event stream.
func placeStore(ctx context.Context, r *benchRun, s string) (int, error) {
	_, js, err := r.env.connect("place-" + s)
	if err != nil {
		return -1, err
	}
	st, err := r.env.openStore(ctx, js, s, "bench", newBenchProfile(512))
	if err != nil {
		return -1, err
	}
	stream := storeNames(st).Stream
	if err := closeStore(st); err != nil {
		return -1, err
	}
	return r.env.cluster.streamLeader(ctx, stream)
}

// memberName returns the name of member i, as in the notes.
func memberName(i int) string { return fmt.Sprintf("S-%d", i+1) }

// clusterMutateVsRaw: cluster_mutate_p50_vs_raw. mutate_p50_vs_raw on the
// cluster: Mutate and the raw publish share one connection to a member
// that follows the stream (two clients in three land on one), so both pay
// the same hop to the leader.
func clusterMutateVsRaw(ctx context.Context, r *benchRun, _ func(string) bool) ([]Result, error) {
	leader, err := placeStore(ctx, r, "mutate")
	if err != nil {
		return nil, err
	}
	follower := (leader + 1) % clusterSize
	_, js, err := r.env.connectTo("mutate", follower)
	if err != nil {
		return nil, err
	}
	res, err := mutateVsRaw(ctx, r, js, "cluster_mutate_p50_vs_raw",
		fmt.Sprintf("; R3 stream led by %s, both on a connection to %s (a follower)", memberName(leader), memberName(follower)))
	if err != nil {
		return nil, err
	}
	return []Result{res}, nil
}

// clusterTrade: cluster_trade_p50_ms. One goroutine's Trade of a coin
// between two sessions (one atomic batch of two fenced appends, which an
// R3 stream stages in memory until the batch commits) against Mutate on a
// third session, one of each per round, on a connection to a follower.
func clusterTrade(ctx context.Context, r *benchRun, _ func(string) bool) ([]Result, error) {
	leader, err := placeStore(ctx, r, "trade")
	if err != nil {
		return nil, err
	}
	follower := (leader + 1) % clusterSize
	_, js, err := r.env.connectTo("trade", follower)
	if err != nil {
		return nil, err
	}
	st, err := r.env.openStore(ctx, js, "trade", "bench", newBenchProfile(512))
	if err != nil {
		return nil, err
	}
	defer closeStore(st)
	ss, err := startSessions(ctx, st, []string{"trader-a", "trader-b", "mutator"}, 3)
	if err != nil {
		return nil, err
	}
	trade := func(ctx context.Context) (time.Duration, error) {
		t0 := time.Now()
		err := profileledger.Trade(ctx, "trade", ss[0], ss[1], func(a, b *benchProfile) error {
			a.Coins--
			b.Coins++
			return nil
		})
		return time.Since(t0), err
	}
	mutate := func(ctx context.Context) (time.Duration, error) {
		t0 := time.Now()
		err := ss[2].Mutate(ctx, "coin", addCoin)
		return time.Since(t0), err
	}
	ls, err := alternate(ctx, 20, max(r.size.Samples/2, 1), sampler{"trade", trade}, sampler{"mutate", mutate})
	if err != nil {
		return nil, err
	}
	if a, b := ss[0].Data().Coins, ss[1].Data().Coins; a+b != 0 {
		return nil, fmt.Errorf("trades did not conserve coins: %d + %d", a, b)
	}
	return []Result{result("cluster_trade_p50_ms", ls[0].µs(0.5)/1e3, UnitMillis, ls[1].µs(0.5)/1e3,
		"Trade %s, %.0f µs process CPU during each; Mutate %s; %d samples each, alternating; R3 stream led by %s, on a connection to %s (a follower)",
		ls[0].summary(), ls[0].cpuEach(), ls[1].summary(), len(ls[0].latencies), memberName(leader), memberName(follower))}, nil
}

// clusterHandover: cluster_handover_p99_ms. handover_p99_ms with the two
// Stores on the two members that follow the stream: each hand-over
// request crosses a route, and every append goes to the third member.
func clusterHandover(ctx context.Context, r *benchRun, _ func(string) bool) ([]Result, error) {
	leader, err := placeStore(ctx, r, "handover")
	if err != nil {
		return nil, err
	}
	var jss []jetstream.JetStream
	var on []string
	for k := range 2 {
		m := (leader + 1 + k) % clusterSize
		_, js, err := r.env.connectTo(fmt.Sprintf("handover-%d", k+1), m)
		if err != nil {
			return nil, err
		}
		jss, on = append(jss, js), append(on, memberName(m))
	}
	res, err := handover(ctx, r, jss, "cluster_handover_p99_ms",
		fmt.Sprintf("connections to %s and %s (R3 stream led by %s)", on[0], on[1], memberName(leader)))
	if err != nil {
		return nil, err
	}
	return []Result{res}, nil
}

// clusterTakeover: cluster_takeover_dead_vs_ttl. takeover_dead_vs_ttl on
// the cluster: the holders' connections spread over the three members, the
// contender on a follower of the stream.
func clusterTakeover(ctx context.Context, r *benchRun, _ func(string) bool) ([]Result, error) {
	leader, err := placeStore(ctx, r, "takeover")
	if err != nil {
		return nil, err
	}
	follower := (leader + 1) % clusterSize
	_, js, err := r.env.connectTo("takeover-contender", follower)
	if err != nil {
		return nil, err
	}
	connect := func(name string, i int) (*nats.Conn, jetstream.JetStream, error) {
		return r.env.connectTo(name, i%clusterSize)
	}
	res, err := takeover(ctx, r, js, connect, "cluster_takeover_dead_vs_ttl",
		fmt.Sprintf("; holders on the three members in turn, contender on %s (a follower; R3 stream led by %s)", memberName(follower), memberName(leader)))
	if err != nil {
		return nil, err
	}
	return []Result{res}, nil
}

// clusterNodeKill: cluster_takeover_after_node_kill. A holder on a
// connection to the member that leads the store's event stream holds one
// profile; then that machine dies: the holder's connection closes and the
// member is killed (its routes reset before it stops, so it hands no raft
// leadership over). A contender on another member starts a session on
// the profile at once and makes one mutation; the time is from the kill
// to that mutation's acknowledgement. It waits for the holder's lease to
// expire and, while the survivors elect a new leader for every group the
// dead member led, for the stream and the bucket to answer again. Between
// rounds the member restarts and catches up; after the last it stays down
// (this scenario runs last).
func clusterNodeKill(ctx context.Context, r *benchRun, _ func(string) bool) ([]Result, error) {
	ttl := r.size.LeaseTTL
	c := r.env.cluster
	var ds latencies
	var where []string
	tries := 0
	for round := range r.size.ClusterKills {
		victim, err := placeStore(ctx, r, "nodekill")
		if err != nil {
			return nil, err
		}
		survivor := (victim + 1) % clusterSize
		d, leases, err := killOnce(ctx, r, round, victim, survivor, ttl, &tries)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", round+1, err)
		}
		ds = append(ds, d)
		where = append(where, fmt.Sprintf("killed %s (leading the stream, %s), contender on %s: %.3f s",
			memberName(victim), leases, memberName(survivor), d.Seconds()))
		r.printf("%s", where[len(where)-1])
		if round == r.size.ClusterKills-1 {
			break
		}
		t0 := time.Now()
		if err := c.restart(ctx, victim); err != nil {
			return nil, err
		}
		if err := waitStoreCurrent(ctx, r, "nodekill"); err != nil {
			return nil, err
		}
		r.printf("%s restarted and current in %v", memberName(victim), time.Since(t0).Round(time.Millisecond))
	}
	s := func(q float64) float64 { return ds.µs(q) / 1e6 }
	return []Result{result("cluster_takeover_after_node_kill", s(0.5), UnitSeconds, ttl.Seconds(),
		"min %.3f s, max %.3f s (ratio %.2f); %d kills, lease TTL %v; nats-server elects a new raft leader 4 to 9 s after losing the old one; StartSession attempts, each bounded by %v, %v apart: %d; %s",
		s(0), s(1), s(1)/ttl.Seconds(), len(ds), ttl, max(2*time.Second, 2*ttl), killRetryPause, tries, strings.Join(where, "; "))}, nil
}

// killOnce is one round of clusterNodeKill: it returns the time from the
// kill to the contender's first acknowledged mutation, and whether the
// victim led the lease bucket too, for the note. It adds the contender's
// StartSession attempts to tries.
func killOnce(ctx context.Context, r *benchRun, round, victim, survivor int, ttl time.Duration, tries *int) (time.Duration, string, error) {
	hnc, hjs, err := r.env.connectTo(fmt.Sprintf("nodekill-holder-%d", round), victim)
	if err != nil {
		return 0, "", err
	}
	// It is going to lose its session: its warnings are no news.
	holder, err := r.env.openStore(ctx, hjs, "nodekill", fmt.Sprintf("holder-%d", round), newBenchProfile(512),
		profileledger.WithLeaseTTL(ttl), profileledger.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return 0, "", err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		holder.Close(cctx)
	}()
	_, cjs, err := r.env.connectTo(fmt.Sprintf("nodekill-contender-%d", round), survivor)
	if err != nil {
		return 0, "", err
	}
	contender, err := r.env.openStore(ctx, cjs, "nodekill", fmt.Sprintf("contender-%d", round), newBenchProfile(512),
		profileledger.WithLeaseTTL(ttl))
	if err != nil {
		return 0, "", err
	}
	defer closeStore(contender)
	key := fmt.Sprintf("victim-%d", round)
	hs, err := holder.StartSession(ctx, key)
	if err != nil {
		return 0, "", err
	}
	if err := hs.Apply(ctx, "coin", profileledger.Inc("/coins", 1)); err != nil {
		return 0, "", err
	}
	leases := "the lease bucket's leader unknown"
	if l, err := r.env.cluster.streamLeader(ctx, names.KVStream(storeNames(holder).Leases)); err == nil {
		leases = "and the lease bucket"
		if l != victim {
			leases = "not the lease bucket, led by " + memberName(l)
		}
	}
	// Renewals come every TTL/3: die anywhere in that period.
	if err := sleepCtx(ctx, time.Duration(round+1)*ttl/(3*time.Duration(r.size.ClusterKills+1))); err != nil {
		return 0, "", err
	}
	t0 := time.Now()
	hnc.Close()
	r.env.cluster.kill(victim)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// StartSession's load after the lease is won is one request to the
	// stream's leader, bounded only by its context: one sent while the
	// survivors elect a leader is never answered. So the contender does
	// what a caller must: it bounds each attempt and tries again.
	var s *profileledger.Session[benchProfile]
	for attempts := 1; ; attempts++ {
		actx, cancel := context.WithTimeout(sctx, max(2*time.Second, 2*ttl))
		s, err = contender.StartSession(actx, key)
		cancel()
		if err == nil {
			*tries += attempts
			break
		}
		// A fast failure (no stream leader yet) is tried again after a
		// pause, not at once.
		if sctx.Err() != nil || sleepCtx(sctx, killRetryPause) != nil {
			return 0, "", fmt.Errorf("take over %s after the kill (%d attempts): %w", key, attempts, err)
		}
	}
	if err := s.Apply(sctx, "coin", profileledger.Inc("/coins", 1)); err != nil {
		return 0, "", fmt.Errorf("first mutation after the kill: %w", err)
	}
	d := time.Since(t0)
	if got := s.Data().Coins; got != 2 {
		return 0, "", fmt.Errorf("%s has %d coins after the take-over, want 2 (the holder's acknowledged one and the contender's)", key, got)
	}
	return d, leases, s.End(ctx)
}

// killRetryPause is the contender's pause between StartSession attempts
// after a node kill.
const killRetryPause = 50 * time.Millisecond

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitStoreCurrent waits until every replica of store s's stream and
// buckets is current, so that the next kill leaves a majority that has
// everything.
func waitStoreCurrent(ctx context.Context, r *benchRun, s string) error {
	_, js, err := r.env.connect("current-" + s)
	if err != nil {
		return err
	}
	n, err := names.New(r.env.storeName(s))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, clusterReadyTimeout)
	defer cancel()
	for _, stream := range []string{n.Stream, names.KVStream(n.Leases), names.KVStream(n.Snapshots)} {
		for {
			ok, err := streamCurrent(ctx, js, stream)
			if ok {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("stream %s: replicas not current: %w", stream, errors.Join(ctx.Err(), err))
			}
			if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
				return fmt.Errorf("stream %s: replicas not current: %w", stream, err)
			}
		}
	}
	return nil
}

// streamCurrent says whether stream has a leader and clusterSize-1
// replicas, all current and online.
func streamCurrent(ctx context.Context, js jetstream.JetStream, stream string) (bool, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return false, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return false, err
	}
	cl := info.Cluster
	if cl == nil || cl.Leader == "" || len(cl.Replicas) != clusterSize-1 {
		return false, nil
	}
	for _, p := range cl.Replicas {
		if !p.Current || p.Offline {
			return false, nil
		}
	}
	return true, nil
}
