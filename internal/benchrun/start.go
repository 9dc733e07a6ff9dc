package benchrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
)

// historyBuilders is how many goroutines Apply at once to build a history:
// group commit puts about this many events in one message.
const historyBuilders = 8

// startHistory is the profiles of one history size that StartSession is
// measured on.
type startHistory struct {
	events int
	// keys is a pool of profiles with this history: each measured start
	// appends two events (session.started, session.ended), so the starts
	// are spread over enough profiles that none grows by more than about a
	// tenth (a 10-event one by at most 8 events).
	keys     []string
	next     int
	messages uint64 // of the first profile's history, as built
	replayed int    // most events any measured start replayed after its snapshot
}

// benchStart: start_10k_vs_10, start_vs_kv_get and start_p50_{10,1k,100k}.
// StartSession (then End, not timed) on profiles with 10, 1,000, 10,000 and
// 100,000 events of history, and a KV get of a small document, one of each
// per round in rotating order.
func benchStart(ctx context.Context, r *benchRun, want func(string) bool) ([]Result, error) {
	_, js, err := r.env.connect("start")
	if err != nil {
		return nil, err
	}
	tmpl := newBenchProfile(256)
	st, err := r.env.openStore(ctx, js, "start", "bench", tmpl)
	if err != nil {
		return nil, err
	}
	defer closeStore(st)

	sizes := r.size.History
	histories := map[int]*startHistory{}
	need := func(events int, results ...string) {
		if slices.ContainsFunc(results, want) && histories[events] == nil {
			histories[events] = &startHistory{events: events}
		}
	}
	need(sizes[0], "start_p50_10", "start_10k_vs_10", "start_vs_kv_get")
	need(sizes[1], "start_p50_1k")
	need(sizes[2], "start_10k_vs_10")
	need(sizes[3], "start_p50_100k")
	starts := r.size.StartSamples + startWarmup
	for _, h := range histories {
		perProfile := max(4, h.events/20)
		for i := range (starts + perProfile - 1) / perProfile {
			h.keys = append(h.keys, fmt.Sprintf("h%d-%d", h.events, i))
		}
		t0 := time.Now()
		err := parallel(ctx, len(h.keys), 4, func(ctx context.Context, i int) error {
			return buildHistory(ctx, st, h.keys[i], h.events)
		})
		if err != nil {
			return nil, fmt.Errorf("build %d-event histories: %w", h.events, err)
		}
		if h.messages, err = subjectMessages(ctx, js, st, h.keys[0]); err != nil {
			return nil, err
		}
		r.printf("built %d profiles of %d events (%d messages each) in %v", len(h.keys), h.events, h.messages, time.Since(t0).Round(time.Millisecond))
	}

	var fns []sampler
	var order []*startHistory
	for _, events := range sizes {
		h := histories[events]
		if h == nil || slices.Contains(order, h) {
			continue
		}
		order = append(order, h)
		fns = append(fns, sampler{fmt.Sprintf("start-%d", h.events), func(ctx context.Context) (time.Duration, error) {
			key := h.keys[h.next%len(h.keys)]
			h.next++
			t0 := time.Now()
			s, err := st.StartSession(ctx, key)
			d := time.Since(t0)
			if err != nil {
				return d, err
			}
			h.replayed = max(h.replayed, s.LoadReport().Replayed)
			return d, s.End(ctx)
		}})
	}
	if want("start_vs_kv_get") {
		kv, err := r.env.keyValue(ctx, js, "KV")
		if err != nil {
			return nil, err
		}
		data, err := json.Marshal(tmpl)
		if err != nil {
			return nil, err
		}
		if _, err := kv.Put(ctx, "profile", data); err != nil {
			return nil, err
		}
		fns = append(fns, sampler{"kv-get", func(ctx context.Context) (time.Duration, error) {
			t0 := time.Now()
			_, err := kv.Get(ctx, "profile")
			return time.Since(t0), err
		}})
	}
	ls, err := alternate(ctx, startWarmup, r.size.StartSamples, fns...)
	if err != nil {
		return nil, err
	}
	p50 := map[int]float64{}
	lat := map[int]latencies{}
	for i, h := range order {
		p50[h.events], lat[h.events] = ls[i].µs(0.5), ls[i].latencies
	}
	about := func(events int) string {
		h := histories[events]
		return fmt.Sprintf("%d events in %d messages (group commit of %d), %d profiles, at most %d events replayed after the snapshot",
			h.events, h.messages, historyBuilders, len(h.keys), h.replayed)
	}
	n := r.size.StartSamples
	var out []Result
	for _, g := range []struct {
		name   string
		events int
	}{{"start_p50_10", sizes[0]}, {"start_p50_1k", sizes[1]}, {"start_p50_100k", sizes[3]}} {
		if want(g.name) {
			out = append(out, result(g.name, p50[g.events], UnitMicros, 0, "%s; %s; %d samples", lat[g.events].summary(), about(g.events), n))
		}
	}
	if want("start_10k_vs_10") {
		out = append(out, result("start_10k_vs_10", p50[sizes[2]], UnitMicros, p50[sizes[0]],
			"%s vs %s; %s; baseline %s; %d samples each, alternating",
			lat[sizes[2]].summary(), lat[sizes[0]].summary(), about(sizes[2]), about(sizes[0]), n))
	}
	if want("start_vs_kv_get") {
		kvl := ls[len(ls)-1]
		out = append(out, result("start_vs_kv_get", p50[sizes[0]], UnitMicros, kvl.µs(0.5),
			"StartSession (%d events of history, nobody holding it) %s; KV get of a %d-byte value %s; %d samples each, alternating",
			sizes[0], lat[sizes[0]].summary(), len(mustJSON(tmpl)), kvl.summary(), n))
	}
	return out, nil
}

// startWarmup is the unrecorded rounds before StartSession samples.
const startWarmup = 10

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}

// buildHistory gives the new profile key a history of events events: its
// session.started, events-2 Applies from historyBuilders goroutines at once
// (group-committed), and its session.ended.
func buildHistory(ctx context.Context, st *profileledger.Store[benchProfile], key string, events int) error {
	s, err := st.StartSession(ctx, key)
	if err != nil {
		return err
	}
	var left atomic.Int64
	left.Store(int64(events - 2))
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range historyBuilders {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := s.Apply(ctx, "coin", profileledger.Inc("/coins", 1)); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, s.End(ctx))...)
}

// subjectMessages returns how many messages key's subject holds.
func subjectMessages(ctx context.Context, js jetstream.JetStream, st *profileledger.Store[benchProfile], key string) (uint64, error) {
	stream, err := js.Stream(ctx, storeNames(st).Stream)
	if err != nil {
		return 0, err
	}
	subject := eventSubject(st, key)
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[subject], nil
}
