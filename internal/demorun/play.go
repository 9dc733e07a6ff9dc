package demorun

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/retry"
)

// The pace of a simulated player.
const (
	maxMutationsPerSession = 6
	startTimeout           = 15 * time.Second
	mutateTimeout          = 5 * time.Second
	endTimeout             = 5 * time.Second
	stragglerMaxWrites     = 50
)

// Probabilities of what a player does when it leaves a server.
const (
	pEnd       = 0.25 // end the session cleanly
	pStraggler = 0.30 // leave it to be handed over while a stray writer keeps mutating it
	// otherwise: leave it idle, to be handed over
)

// runPlayer moves p from server to server until the run ends: start a
// session (by hand-over, or sometimes by steal), mutate a few times, then end
// the session or leave it for the next server to take.
func (d *demo) runPlayer(ctx context.Context, p *player, rng *rand.Rand) {
	var prev *profileledger.Session[Player]
	var prevSrv *gameServer
	for ctx.Err() == nil && time.Now().Before(d.end) {
		srv := d.pick(rng, prevSrv)
		steal := rng.Float64() < d.cfg.Steal
		var opts []profileledger.SessionOption
		if steal {
			opts = append(opts, profileledger.Steal())
		}
		held := prev != nil && prev.Err() == nil // as far as this player knows
		sctx, cancel := context.WithTimeout(srv.ctx, startTimeout)
		t0 := time.Now()
		s, err := srv.store.StartSession(sctx, p.key, opts...)
		took := time.Since(t0)
		cancel()
		if err != nil {
			d.stats.startFailed(srv, p.key, err)
			if !sleep(ctx, 20*time.Millisecond) {
				return
			}
			continue
		}
		// A session live on the crashed server counts as held even if this
		// player has since seen it lost (its renewals failed): the start
		// still had to wait for its lease to expire.
		crashHeld := p.takeCrashHeld()
		kind, note := startFresh, ""
		switch {
		case !held && !crashHeld:
		case steal:
			kind = startSteal
		case errors.Is(prev.Err(), profileledger.ErrHandedOver):
			kind = startHandover
		case crashHeld || prevSrv.crashed.Load():
			kind = startTakeover
		default:
			kind = startOther
			note = fmt.Sprintf("%s on %s (previous session on %s: %v)", p.key, srv.name, prevSrv.name, prev.Err())
		}
		d.stats.started(kind, took, note)
		p.holding(s, srv)
		s.HandleMessages(receiveGift) // the gift shop's gifts, pending and new

		for range 1 + rng.IntN(maxMutationsPerSession) {
			if err := d.mutate(ctx, p, s, srv, rng, true); err != nil {
				break
			}
			if !sleep(ctx, time.Duration(5+rng.IntN(40))*time.Millisecond) {
				break
			}
		}

		prev, prevSrv = s, srv
		switch r := rng.Float64(); {
		case r < pEnd:
			ectx, cancel := context.WithTimeout(ctx, endTimeout)
			d.stats.ended(srv, p.key, s.End(ectx))
			cancel()
		case r < pEnd+pStraggler:
			d.straggle(ctx, p, s, srv, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())))
		}
		if !sleep(ctx, time.Duration(rng.IntN(20))*time.Millisecond) {
			return
		}
	}
}

// straggle starts a stray writer on s: a part of the game server that still
// thinks it owns the player and keeps mutating it until the session is over
// (handed over, stolen, ended) or a write fails. Its writes after the
// session's end must all be rejected.
func (d *demo) straggle(ctx context.Context, p *player, s *profileledger.Session[Player], srv *gameServer, rng *rand.Rand) {
	d.stats.mu.Lock()
	d.stats.stragglers++
	d.stats.mu.Unlock()
	d.wg.Go(func() {
		for range stragglerMaxWrites {
			select {
			case <-s.Done():
				// One more write after the end, to show it is refused.
				d.mutate(ctx, p, s, srv, rng, false)
				return
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(3+rng.IntN(15)) * time.Millisecond):
			}
			if time.Now().After(d.end) {
				return
			}
			if err := d.mutate(ctx, p, s, srv, rng, false); err != nil {
				return
			}
		}
	})
}

// mutate tries one mutation of p on s and records its outcome. Mutations
// are of three kinds: an item found (Mutate, no coins), loot (Mutate, item
// and coins) and coins earned (Apply with Inc and Add, item as a receipt).
func (d *demo) mutate(ctx context.Context, p *player, s *profileledger.Session[Player], srv *gameServer, rng *rand.Rand, loop bool) error {
	kind := rng.IntN(3)
	coins := 0
	if kind > 0 {
		coins = 1 + rng.IntN(50)
	}
	m := p.plan(coins)
	mctx, cancel := context.WithTimeout(ctx, mutateTimeout)
	defer cancel()
	var err error
	switch kind {
	case 0:
		err = s.Mutate(mctx, "item.found", func(pl *Player) error {
			pl.Inventory = append(pl.Inventory, m.item)
			return nil
		})
	case 1:
		err = s.Mutate(mctx, "loot.found", func(pl *Player) error {
			pl.Coins += m.coins
			pl.Inventory = append(pl.Inventory, m.item)
			return nil
		})
	default:
		err = s.Apply(mctx, "coins.earned",
			profileledger.Inc("/coins", m.coins),
			profileledger.Add("/inventory/-", m.item))
	}
	o := classify(err)
	p.record(m, o, loop)
	d.stats.mutated(srv, p.key, o, loop, err)
	return err
}

// pick returns a live server other than avoid, or avoid if it is the only
// live one.
func (d *demo) pick(rng *rand.Rand, avoid *gameServer) *gameServer {
	live := make([]*gameServer, 0, len(d.servers))
	for _, s := range d.servers {
		if s != avoid && !s.crashed.Load() {
			live = append(live, s)
		}
	}
	if len(live) == 0 {
		return avoid
	}
	return live[rng.IntN(len(live))]
}

// sleep waits for d or until ctx ends, and reports whether ctx is still
// live.
func sleep(ctx context.Context, d time.Duration) bool { return retry.Sleep(ctx, d) }
