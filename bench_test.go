package profileledger_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
)

// Benchmarks for the figures in the README. Each measures its baseline in
// the same run, interleaved with the measured path, and reports the ratio,
// because the machine is shared and noisy. Run them with
//
//	go test -run '^$' -bench . -benchtime 2000x .

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkMutateVsRawPublish: durable Mutate of a 256-byte change against
// a raw JetStream publish of the same event bytes with
// Nats-Expected-Last-Subject-Sequence and Nats-Msg-Id, alternating.
func BenchmarkMutateVsRawPublish(b *testing.B) {
	e := newEnv(b)
	st := e.open(b, "players")
	ctx := context.Background()
	s := start(b, st, "bench")
	payload := func(i int) string { return fmt.Sprintf("%0256d", i) }

	// The raw baseline publishes exactly what Mutate's event encodes to.
	ev := ledger.Event{V: 1, ID: uuid.NewString(), Type: "name.changed", Session: uuid.NewString(), Epoch: 1, Time: time.Now(),
		Ops: []ledger.Op{{Op: "replace", Path: "/name", Value: []byte(`"` + payload(0) + `"`)}}}
	raw, _ := ev.Encode()
	var last uint64
	var rawT, mutT []time.Duration
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		ack, err := e.js.Publish(ctx, "pl.players.ev.rawbench", raw, jetstream.WithExpectLastSequencePerSubject(last), jetstream.WithMsgID(uuid.NewString()))
		rawT = append(rawT, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		last = ack.Sequence
		name := payload(i)
		t0 = time.Now()
		if err := s.Mutate(ctx, "name.changed", func(p *Player) error { p.Name = name; return nil }); err != nil {
			b.Fatal(err)
		}
		mutT = append(mutT, time.Since(t0))
	}
	rp, mp := percentile(rawT, 0.5), percentile(mutT, 0.5)
	b.ReportMetric(float64(rp.Microseconds()), "raw-p50-µs")
	b.ReportMetric(float64(mp.Microseconds()), "mutate-p50-µs")
	b.ReportMetric(float64(mp)/float64(rp), "ratio")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkStartSession10kVs10Events: StartSession (then End) on a profile
// with 10,000 events of history against one with 10, alternating.
func BenchmarkStartSession10kVs10Events(b *testing.B) {
	e := newEnv(b)
	st := e.open(b, "players")
	ctx := context.Background()
	for key, n := range map[string]int{"small": 10, "big": 10000} {
		s := start(b, st, key)
		for j := range n - 2 { // plus session.started and session.ended
			if err := s.Apply(ctx, "coin", profileledger.Inc("/coins", j%3)); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.End(ctx); err != nil {
			b.Fatal(err)
		}
	}
	var small, big []time.Duration
	for b.Loop() {
		for _, key := range []string{"small", "big"} {
			t0 := time.Now()
			s, err := st.StartSession(ctx, key)
			d := time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			if key == "small" {
				small = append(small, d)
			} else {
				big = append(big, d)
			}
			if err := s.End(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	sp, bp := percentile(small, 0.5), percentile(big, 0.5)
	b.ReportMetric(float64(sp.Microseconds()), "start-10-p50-µs")
	b.ReportMetric(float64(bp.Microseconds()), "start-10k-p50-µs")
	b.ReportMetric(float64(bp)/float64(sp), "ratio")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkHandover: StartSession on one Store while another Store holds the
// profile live; the holder hands over. Reports p50 and p99.
func BenchmarkHandover(b *testing.B) {
	e := newEnv(b)
	_, js2 := connectEnv(b, e)
	stores := []*profileledger.Store[Player]{e.open(b, "players"), openOn(b, js2, "players")}
	ctx := context.Background()
	if _, err := stores[0].StartSession(ctx, "hot"); err != nil {
		b.Fatal(err)
	}
	var ds []time.Duration
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		s, err := stores[i%2].StartSession(ctx, "hot")
		ds = append(ds, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Apply(ctx, "coin", profileledger.Inc("/coins", 1)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(percentile(ds, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(ds, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkMutateCPU measures the in-process part of Mutate (copy, fn,
// diff, event encoding) by running it in deferred mode, where no append
// waits on the network.
func BenchmarkMutateCPU(b *testing.B) {
	e := newEnv(b)
	st := e.open(b, "players", profileledger.WithDeferredWrites(time.Hour))
	s := start(b, st, "cpu")
	ctx := context.Background()
	name := fmt.Sprintf("%0256d", 1)
	i := 0
	for b.Loop() {
		i++
		if err := s.Mutate(ctx, "coin", func(p *Player) error { p.Coins = i; p.Name = name; return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTradeVsMutate: an atomic two-profile Trade against a Mutate of
// one profile, alternating, on the same server.
func BenchmarkTradeVsMutate(b *testing.B) {
	e := newEnv(b)
	st := e.open(b, "players")
	ctx := context.Background()
	a, c, m := start(b, st, "a"), start(b, st, "c"), start(b, st, "m")
	var tradeT, mutT []time.Duration
	for b.Loop() {
		t0 := time.Now()
		err := profileledger.Trade(ctx, "trade", a, c, func(x, y *Player) error { x.Coins++; y.Coins--; return nil })
		tradeT = append(tradeT, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if err := m.Mutate(ctx, "coin", addCoins(1)); err != nil {
			b.Fatal(err)
		}
		mutT = append(mutT, time.Since(t0))
	}
	tp, mp := percentile(tradeT, 0.5), percentile(mutT, 0.5)
	b.ReportMetric(float64(tp.Microseconds()), "trade-p50-µs")
	b.ReportMetric(float64(percentile(tradeT, 0.99).Microseconds()), "trade-p99-µs")
	b.ReportMetric(float64(mp.Microseconds()), "mutate-p50-µs")
	b.ReportMetric(float64(tp)/float64(mp), "ratio")
	b.ReportMetric(0, "ns/op")
}
