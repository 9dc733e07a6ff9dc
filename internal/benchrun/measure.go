package benchrun

import (
	"context"
	"fmt"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// latencies are one side's samples.
type latencies []time.Duration

// at returns the q-quantile (nearest rank) of l.
func (l latencies) at(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*q))]
}

// µs returns the q-quantile of l in microseconds.
func (l latencies) µs(q float64) float64 { return float64(l.at(q).Nanoseconds()) / 1e3 }

// summary prints l's p50, p90, p99 and max in microseconds.
func (l latencies) summary() string {
	return fmt.Sprintf("p50 %.0f, p90 %.0f, p99 %.0f, max %.0f µs", l.µs(0.5), l.µs(0.9), l.µs(0.99), l.µs(1))
}

// sampler is one measured operation: run does it once and returns how long
// the part that counts took. Its CPU is labelled side=name in -cpuprofile.
type sampler struct {
	name string
	run  func(ctx context.Context) (time.Duration, error)
}

// series is one sampler's latencies and the process CPU time its recorded
// calls used (with an embedded server, the server's work included).
type series struct {
	latencies
	cpu time.Duration
}

// cpuEach returns the CPU time per recorded call in microseconds, 0 if
// unknown.
func (s series) cpuEach() float64 {
	if len(s.latencies) == 0 {
		return 0
	}
	return float64(s.cpu.Nanoseconds()) / 1e3 / float64(len(s.latencies))
}

// alternate runs warmup unrecorded rounds, then rounds recorded ones; each
// round calls every sampler once, starting with a different one each round
// so that none always runs first. It returns each sampler's series.
func alternate(ctx context.Context, warmup, rounds int, fns ...sampler) ([]series, error) {
	out := make([]series, len(fns))
	for i := range out {
		out[i].latencies = make(latencies, 0, rounds)
	}
	for round := range warmup + rounds {
		for k := range fns {
			i := (round + k) % len(fns)
			var d time.Duration
			var err error
			cpu := processCPU()
			pprof.Do(ctx, pprof.Labels("side", fns[i].name), func(ctx context.Context) { d, err = fns[i].run(ctx) })
			cpu = processCPU() - cpu
			if err != nil {
				return nil, err
			}
			if round >= warmup {
				out[i].latencies = append(out[i].latencies, d)
				out[i].cpu += cpu
			}
		}
	}
	return out, nil
}

// rate is a throughput measurement: ops done in elapsed, using cpu of the
// process's CPU time (with an embedded server, the server's work included;
// 0 where unknown).
type rate struct {
	ops     int
	elapsed time.Duration
	cpu     time.Duration
}

func (r rate) perSecond() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

func (r rate) String() string {
	if r.cpu <= 0 || r.ops == 0 {
		return fmt.Sprintf("%d in %.2fs", r.ops, r.elapsed.Seconds())
	}
	return fmt.Sprintf("%d in %.2fs, %.0f µs process CPU each", r.ops, r.elapsed.Seconds(), float64(r.cpu.Nanoseconds())/1e3/float64(r.ops))
}

// side is one throughput side: run works for about d and says how much it
// did and how long that took (its own drain included). Its CPU, and that of
// the goroutines it starts, is labelled side=name in -cpuprofile.
type side struct {
	name string
	run  func(ctx context.Context, d time.Duration) (rate, error)
}

// alternateRates runs the sides in turn for d each, rounds times (after one
// unrecorded warm-up round), reversing the order every round, and returns
// each side's totals.
func alternateRates(ctx context.Context, rounds int, d time.Duration, sides ...side) ([]rate, error) {
	out := make([]rate, len(sides))
	for round := -1; round < rounds; round++ {
		for k := range sides {
			i := k
			if round%2 != 0 {
				i = len(sides) - 1 - k
			}
			wd := d
			if round < 0 {
				wd = min(d, 100*time.Millisecond)
			}
			var r rate
			var err error
			cpu := processCPU()
			pprof.Do(ctx, pprof.Labels("side", sides[i].name), func(ctx context.Context) { r, err = sides[i].run(ctx, wd) })
			r.cpu = processCPU() - cpu
			if err != nil {
				return nil, err
			}
			if round >= 0 {
				out[i].ops += r.ops
				out[i].elapsed += r.elapsed
				out[i].cpu += r.cpu
			}
		}
	}
	return out, nil
}

// workFor calls op from workers goroutines, each with its worker number
// and its own call count, until d has passed, and returns how many calls
// succeeded and how long it took until the last returned. The first error
// stops every worker.
func workFor(ctx context.Context, workers int, d time.Duration, op func(ctx context.Context, worker, i int) error) (rate, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var ops atomic.Int64
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				if err := op(ctx, w, i); err != nil {
					cancel(err)
					return
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	r := rate{ops: int(ops.Load()), elapsed: time.Since(start)}
	return r, context.Cause(ctx)
}
