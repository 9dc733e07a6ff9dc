package profileledger_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
)

// BenchmarkHistory100k reads the whole history of a profile of 100,000
// events (1,000 messages of 100 events, as group commits write them) with
// History, and reports what one event read costs in allocated bytes, and
// how much the live heap (after a collection, sampled every 25,000 events)
// grew while the loop ran: History streams, so that stays flat however long
// the history. The allocations include the embedded server's, which runs in
// the same process.
//
//	go test -run '^$' -bench History100k -benchtime 3x .
func BenchmarkHistory100k(b *testing.B) {
	e := newEnv(b)
	st := e.open(b, "players")
	ctx := context.Background()
	stream, err := e.js.Stream(ctx, "PL_players")
	if err != nil {
		b.Fatal(err)
	}
	lg := ledger.NewLog(e.js, stream, 1<<20)
	defer lg.Close()
	// One session's log, written straight to the ledger: its fence, then
	// group-committed mutations.
	session := uuid.NewString()
	fence, err := lg.Append(ctx, "pl.players.ev.long", ledger.Head{}, ledger.Event{ID: uuid.NewString(), Type: ledger.TypeSessionStarted, Session: session, Epoch: 1, Time: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	const messages, perMessage = 1000, 100
	for range messages {
		evs := make([]ledger.Event, perMessage)
		for j := range evs {
			evs[j] = ledger.Event{ID: uuid.NewString(), Type: "coin", Session: session, Epoch: 1, Time: time.Now(),
				Ops: []ledger.Op{{Op: "inc", Path: "/coins", Value: []byte("1")}}, Meta: map[string]string{"actor": "bench"}}
		}
		if fence, err = lg.Append(ctx, "pl.players.ev.long", fence, evs...); err != nil {
			b.Fatal(err)
		}
	}
	var before, after runtime.MemStats
	var peak uint64
	b.ReportAllocs()
	events := 0
	runtime.GC()
	runtime.ReadMemStats(&before)
	for b.Loop() {
		n := 0
		for _, err := range st.History(ctx, "long") {
			if err != nil {
				b.Fatal(err)
			}
			if n++; n%25000 == 0 {
				// The live heap, garbage collected: what History holds.
				var m runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapAlloc)
			}
		}
		if n != messages*perMessage+1 {
			b.Fatalf("read %d events, want %d", n, messages*perMessage+1)
		}
		events += n
	}
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(events), "alloc-B/event")
	b.ReportMetric(float64(int64(peak)-int64(before.HeapAlloc))/(1<<10), "live-heap-growth-KiB")
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	_ = profileledger.Event{}
}
