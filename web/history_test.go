package web_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/investigate"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
	"github.com/profileledger/profileledger/web"
)

// player is the scripted store's profile type.
type player struct {
	Coins     int      `json:"coins"`
	Inventory []string `json:"inventory"`
	Note      string   `json:"note"`
}

const (
	storeName = "shop"
	// Hostile strings: a key and a value that would run as script if
	// anything printed them as HTML.
	evilKey   = `<script>document.title="pwned-key"</script>`
	evilValue = `<img src=x onerror="document.title='pwned-data'">`
	// oddKey needs escaping in a URL path and a query.
	oddKey = "a/b %ü?&#"
	// dupedItem ends up live in two profiles.
	dupedItem = "sword#1"
)

// scripted is a store with a known history, served by a web.Server.
type scripted struct {
	js   jetstream.JetStream
	st   *profileledger.Store[player]
	srv  *web.Server
	http *httptest.Server
	// trade is the id of alice's trade with bob; rollbackSeq the version
	// of alice's rollback event.
	trade       string
	rollbackSeq uint64
}

// newScripted builds the history: alice loots the sword and gold, trades
// the sword to bob, gets a message, rolls back her last mutation; carol
// gets a copy of the sword by a plain mutation (the dupe); the evil and
// odd keys hold hostile data. Every event carries who and why.
func newScripted(t *testing.T, opts ...func(*web.Config)) *scripted {
	t.Helper()
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := profileledger.Open(ctx, js, storeName, player{Inventory: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	sc := &scripted{js: js, st: st}
	who := func(actor, reason string) context.Context {
		return profileledger.WithMeta(ctx, map[string]string{profileledger.MetaActor: actor, profileledger.MetaReason: reason})
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	start := func(key string) *profileledger.Session[player] {
		t.Helper()
		s, err := st.StartSession(ctx, key)
		must(err)
		return s
	}
	alice, bob, carol := start("alice"), start("bob"), start("carol")
	must(alice.Apply(who("game:s1", "quest 7"), "loot", profileledger.Add("/inventory/-", dupedItem), profileledger.Inc("/coins", 50)))
	must(alice.Apply(who("game:s1", "quest 8"), "loot", profileledger.Inc("/coins", 25)))
	must(profileledger.Trade(who("market", "order 12"), "trade.sword", alice, bob, func(a, b *player) error {
		a.Inventory = slices.DeleteFunc(a.Inventory, func(s string) bool { return s == dupedItem })
		b.Inventory = append(b.Inventory, dupedItem)
		a.Coins, b.Coins = a.Coins+30, b.Coins-30
		return nil
	}))
	must(alice.AddUserID(ctx, "roblox:77"))
	must(st.Message(who("shop", "gift"), "alice", []byte("gift-box")))
	alice.HandleMessages(func(p *player, m profileledger.Message) error {
		p.Inventory = append(p.Inventory, string(m.Payload))
		return nil
	})
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Contains(alice.Data().Inventory, "gift-box") {
		if time.Now().After(deadline) {
			t.Fatal("the message was not handled in 20 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	before := alice.Version()
	must(alice.Apply(who("game:s1", "bug"), "loot", profileledger.Inc("/coins", 1000)))
	must(alice.Rollback(who("support:ann", "ticket 4411"), before, "coins bug"))
	sc.rollbackSeq = alice.Version()
	must(carol.Apply(who("game:s2", "glitch"), "loot", profileledger.Add("/inventory/-", dupedItem)))
	for _, s := range []*profileledger.Session[player]{alice, bob, carol} {
		must(s.End(ctx))
	}
	for _, k := range []string{evilKey, oddKey} {
		s := start(k)
		must(s.Apply(who(evilValue, evilValue), "note", profileledger.Set("/note", evilValue), profileledger.Add("/inventory/-", evilValue)))
		must(s.End(ctx))
	}
	for e, err := range investigate.Log(ctx, st, "alice", investigate.LogFilter{Types: []string{"trade.sword"}}) {
		must(err)
		sc.trade = e.Meta["trade"]
	}
	cfg := web.Config{Store: storeName, JS: js, Source: investigate.FromStore(st), FollowInterval: 20 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	sc.srv, err = web.New(cfg)
	must(err)
	sc.http = httptest.NewServer(sc.srv)
	t.Cleanup(sc.http.Close)
	return sc
}

// writeLong appends a profile of n events straight to the ledger: its
// fence, then group commits of 100 events (as a busy session's are).
func writeLong(t testing.TB, js jetstream.JetStream, key string, n int) {
	t.Helper()
	ctx := context.Background()
	stream, err := js.Stream(ctx, "PL_"+storeName)
	if err != nil {
		t.Fatal(err)
	}
	nm, _ := names.New(storeName)
	tok, err := keys.Encode(key)
	if err != nil {
		t.Fatal(err)
	}
	lg := ledger.NewLog(js, stream, 1<<20)
	defer lg.Close()
	subject := nm.Events(tok)
	session := uuid.NewString()
	fence, err := lg.Append(ctx, subject, ledger.Head{}, ledger.Event{ID: uuid.NewString(), Type: ledger.TypeSessionStarted, Session: session, Epoch: 1, Time: time.Now(),
		Ops: []ledger.Op{{Op: "replace", Path: "", Value: []byte(`{"coins":0,"inventory":[],"note":""}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	const per = 100
	for done := 0; done < n; done += per {
		evs := make([]ledger.Event, min(per, n-done))
		for j := range evs {
			evs[j] = ledger.Event{ID: uuid.NewString(), Type: "coin", Session: session, Epoch: 1, Time: time.Now(),
				Ops: []ledger.Op{{Op: "inc", Path: "/coins", Value: []byte("1")}}, Meta: map[string]string{"actor": "bench", "reason": "tick " + strconv.Itoa(done+j)}}
		}
		if fence, err = lg.Append(ctx, subject, fence, evs...); err != nil {
			t.Fatal(err)
		}
	}
}
