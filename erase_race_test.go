package profileledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
)

// TestEraseRacingAStealKeepsTheThiefsEvents: Erase used to remove "every
// event before the tombstone" with a purge that kept the subject's last message (keep=1), not with a purge bounded by
// the tombstone's sequence. A session that takes the profile between the
// tombstone and the purge (Steal, or a take-over after the lease, which an
// erasing session no longer renews, expired) has its acknowledged fence and
// mutations removed.
func TestEraseRacingAStealKeepsTheThiefsEvents(t *testing.T) {
	srv := pltest.Run(t)
	direct := pltest.Connect(t, srv.URL())
	fp := pltest.Proxy(t, srv.URL())
	slow := pltest.Connect(t, fp.URL())
	eraser := openOn(t, slow, "players", profileledger.WithLeaseTTL(5*time.Second))
	other := openOn(t, direct, "players", profileledger.WithLeaseTTL(5*time.Second))
	ctx := ctxT(t)
	s := start(t, other, "p")
	if err := s.Mutate(ctx, "x", addCoins(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}

	// Watch the tombstone land; steal and mutate at once.
	tomb := make(chan struct{}, 1)
	sub, err := direct.Conn().Subscribe("pl.players.ev.p", func(m *nats.Msg) {
		evs, _ := ledger.DecodeMessage(m.Data)
		if len(evs) == 1 && evs[0].Type == ledger.TypeErased {
			tomb <- struct{}{}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	direct.Conn().Flush()

	fp.Latency(150*time.Millisecond, 0) // the eraser's link is slow
	erased := make(chan error, 1)
	go func() { erased <- eraser.Erase(ctx, "p") }()
	<-tomb
	t0 := time.Now()
	s2, err := other.StartSession(ctx, "p", profileledger.Steal())
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Mutate(ctx, "bought", addCoins(42)); err != nil { // acknowledged
		t.Fatal(err)
	}
	t.Logf("stole and mutated in %v", time.Since(t0))
	t.Logf("Erase = %v", <-erased)
	dump(t, direct, "pl.players.ev.p")
	fp.Latency(0, 0)
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := other.Get(gctx, "p") // while s2 holds it, before its End's snapshot
	if err != nil {
		t.Fatalf("Get after Erase raced a steal: %v (the steal's acknowledged fence was purged)", err)
	}
	if v.Data.Coins != 142 {
		t.Fatalf("coins = %d, want 142 (template 100 + the acknowledged 42)", v.Data.Coins)
	}
	s2.End(ctx)
}

func dump(t *testing.T, js interface{ Conn() *nats.Conn }, subj string) {
	t.Helper()
	for seq := uint64(1); seq < 40; seq++ {
		m, err := js.Conn().Request("$JS.API.DIRECT.GET.PL_players", []byte(`{"seq":`+itoa(seq)+`,"next_by_subj":"`+subj+`"}`), time.Second)
		if err != nil || m.Header.Get("Status") != "" {
			return
		}
		evs, _ := ledger.DecodeMessage(m.Data)
		for _, e := range evs {
			t.Logf("seq %s: %s epoch %d", m.Header.Get("Nats-Sequence"), e.Type, e.Epoch)
		}
		var n uint64
		fmt.Sscan(m.Header.Get("Nats-Sequence"), &n)
		seq = n
	}
}
func itoa(n uint64) string { return fmt.Sprint(n) }
