package integration_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/pltest"
)

// bank is Jepsen's "bank" workload for trades: profiles with coins and
// uniquely named items, and workers trading between random pairs through
// whichever nodes are up.
type bank struct {
	profiles, items, coins int
	nodes                  func() []*node

	traded, failed atomic.Int64
}

func newBank(nodes func() []*node) *bank {
	return &bank{profiles: 20, items: 3, coins: 1000, nodes: nodes}
}

func (b *bank) key(i int) string { return fmt.Sprintf("bank-%02d", i) }

// setup gives every profile its coins and items.
func (b *bank) setup(t testing.TB, ctx context.Context) {
	t.Helper()
	n := b.nodes()[0]
	for i := range b.profiles {
		s, err := n.st.StartSession(ctx, b.key(i))
		if err != nil {
			t.Fatal(err)
		}
		err = s.Mutate(ctx, "setup", func(p *Player) error {
			p.Coins = b.coins
			for k := range b.items {
				p.Inventory = append(p.Inventory, fmt.Sprintf("item-%s-%d", b.key(i), k))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// run trades with workers goroutines until the deadline: each takes two
// random profiles on a random node (by hand-over, sometimes by steal),
// trades an item for coins, and ends the sessions or leaves them to be
// taken over.
func (b *bank) run(ctx context.Context, workers int, until time.Time) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for ctx.Err() == nil && time.Now().Before(until) {
				nodes := b.nodes()
				n := nodes[rng.IntN(len(nodes))]
				i, j := rng.IntN(b.profiles), rng.IntN(b.profiles-1)
				if j >= i {
					j++
				}
				var opts []profileledger.SessionOption
				if rng.IntN(5) == 0 {
					opts = append(opts, profileledger.Steal())
				}
				sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				x, err := n.st.StartSession(sctx, b.key(i), opts...)
				if err != nil {
					cancel()
					time.Sleep(10 * time.Millisecond)
					continue
				}
				y, err := n.st.StartSession(sctx, b.key(j), opts...)
				if err != nil {
					cancel()
					x.End(ctx)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				amount, pick := rng.IntN(100), rng.IntN(b.items)
				err = profileledger.Trade(sctx, "trade", x, y, func(px, py *Player) error {
					if len(px.Inventory) == 0 || py.Coins < amount {
						return errNoDeal
					}
					k := pick % len(px.Inventory)
					py.Inventory = append(py.Inventory, px.Inventory[k])
					px.Inventory = append(px.Inventory[:k:k], px.Inventory[k+1:]...)
					px.Coins += amount
					py.Coins -= amount
					return nil
				})
				cancel()
				switch {
				case err == nil:
					b.traded.Add(1)
				case errors.Is(err, errNoDeal):
				default:
					b.failed.Add(1) // lost, handed over, ended, uncertain, or its node went away
				}
				for _, s := range []*profileledger.Session[Player]{x, y} {
					if rng.IntN(2) == 0 {
						ectx, cancel := context.WithTimeout(ctx, 2*time.Second)
						s.End(ectx)
						cancel()
					}
				}
			}
		})
	}
	wg.Wait()
}

// verify reads every profile back through n: every item owned exactly
// once, the coins unchanged in total, a full replay equal to the
// snapshot-based read, and every log's invariants.
func (b *bank) verify(t testing.TB, n *node) {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	if b.traded.Load() == 0 {
		t.Error("no trade went through")
	}
	owner := map[string]string{}
	total := 0
	for i := range b.profiles {
		v, err := n.st.Get(ctx, b.key(i))
		if err != nil {
			t.Fatal(err)
		}
		full, err := n.st.Get(ctx, b.key(i), profileledger.AtTime(time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(v.Data) != fmt.Sprint(full.Data) {
			t.Errorf("%s: snapshot-based read %+v differs from a full replay %+v", b.key(i), v.Data, full.Data)
		}
		total += v.Data.Coins
		for _, it := range v.Data.Inventory {
			if prev, dup := owner[it]; dup {
				t.Errorf("item %s is owned by %s and %s: duplicated", it, prev, b.key(i))
			}
			owner[it] = b.key(i)
		}
		checkLog(t, b.key(i), readLog(t, n.js, b.key(i)))
	}
	if total != b.profiles*b.coins {
		t.Errorf("coins add up to %d, want %d", total, b.profiles*b.coins)
	}
	if len(owner) != b.profiles*b.items {
		t.Errorf("%d items owned, want %d: some were lost", len(owner), b.profiles*b.items)
	}
	t.Logf("bank: %d trades, %d failed cleanly, %d items owned once, coins %d", b.traded.Load(), b.failed.Load(), len(owner), total)
	auditStore(t, n.js)
}

// TestTradesConserveItemsAndCoins runs the bank workload on three servers
// while profiles move between them by hand-over and steal and one server
// crashes halfway (its connection closed without End or Close).
func TestTradesConserveItemsAndCoins(t *testing.T) {
	run := 4 * time.Second
	if testing.Short() {
		run = 2 * time.Second
	}
	srv := pltest.Run(t)
	all := []*node{
		openNode(t, srv.URL(), "a", false),
		openNode(t, srv.URL(), "b", false),
		openNode(t, srv.URL(), "c", true), // crashes halfway
	}
	var crashed atomic.Bool
	b := newBank(func() []*node {
		if crashed.Load() {
			return all[:2]
		}
		return all
	})
	ctx := testCtx(t, 2*time.Minute)
	b.setup(t, ctx)
	time.AfterFunc(run/2, func() {
		crashed.Store(true)
		all[2].nc.Close() // its sessions are taken over after the TTL
	})
	b.run(ctx, 6, time.Now().Add(run))
	b.verify(t, openNode(t, srv.URL(), "auditor", false))
}

var errNoDeal = errors.New("no deal")
