package profileledger_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/pltest"
)

// msgBenchProfile is BenchmarkMessageDelivery's profile type.
type msgBenchProfile struct {
	Coins int `json:"coins"`
}

// msgBenchStall bounds BenchmarkMessageDelivery's wait for one message: a
// message not handled by then is a stall, counted at this bound.
const msgBenchStall = 250 * time.Millisecond

// BenchmarkMessageDelivery: Store.Message to a profile that another Store,
// on another connection, holds and handles messages of. Each iteration
// sends one message once the previous one's event is in the log (an idle
// holder) and measures from Message returning to the handler running (a
// handler that runs before Message returns counts as 0). Then a burst of
// 500 messages waiting in a held profile's inbox is drained, for the
// handled messages per second. Reports p50-µs, p99-µs, stalls (messages
// not handled within 250 ms, counted as 250 ms) and handled/s:
//
//	go test -run '^$' -bench MessageDelivery -benchtime 2000x .
func BenchmarkMessageDelivery(b *testing.B) {
	srv := pltest.Run(b)
	holder := pltest.OpenStore(b, srv.URL(), msgBenchProfile{})
	sender := pltest.OpenStore(b, srv.URL(), msgBenchProfile{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := holder.StartSession(ctx, "live")
	if err != nil {
		b.Fatal(err)
	}
	type run struct {
		n  int
		at time.Time
	}
	runs := make(chan run, 1024)
	s.HandleMessages(func(p *msgBenchProfile, m profileledger.Message) error {
		at := time.Now()
		n, _ := strconv.Atoi(string(m.Payload))
		p.Coins++
		select {
		case runs <- run{n, at}:
		default: // a handler offered a message again must never block
		}
		return nil
	})
	var ds []time.Duration
	n, stalls := 0, 0
	for b.Loop() {
		n++
		version := s.Version()
		if err := sender.Message(ctx, "live", []byte(strconv.Itoa(n))); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		stall := time.NewTimer(msgBenchStall)
		d := time.Duration(-1)
		for d < 0 {
			select {
			case r := <-runs:
				if r.n == n {
					d = max(r.at.Sub(t0), 0)
				}
			case <-stall.C:
				d = msgBenchStall
				stalls++
			}
		}
		stall.Stop()
		ds = append(ds, d)
		for d < msgBenchStall && s.Version() == version {
			time.Sleep(20 * time.Microsecond) // the event lands: the holder is idle again
		}
	}
	b.StopTimer()

	const burst = 500
	bs, err := holder.StartSession(ctx, "burst")
	if err != nil {
		b.Fatal(err)
	}
	for i := range burst {
		if err := sender.Message(ctx, "burst", []byte(strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
	t0 := time.Now()
	bs.HandleMessages(func(p *msgBenchProfile, m profileledger.Message) error { p.Coins++; return nil })
	for bs.Data().Coins < burst {
		if ctx.Err() != nil {
			b.Fatalf("%d of %d messages handled", bs.Data().Coins, burst)
		}
		time.Sleep(100 * time.Microsecond)
	}
	elapsed := time.Since(t0)

	b.ReportMetric(float64(percentile(ds, 0.5).Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(percentile(ds, 0.99).Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(float64(stalls), "stalls")
	b.ReportMetric(burst/elapsed.Seconds(), "handled/s")
	b.ReportMetric(0, "ns/op")
}
