package benchrun

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/retry"
)

// benchScale: the figures of 100,000 held sessions in one process (the
// quick size holds fewer; the note says how many).
//
//   - start_100k_sessions_s: the time to start them all, AggregateWorkers at
//     a time, in three steps (a tenth, a half, all) whose rates the note
//     gives, so that growth can be seen to be linear;
//   - idle_100k_cpu_pct: the process's CPU time (user + system, the embedded
//     server included) over a window while they sit idle, as a percentage
//     of one core;
//   - idle_liveness_msgs_per_s_100k: messages the store's connection sent
//     per second over that window: what keeping them alive costs;
//   - close_100k_sessions_s: Store.Close ending them all (session.ended,
//     snapshot, lease release each).
func benchScale(ctx context.Context, r *benchRun, _ func(string) bool) ([]Result, error) {
	nc, js, err := r.env.connect("scale")
	if err != nil {
		return nil, err
	}
	tmpl := newBenchProfile(1 << 10)
	st, err := r.env.openStore(ctx, js, "scale", "bench", tmpl, profileledger.WithLeaseTTL(5*time.Second))
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			closeStore(st)
		}
	}()
	n := r.size.ScaleSessions
	steps := []int{n / 10, n / 2, n}
	var (
		held    []*profileledger.Session[benchProfile]
		notes   []string
		elapsed time.Duration
	)
	for _, upTo := range steps {
		keys := make([]string, upTo-len(held))
		for i := range keys {
			keys[i] = fmt.Sprintf("scale-%07d", len(held)+i)
		}
		t0 := time.Now()
		got, err := startSessions(ctx, st, keys, 4*AggregateWorkers)
		if err != nil {
			return nil, err
		}
		d := time.Since(t0)
		elapsed += d
		held = append(held, got...)
		notes = append(notes, fmt.Sprintf("%d→%d in %.1f s (%.0f/s, %.0f µs each)", upTo-len(keys), upTo, d.Seconds(),
			float64(len(keys))/d.Seconds(), float64(d.Microseconds())/float64(len(keys))))
		r.printf("%d sessions held (%d started in %v)", upTo, len(keys), d.Round(time.Millisecond))
	}
	// Idle: let the starts' background snapshots settle, then measure.
	if !retry.Sleep(ctx, time.Second) {
		return nil, ctx.Err()
	}
	cpu0, out0, t0 := processCPU(), nc.Stats().OutMsgs, time.Now()
	if !retry.Sleep(ctx, r.size.IdleWindow) {
		return nil, ctx.Err()
	}
	cpu1, out1, window := processCPU(), nc.Stats().OutMsgs, time.Since(t0)
	cpuPct := 100 * (cpu1 - cpu0).Seconds() / window.Seconds()
	msgs := float64(out1-out0) / window.Seconds()
	r.printf("idle for %v: CPU %.2f %% of a core, %.1f messages/s", window.Round(time.Millisecond), cpuPct, msgs)

	tc := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	err = st.Close(cctx)
	cancel()
	closed = true
	if err != nil {
		return nil, fmt.Errorf("close %d sessions: %w", n, err)
	}
	closeTime := time.Since(tc)
	where := "the embedded server shares this process: its CPU is included"
	if r.env.ns == nil {
		where = "on a running server: this process's CPU only"
	}
	return []Result{
		result("start_100k_sessions_s", elapsed.Seconds(), UnitSeconds, 0,
			"%d sessions of %d-byte profiles, %d workers; steps %s", n, len(mustJSON(tmpl)), 4*AggregateWorkers, strings.Join(notes, ", ")),
		result("idle_100k_cpu_pct", cpuPct, UnitPercent, 0,
			"%.3f %% of a core: %d idle held sessions, 5 s lease TTL, over %.1f s; %s", cpuPct, n, window.Seconds(), where),
		result("idle_liveness_msgs_per_s_100k", msgs, UnitRate, 0,
			"%.2f messages per second sent by the store's connection while %d sessions sat idle (its heartbeat every TTL/3)", msgs, n),
		result("close_100k_sessions_s", closeTime.Seconds(), UnitSeconds, 0,
			"Store.Close ending %d sessions (%.0f/s)", n, float64(n)/closeTime.Seconds()),
	}, nil
}
