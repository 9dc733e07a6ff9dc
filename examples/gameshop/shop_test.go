package gameshop_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"example.com/gameshop"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/pltest"
)

// TestAPlayerWhoHopsServersMidPurchaseBuysOnce: the acknowledgement of a
// purchase is lost on its way back to game server A, the player hops to
// server B in the middle of it, and the client sends the purchase again,
// to B. The sword is bought once and paid for once.
func TestAPlayerWhoHopsServersMidPurchaseBuysOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srv := pltest.Run(t)
	proxy := pltest.Proxy(t, srv.URL()) // between server A and NATS
	ttl := profileledger.WithLeaseTTL(time.Second)
	a := pltest.OpenStore(t, proxy.URL(), gameshop.NewPlayer(), ttl, profileledger.WithNode("A"))
	b := pltest.OpenStore(t, srv.URL(), gameshop.NewPlayer(), ttl, profileledger.WithNode("B"))

	onA, err := a.StartSession(ctx, "user:42")
	if err != nil {
		t.Fatal(err)
	}
	dropped := proxy.DropNextReply("pl." + pltest.StoreName + ".ev.>") // the purchase's acknowledgement
	bought := make(chan error, 1)
	go func() { bought <- gameshop.Buy(ctx, onA, "receipt-1", "sword", 30) }()
	<-dropped

	onB, err := b.StartSession(ctx, "user:42") // the hop: A hands the player over
	if err != nil {
		t.Fatal(err)
	}
	if err := <-bought; pltest.OutcomeOf(err) == pltest.Rejected {
		t.Fatalf("the purchase on A was rejected (%v); this test needs it sent", err)
	}
	if err := gameshop.Buy(ctx, onB, "receipt-1", "sword", 30); err != nil { // the client's retry
		t.Fatal(err)
	}
	if got := onB.Data(); len(got.Inventory) != 1 || got.Coins != 70 {
		t.Errorf("after one purchase sent twice: %+v, want one sword and 70 coins", got)
	}
	if err := onB.End(ctx); err != nil {
		t.Fatal(err)
	}
	pltest.Audit(t, pltest.Connect(t, srv.URL()), pltest.StoreName)
}

// TestTheShopUnderRandomPlay runs the shop's changes as a random workload
// of starts, hand-overs, steals, purchases, rewards and gifts on three game
// servers, and checks every acknowledged change is in the log exactly once.
func TestTheShopUnderRandomPlay(t *testing.T) {
	pltest.Workload[gameshop.Player]{
		Template: gameshop.NewPlayer(),
		Mutations: []pltest.Mutation[gameshop.Player]{
			{Name: "shop.bought", Fn: func(p *gameshop.Player) error {
				return gameshop.Purchase(fmt.Sprintf("receipt-%d", len(p.Receipts)), "sword", 30)(p)
			}},
			{Name: "quest.rewarded", Fn: gameshop.Reward(20)},
		},
		Trades: []pltest.Trade[gameshop.Player]{{Name: "shop.gift", Fn: gameshop.Transfer(10)}},
		Check: func(players map[string]gameshop.Player) error {
			for key, p := range players {
				if p.Coins < 0 || len(p.Inventory) != len(p.Receipts) {
					return fmt.Errorf("%s: %+v", key, p)
				}
			}
			return nil
		},
	}.Run(t)
}

// TestAnAcknowledgedPurchaseSurvivesAServerCrash kills the NATS server
// right after a purchase was acknowledged.
func TestAnAcknowledgedPurchaseSurvivesAServerCrash(t *testing.T) {
	ctx := t.Context()
	srv := pltest.Run(t, pltest.SyncAlways())
	st := pltest.OpenStore(t, srv.URL(), gameshop.NewPlayer())
	s, err := st.StartSession(ctx, "user:7")
	if err != nil {
		t.Fatal(err)
	}
	if err := gameshop.Buy(ctx, s, "receipt-1", "shield", 50); err != nil {
		t.Fatal(err)
	}
	if err := gameshop.Buy(ctx, s, "receipt-2", "castle", 500); !errors.Is(err, gameshop.ErrNotEnoughCoins) {
		t.Fatalf("buying what the player cannot pay = %v, want ErrNotEnoughCoins", err)
	}
	srv.Kill()
	srv.Start()

	v, err := pltest.OpenStore(t, srv.URL(), gameshop.NewPlayer()).Get(ctx, "user:7")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Data.Inventory) != 1 || v.Data.Coins != 50 {
		t.Errorf("after the crash: %+v, want the shield and 50 coins", v.Data)
	}
}
