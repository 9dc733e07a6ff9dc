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
	"github.com/profileledger/profileledger/internal/natstest"
)

// TestTradesConserveItemsAndCoins is Jepsen's "bank" workload for trades:
// 20 profiles with coins and uniquely named items, concurrent trades
// between random pairs on three servers, profiles moving between servers by
// hand-over and steal, and one server crashing halfway. At the end every
// item is owned by exactly one profile, the coins add up, a full replay of
// every log gives the same state as the snapshot-based read, and every log
// keeps the invariants.
func TestTradesConserveItemsAndCoins(t *testing.T) {
	const (
		profiles = 20
		items    = 3
		coins    = 1000
		workers  = 6
	)
	run := 4 * time.Second
	if testing.Short() {
		run = 2 * time.Second
	}
	srv := natstest.Run(t)
	nodes := []*node{
		openNode(t, srv.URL(), "a", false),
		openNode(t, srv.URL(), "b", false),
		openNode(t, srv.URL(), "c", true), // crashes halfway
	}
	ctx := testCtx(t, 2*time.Minute)
	key := func(i int) string { return fmt.Sprintf("p%02d", i) }
	for i := range profiles {
		s, err := nodes[0].st.StartSession(ctx, key(i))
		if err != nil {
			t.Fatal(err)
		}
		err = s.Mutate(ctx, "setup", func(p *Player) error {
			p.Coins = coins
			for k := range items {
				p.Inventory = append(p.Inventory, fmt.Sprintf("item-%s-%d", key(i), k))
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

	var crashed atomic.Bool
	var traded, failed atomic.Int64
	deadline := time.Now().Add(run)
	time.AfterFunc(run/2, func() {
		crashed.Store(true)
		nodes[2].nc.Close() // no End, no Close: its sessions are taken over after the TTL
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for time.Now().Before(deadline) {
				n := nodes[rng.IntN(len(nodes))]
				if n == nodes[2] && crashed.Load() {
					continue
				}
				i, j := rng.IntN(profiles), rng.IntN(profiles-1)
				if j >= i {
					j++
				}
				var opts []profileledger.SessionOption
				if rng.IntN(5) == 0 {
					opts = append(opts, profileledger.Steal())
				}
				sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				a, err := n.st.StartSession(sctx, key(i), opts...)
				if err != nil {
					cancel()
					continue
				}
				b, err := n.st.StartSession(sctx, key(j), opts...)
				if err != nil {
					cancel()
					a.End(ctx)
					continue
				}
				amount := rng.IntN(100)
				pick := rng.IntN(items)
				err = profileledger.Trade(sctx, "trade", a, b, func(pa, pb *Player) error {
					if len(pa.Inventory) == 0 || pb.Coins < amount {
						return errNoDeal
					}
					k := pick % len(pa.Inventory)
					pb.Inventory = append(pb.Inventory, pa.Inventory[k])
					pa.Inventory = append(pa.Inventory[:k:k], pa.Inventory[k+1:]...)
					pa.Coins += amount
					pb.Coins -= amount
					return nil
				})
				cancel()
				switch {
				case err == nil:
					traded.Add(1)
				case errors.Is(err, errNoDeal):
				default:
					failed.Add(1) // lost, handed over, ended, or on the crashed server
				}
				for _, s := range []*profileledger.Session[Player]{a, b} {
					if rng.IntN(2) == 0 {
						s.End(ctx) // else: left for the next server to take over
					}
				}
			}
		})
	}
	wg.Wait()
	if traded.Load() == 0 {
		t.Fatal("no trade went through")
	}

	// Read everything back on a fresh connection.
	fresh := openNode(t, srv.URL(), "auditor", false)
	owner := map[string]string{}
	total := 0
	for i := range profiles {
		v, err := fresh.st.Get(ctx, key(i))
		if err != nil {
			t.Fatal(err)
		}
		full, err := fresh.st.Get(ctx, key(i), profileledger.AtTime(time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(v.Data) != fmt.Sprint(full.Data) {
			t.Errorf("%s: snapshot-based read %+v differs from a full replay %+v", key(i), v.Data, full.Data)
		}
		total += v.Data.Coins
		for _, it := range v.Data.Inventory {
			if prev, dup := owner[it]; dup {
				t.Errorf("item %s is owned by %s and %s: duplicated", it, prev, key(i))
			}
			owner[it] = key(i)
		}
		checkLog(t, key(i), readLog(t, fresh.js, key(i)))
	}
	if total != profiles*coins {
		t.Errorf("coins add up to %d, want %d", total, profiles*coins)
	}
	if len(owner) != profiles*items {
		t.Errorf("%d items owned, want %d: some were lost", len(owner), profiles*items)
	}
	t.Logf("%d trades, %d failed cleanly, crash at %v", traded.Load(), failed.Load(), run/2)
}

var errNoDeal = errors.New("no deal")
