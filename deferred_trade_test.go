package profileledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/pltest"
)

// TestADeferredMutationAfterATradeInDoubtIsComputedOnTheTrade: before the
// fix, in deferred mode, a Mutate after a Trade whose outcome is unknown
// (it landed; its ack was lost) is staged on memory that lacks the trade.
// The flush then finds the trade in the log, and rebuildLocked re-applies
// the mutation's ops ("replace /coins 105") on top of the trade's result,
// overwriting the trade's debit: coins are created.
func TestADeferredMutationAfterATradeInDoubtIsComputedOnTheTrade(t *testing.T) {
	t.Run("deferred", func(t *testing.T) { uncertainTradeThenMutate(t, profileledger.WithDeferredWrites(time.Hour)) })
	t.Run("durable (control)", func(t *testing.T) { uncertainTradeThenMutate(t) })
}

func uncertainTradeThenMutate(t *testing.T, opts ...profileledger.Option) {
	srv := pltest.Run(t)
	fp := pltest.Proxy(t, srv.URL())
	js := pltest.Connect(t, fp.URL())
	st := openOn(t, js, "players", append(opts, profileledger.WithLeaseTTL(5*time.Second))...)
	ctx := ctxT(t)
	a := start(t, st, "a")
	b := start(t, st, "b")
	tokB, _ := keys.Encode("b")
	dropped := fp.DropNextReply("pl.players.ev." + tokB) // the atomic batch's commit message
	tctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	err := profileledger.Trade(tctx, "gift", a, b, func(pa, pb *Player) error {
		pa.Coins -= 10
		pb.Coins += 10
		return nil
	})
	cancel()
	<-dropped
	if !errors.Is(err, profileledger.ErrUncertain) {
		t.Fatalf("Trade = %v, want ErrUncertain for this test", err)
	}
	// The trade landed. a earns 5 coins, deferred.
	if err := a.Mutate(ctx, "bonus", addCoins(5)); err != nil {
		t.Fatal(err)
	}
	if err := a.End(ctx); err != nil {
		t.Fatalf("a.End: %v", err)
	}
	if err := b.End(ctx); err != nil {
		t.Fatalf("b.End: %v", err)
	}
	va, err := st.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	vb, err := st.Get(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a=%d b=%d", va.Data.Coins, vb.Data.Coins)
	if got := va.Data.Coins + vb.Data.Coins; got != 205 {
		t.Fatalf("a=%d + b=%d = %d coins, want 205 (100+100+5): the trade's debit was overwritten", va.Data.Coins, vb.Data.Coins, got)
	}
}
