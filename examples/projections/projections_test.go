package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/examples/projections"
	"github.com/profileledger/profileledger/pltest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type Trader struct {
	Gold int64    `json:"gold"`
	Gems []string `json:"gems"`
}

func gems(t *Trader) []string { return t.Gems }
func gold(t *Trader) int64    { return t.Gold }
func newTrader() Trader       { return Trader{Gold: 1000, Gems: []string{}} }
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func open(t testing.TB, js jetstream.JetStream) *profileledger.Store[Trader] {
	t.Helper()
	st, err := profileledger.Open(ctxT(t), js, "traders", newTrader(), profileledger.WithLeaseTTL(time.Second), profileledger.WithSnapshotEvery(16))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st.Close(ctx)
	})
	return st
}

func run[T any](t testing.TB, p *profileledger.Projection[T]) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("projection %s: %v", p.Name(), err)
		}
	})
}

// caughtUp waits until p has acknowledged every event of the store.
func caughtUp[T any](t testing.TB, p *profileledger.Projection[T]) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := p.Status(ctxT(t))
		if err == nil && s.LagEvents() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("projection %s did not catch up: %+v, %v", p.Name(), s, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTheItemIndexFlagsADupeTheMomentItAppears(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	st := open(t, js)
	var found []projections.Dupe
	idx := projections.NewItemIndex(gems, func(d projections.Dupe) { found = append(found, d) })
	p, err := st.Project("items", idx.Handle, profileledger.ProjectFromStart())
	if err != nil {
		t.Fatal(err)
	}
	run(t, p)
	a, _ := st.StartSession(ctxT(t), "alice")
	b, _ := st.StartSession(ctxT(t), "bob")
	a.Apply(ctxT(t), "mint", profileledger.Add("/gems/-", "ruby"))
	b.Apply(ctxT(t), "mint", profileledger.Add("/gems/-", "opal"))
	// Trades move gems both ways, the adding half first or second.
	for _, order := range [][2]*profileledger.Session[Trader]{{a, b}, {b, a}} {
		if err := profileledger.Trade(ctxT(t), "sell", order[0], order[1], func(x, y *Trader) error {
			if i := slices.Index(y.Gems, "ruby"); i >= 0 { // y gives the ruby to x
				x.Gems, y.Gems = append(x.Gems, "ruby"), slices.Delete(y.Gems, i, i+1)
			} else {
				i := slices.Index(x.Gems, "ruby")
				y.Gems, x.Gems = append(y.Gems, "ruby"), slices.Delete(x.Gems, i, i+1)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	caughtUp(t, p)
	if len(idx.Dupes()) != 0 {
		t.Fatalf("trades flagged as dupes: %+v", idx.Dupes())
	}
	if o := idx.Owners("ruby"); !slices.Equal(o, []string{"alice"}) {
		t.Fatalf("ruby owned by %v after two trades, want alice", o)
	}
	// A bug in the game: bob gets a copy of alice's ruby.
	if err := b.Apply(ctxT(t), "quest.reward", profileledger.Add("/gems/-", "ruby")); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, p)
	d := idx.Dupes()
	if len(d) != 1 || d[0].Item != "ruby" || !slices.Equal(d[0].Owners, []string{"alice", "bob"}) || d[0].Key != "bob" || d[0].Seq != b.Version() {
		t.Fatalf("dupes %+v, want ruby in alice and bob at bob's version %d", d, b.Version())
	}
	if len(found) != 1 {
		t.Fatalf("onDupe called %d times", len(found))
	}
}

// TestARebuiltProjectionEqualsTheLiveOne runs the balances and the item
// index live through hand-overs, steals, trades and a crashed holder, then
// rebuilds both from the log and compares: the same balances, the same
// owners, each equal to what Get reads.
func TestARebuiltProjectionEqualsTheLiveOne(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	st1 := open(t, js)
	nc2, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc2.Close)
	js2, _ := jetstream.New(nc2)
	st2 := open(t, js2)

	liveBal, err := projections.OpenBalances(ctxT(t), js, "live_balances", gold)
	if err != nil {
		t.Fatal(err)
	}
	liveIdx := projections.NewItemIndex(gems, nil)
	pb, _ := st1.Project("balances", liveBal.Handle, profileledger.ProjectAckWait(time.Second), profileledger.ProjectPinTTL(time.Second))
	pi, _ := st1.Project("items", liveIdx.Handle, profileledger.ProjectFromStart())
	run(t, pb)
	run(t, pi)

	keys := []string{"t0", "t1", "t2", "t3", "t4", "t5"}
	for i, k := range keys {
		s, err := st1.StartSession(ctxT(t), k)
		if err != nil {
			t.Fatal(err)
		}
		s.Apply(ctxT(t), "mint", profileledger.Add("/gems/-", fmt.Sprintf("gem-%d-a", i)), profileledger.Add("/gems/-", fmt.Sprintf("gem-%d-b", i)))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	stores := []*profileledger.Store[Trader]{st1, st2}
	take := func(st *profileledger.Store[Trader], k string, opts ...profileledger.SessionOption) *profileledger.Session[Trader] {
		s, err := st.StartSession(ctxT(t), k, opts...)
		if err != nil {
			t.Fatalf("take %s: %v", k, err)
		}
		return s
	}
	trades := 0
	for step := range 60 {
		st := stores[step%2]
		k := keys[rng.IntN(len(keys))]
		switch rng.IntN(3) {
		case 0: // hand-over (or a fresh start) and a change
			take(st, k).Apply(ctxT(t), "earn", profileledger.Inc("/gold", rng.IntN(50)))
		case 1: // a steal
			take(st, k, profileledger.Steal()).Apply(ctxT(t), "earn", profileledger.Inc("/gold", 1))
		case 2: // a trade: a gem for gold
			k2 := keys[(slices.Index(keys, k)+1+rng.IntN(len(keys)-1))%len(keys)]
			a, b := take(st, k), take(st, k2)
			err := profileledger.Trade(ctxT(t), "gem.sold", a, b, func(x, y *Trader) error {
				if len(x.Gems) == 0 {
					return fmt.Errorf("no gem")
				}
				y.Gems, x.Gems = append(y.Gems, x.Gems[0]), x.Gems[1:]
				x.Gold, y.Gold = x.Gold+25, y.Gold-25
				return nil
			})
			if err == nil {
				trades++
			}
		}
	}
	// A crash: st2's connection dies with its sessions live; st1 takes
	// them over when their leases expire.
	nc2.Close()
	for _, k := range keys {
		take(st1, k).Apply(ctxT(t), "after.crash", profileledger.Inc("/gold", 1))
	}
	if trades == 0 {
		t.Fatal("the workload made no trade")
	}
	caughtUp(t, pb)
	caughtUp(t, pi)

	// The rebuild, from the log alone.
	rebuiltBal, err := projections.OpenBalances(ctxT(t), js, "rebuilt_balances", gold)
	if err != nil {
		t.Fatal(err)
	}
	rebuiltIdx := projections.NewItemIndex(gems, nil)
	rb, _ := st1.Project("balances_rebuilt", rebuiltBal.Handle, profileledger.ProjectFromStart())
	ri, _ := st1.Project("items_rebuilt", rebuiltIdx.Handle, profileledger.ProjectFromStart())
	run(t, rb)
	run(t, ri)
	caughtUp(t, rb)
	caughtUp(t, ri)

	live, err := liveBal.All(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	rebuilt, err := rebuiltBal.All(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, k := range keys {
		v, err := st1.Get(ctxT(t), k)
		if err != nil {
			t.Fatal(err)
		}
		total += v.Data.Gold
		want := projections.Balance{Key: k, Balance: v.Data.Gold, Version: v.Version}
		if live[k] != want || rebuilt[k] != want {
			t.Errorf("%s: live %+v, rebuilt %+v, Get %+v", k, live[k], rebuilt[k], want)
		}
		for _, g := range v.Data.Gems {
			if o := liveIdx.Owners(g); !slices.Equal(o, []string{k}) {
				t.Errorf("gem %s of %s: live index says %v", g, k, o)
			}
		}
	}
	if fmt.Sprint(liveIdx.Index()) != fmt.Sprint(rebuiltIdx.Index()) {
		t.Errorf("item index: live %v, rebuilt %v", liveIdx.Index(), rebuiltIdx.Index())
	}
	if len(liveIdx.Index()) != 2*len(keys) || len(liveIdx.Dupes())+len(rebuiltIdx.Dupes()) != 0 {
		t.Errorf("%d gems indexed (want %d); dupes live %v, rebuilt %v", len(liveIdx.Index()), 2*len(keys), liveIdx.Dupes(), rebuiltIdx.Dupes())
	}
	if total <= 0 {
		t.Errorf("total gold %d", total)
	}
	pltest.Audit(t, js, "traders")
}

func TestPathsReadUntypedProfilesAndRefuseBadPointers(t *testing.T) {
	items, err := projections.ItemsAt("/inv/gems")
	if err != nil {
		t.Fatal(err)
	}
	p := map[string]any{"inv": map[string]any{"gems": []any{"a", 3.0, "b"}}, "gold": 12.9}
	if got := items(&p); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("items %v", got)
	}
	num, err := projections.NumberAt("/gold")
	if err != nil {
		t.Fatal(err)
	}
	if num(&p) != 12 {
		t.Fatalf("number %d", num(&p))
	}
	empty := map[string]any{}
	if items(&empty) != nil || num(&empty) != 0 {
		t.Fatal("a profile without the fields holds something")
	}
	for _, bad := range []string{"", "gems", "/a~2"} {
		if _, err := projections.ItemsAt(bad); err == nil {
			t.Errorf("ItemsAt(%q) accepted", bad)
		}
		if _, err := projections.NumberAt(bad); err == nil {
			t.Errorf("NumberAt(%q) accepted", bad)
		}
	}
}
