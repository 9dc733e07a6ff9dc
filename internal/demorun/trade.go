package demorun

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/profileledger/profileledger"
)

// Trading in the demo moves gems and gold, which nothing else touches, so
// that the per-player checks of items and coins stay exact and the trades
// are checked by conservation: every gem minted before play is owned by
// exactly one player at the end, and the gold adds up.
const (
	startingGold   = 1000
	gemsPerPlayer  = 2
	tradeTimeout   = 5 * time.Second
	tradersPer     = 10 // one trader per this many players
	maxGoldPerDeal = 50
)

var errNoDeal = errors.New("no deal")

// gem names a player's k-th gem.
func gem(n, k int) string { return fmt.Sprintf("gem-%02d-%d", n, k) }

// mint gives every player its gems before play, on the first server.
func (d *demo) mint(ctx context.Context) error {
	srv := d.servers[0]
	for _, p := range d.players {
		s, err := srv.store.StartSession(ctx, p.key)
		if err != nil {
			return fmt.Errorf("mint gems for %s: %w", p.key, err)
		}
		ops := make([]profileledger.Op, gemsPerPlayer)
		for k := range ops {
			ops[k] = profileledger.Add("/gems/-", gem(p.n, k+1))
		}
		if err := s.Apply(ctx, "gems.minted", ops...); err != nil {
			return fmt.Errorf("mint gems for %s: %w", p.key, err)
		}
		if err := s.End(ctx); err != nil {
			return fmt.Errorf("mint gems for %s: %w", p.key, err)
		}
	}
	return nil
}

// runTrader trades gems for gold between random pairs of players on random
// servers until the run ends: it takes both profiles on one server (by
// hand-over from wherever they are), trades atomically, and then ends the
// sessions or leaves them to be taken by the players' own loops.
func (d *demo) runTrader(ctx context.Context, rng *rand.Rand) {
	for ctx.Err() == nil && time.Now().Before(d.end) {
		srv := d.pick(rng, nil)
		i, j := rng.IntN(len(d.players)), rng.IntN(len(d.players)-1)
		if j >= i {
			j++
		}
		pa, pb := d.players[i], d.players[j]
		sctx, cancel := context.WithTimeout(srv.ctx, tradeTimeout)
		a, err := srv.store.StartSession(sctx, pa.key)
		var b *profileledger.Session[Player]
		if err == nil {
			b, err = srv.store.StartSession(sctx, pb.key)
		}
		d.stats.traderStarted(a, b)
		if err != nil {
			cancel()
			if a != nil {
				a.End(ctx)
			}
			d.stats.traded(0, err, srv)
			sleep(ctx, 20*time.Millisecond)
			continue
		}
		gold := 1 + rng.IntN(maxGoldPerDeal)
		pick := rng.IntN(gemsPerPlayer * len(d.players))
		t0 := time.Now()
		err = profileledger.Trade(sctx, "trade.gem", a, b, func(x, y *Player) error {
			if len(x.Gems) == 0 || y.Gold < gold {
				return errNoDeal
			}
			k := pick % len(x.Gems)
			y.Gems = append(y.Gems, x.Gems[k])
			x.Gems = append(x.Gems[:k:k], x.Gems[k+1:]...)
			x.Gold += gold
			y.Gold -= gold
			return nil
		})
		d.stats.traded(time.Since(t0), err, srv)
		cancel()
		if rng.IntN(2) == 0 {
			ectx, cancel := context.WithTimeout(ctx, endTimeout)
			a.End(ectx)
			b.End(ectx)
			cancel()
		}
		sleep(ctx, time.Duration(rng.IntN(20))*time.Millisecond)
	}
}

// TradeStats counts the traders' outcomes.
type TradeStats struct {
	Acknowledged int             `json:"acknowledged"`
	NoDeal       int             `json:"no_deal"`
	Failed       int             `json:"failed_cleanly"` // a side was handed over, lost or ended; nothing applied
	Uncertain    int             `json:"uncertain"`
	Sessions     int             `json:"sessions_started"` // by the traders
	latencies    []time.Duration // of acknowledged trades
}

// traderStarted counts the sessions a trader started (the non-nil ones).
func (st *runStats) traderStarted(ss ...*profileledger.Session[Player]) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, s := range ss {
		if s != nil {
			st.trades.Sessions++
		}
	}
}

func (st *runStats) traded(took time.Duration, err error, srv *gameServer) {
	st.mu.Lock()
	defer st.mu.Unlock()
	t := &st.trades
	switch {
	case err == nil:
		t.Acknowledged++
		t.latencies = append(t.latencies, took)
	case errors.Is(err, errNoDeal):
		t.NoDeal++
	case errors.Is(err, profileledger.ErrUncertain):
		t.Uncertain++
	default:
		t.Failed++
	}
}
