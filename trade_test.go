package profileledger_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
)

// swordForCoins moves the first item of a to b and 50 coins from b to a.
func swordForCoins(a, b *Player) error {
	if len(a.Inventory) == 0 {
		return errors.New("nothing to sell")
	}
	b.Inventory = append(b.Inventory, a.Inventory[0])
	a.Inventory = a.Inventory[1:]
	a.Coins += 50
	b.Coins -= 50
	return nil
}

func TestTradeMovesAnItemAndCoinsAtomically(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	ctx := ctxT(t)
	seller, buyer := start(t, st, "seller"), start(t, st, "buyer")
	if err := seller.Apply(ctx, "loot", profileledger.Add("/inventory/-", "sword-1")); err != nil {
		t.Fatal(err)
	}
	if err := profileledger.Trade(ctx, "trade.sword", seller, buyer, swordForCoins); err != nil {
		t.Fatal(err)
	}
	if s, b := seller.Data(), buyer.Data(); s.Coins != 150 || len(s.Inventory) != 0 || b.Coins != 50 || !slices.Equal(b.Inventory, []string{"sword-1"}) {
		t.Fatalf("after the trade: seller %+v, buyer %+v", s, b)
	}
	// Both events are in the logs, with one trade id, naming each other.
	var ids []string
	for key, other := range map[string]string{"seller": "buyer", "buyer": "seller"} {
		v, err := st.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if key == "buyer" && !slices.Equal(v.Data.Inventory, []string{"sword-1"}) {
			t.Fatalf("buyer's log has %+v", v.Data)
		}
		ev := lastEvent(t, e, key, "trade.sword")
		if ev.Meta[ledger.MetaWith] != other || ev.Meta[ledger.MetaTrade] == "" {
			t.Fatalf("%s's trade event meta = %v", key, ev.Meta)
		}
		ids = append(ids, ev.Meta[ledger.MetaTrade])
	}
	if ids[0] != ids[1] {
		t.Fatalf("the two sides carry trade ids %v", ids)
	}
	// Both sessions go on as usual.
	if err := buyer.Mutate(ctx, "coin", addCoins(1)); err != nil {
		t.Fatal(err)
	}
}

func TestTradeRefusesBadInputAndAppendsNothing(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	other := e.open(t, "elsewhere")
	ctx := ctxT(t)
	a, b := start(t, st, "a"), start(t, st, "b")
	x := start(t, other, "x")
	ended := start(t, st, "ended")
	if err := ended.End(ctx); err != nil {
		t.Fatal(err)
	}
	va, vb := a.Version(), b.Version()
	boom := errors.New("no deal")
	cases := []struct {
		name string
		a, b *profileledger.Session[Player]
		fn   func(a, b *Player) error
		want error
	}{
		{"with itself", a, a, swordForCoins, profileledger.ErrInvalidInput},
		{"a nil session", a, nil, swordForCoins, profileledger.ErrInvalidInput},
		{"an ended session", a, ended, swordForCoins, profileledger.ErrSessionEnded},
		{"across stores", a, x, swordForCoins, profileledger.ErrInvalidInput},
		{"fn fails", a, b, func(a, b *Player) error { a.Coins = 0; return boom }, boom},
		{"fn panics", a, b, func(a, b *Player) error { a.Coins = 0; panic("x") }, nil},
		{"a nil fn", a, b, nil, profileledger.ErrInvalidInput},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := profileledger.Trade(ctx, "trade", c.a, c.b, c.fn)
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("Trade = %v, want %v", err, c.want)
			}
			if a.Version() != va || b.Version() != vb || a.Data().Coins != 100 || b.Data().Coins != 100 {
				t.Fatalf("a refused trade changed something")
			}
		})
	}
	if err := profileledger.Trade(ctx, "session.started", a, b, swordForCoins); !errors.Is(err, profileledger.ErrInvalidInput) {
		t.Fatalf("reserved event type: %v", err)
	}
	if v, _ := st.Get(ctx, "a"); v.Version != va {
		t.Fatal("something was appended to a")
	}
}

func TestATradeWithAFencedSideFailsWholeAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	_, js2 := connectEnv(t, e)
	thief := openOn(t, js2, "players")
	ctx := ctxT(t)
	seller, buyer := start(t, st, "seller"), start(t, st, "buyer")
	if err := seller.Apply(ctx, "loot", profileledger.Add("/inventory/-", "sword-1")); err != nil {
		t.Fatal(err)
	}
	va := seller.Version()
	// Another server steals the buyer: this process's buyer session is stale.
	if _, err := thief.StartSession(ctx, "buyer", profileledger.Steal()); err != nil {
		t.Fatal(err)
	}
	err := profileledger.Trade(ctx, "trade.sword", seller, buyer, swordForCoins)
	if !errors.Is(err, profileledger.ErrSessionLost) {
		t.Fatalf("trade with a stolen side = %v, want ErrSessionLost", err)
	}
	if s := seller.Data(); s.Coins != 100 || len(s.Inventory) != 1 || seller.Version() != va {
		t.Fatalf("the seller changed: %+v at %d", s, seller.Version())
	}
	if v, _ := st.Get(ctx, "seller"); v.Version != va || len(v.Data.Inventory) != 1 {
		t.Fatalf("the seller's log changed: %+v", v)
	}
	if err := seller.Mutate(ctx, "coin", addCoins(1)); err != nil {
		t.Fatalf("the seller is unusable after the failed trade: %v", err)
	}
	// The lost side stays lost: trading with it again is refused at once.
	if err := profileledger.Trade(ctx, "trade.sword", seller, buyer, swordForCoins); !errors.Is(err, profileledger.ErrSessionLost) {
		t.Fatalf("trade with a lost session = %v, want ErrSessionLost", err)
	}
}
