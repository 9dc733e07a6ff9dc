package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/pltest"
)

type tradePlayer struct {
	Coins     int      `json:"coins"`
	Inventory []string `json:"inventory"`
}

func TestTradesFollowsAnItemAcrossProfiles(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, err := profileledger.Open(ctx, js, "shop", tradePlayer{Coins: 100, Inventory: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	seller, err := st.StartSession(ctx, "user:1")
	if err != nil {
		t.Fatal(err)
	}
	buyer, err := st.StartSession(ctx, "user.2") // a key with a dot: encoded, not a subject separator
	if err != nil {
		t.Fatal(err)
	}
	if err := seller.Apply(ctx, "loot", profileledger.Add("/inventory/-", "sword-7")); err != nil {
		t.Fatal(err)
	}
	err = profileledger.Trade(profileledger.WithMeta(ctx, map[string]string{"actor": "market", "reason": "listing 7"}), "trade.sword", seller, buyer, func(a, b *tradePlayer) error {
		b.Inventory = append(b.Inventory, a.Inventory[0])
		a.Inventory = a.Inventory[1:]
		a.Coins, b.Coins = a.Coins+40, b.Coins-40
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	code, out, errOut := run(t, ctx, "trades", "-server", srv.URL(), "shop", "user.2")
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{`profile "user.2" in store shop: 1 trade(s)`, `with "user:1"`, `"sword-7"`, `add /inventory/`, `user:1:`, `remove /inventory/0`, `who, why:    actor="market" reason="listing 7"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = run(t, ctx, "trades", "-server", srv.URL(), "-json", "shop", "user:1")
	var rows []tradeRow
	if code != exitOK || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0].With != "user.2" || rows[0].Missing || rows[0].TheirSeq == 0 {
		t.Fatalf("-json: exit %d, %+v from:\n%s", code, rows, out)
	}

	if code, _, _ := run(t, ctx, "trades", "-server", srv.URL(), "shop"); code != exitUsage {
		t.Errorf("missing key: exit %d, want %d", code, exitUsage)
	}
	if code, _, _ := run(t, ctx, "trades", "-server", srv.URL(), "nosuchstore", "k"); code != exitFail {
		t.Errorf("unknown store: exit %d, want %d", code, exitFail)
	}
}

// TestTradesMarksATradeUndoneByARollback: rolling one side back past a
// trade undoes that side only; trades says so.
func TestTradesMarksATradeUndoneByARollback(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, err := profileledger.Open(ctx, js, "shop", tradePlayer{Coins: 100, Inventory: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	a, err := st.StartSession(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.StartSession(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	before := a.Version()
	if err := profileledger.Trade(ctx, "pay", a, b, func(pa, pb *tradePlayer) error { pa.Coins -= 30; pb.Coins += 30; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := a.Rollback(ctx, before, "chargeback"); err != nil {
		t.Fatal(err)
	}
	if a.Data().Coins != 100 || b.Data().Coins != 130 {
		t.Fatalf("after the rollback: a %d, b %d coins; want 100 and 130 (b keeps its side)", a.Data().Coins, b.Data().Coins)
	}
	code, out, errOut := run(t, ctx, "trades", "-server", srv.URL(), "shop", "a")
	if code != exitOK || !strings.Contains(out, "undone on this side by the rollback at seq") || !strings.Contains(out, "chargeback") {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, _ = run(t, ctx, "trades", "-server", srv.URL(), "-json", "shop", "b")
	var rows []tradeRow
	if code != exitOK || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0].UndoneBy != 0 {
		t.Fatalf("b's side is not undone: %+v", rows)
	}
}
