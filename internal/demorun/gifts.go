package demorun

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/profileledger/profileledger"
)

// The demo's gift shop: a process of its own (its own connection and
// Store) that sends gifts to random players with Store.Message while they
// hop between servers and one server crashes. Every session a player starts
// handles its messages (Session.HandleMessages), adding the gift to its
// Gifts. At the end every acknowledged gift must be in exactly one player's
// data, the one it was sent to, exactly once.

// giftEvery is how often the shop sends a gift.
const giftEvery = 15 * time.Millisecond

// giftShop records every gift it sent and what Message said.
type giftShop struct {
	mu    sync.Mutex
	sent  map[string]*sentGift // by gift id
	order []*sentGift
}

type sentGift struct {
	id, to  string
	outcome outcome // acked, uncertain (or unexplained); rejected: ErrInboxFull
}

// GiftReport is what checking the gifts found.
type GiftReport struct {
	Sent       int `json:"sent"`
	Acked      int `json:"acknowledged"`
	Handled    int `json:"handled"`
	Lost       int `json:"lost"`       // acknowledged, in no player's data
	Duplicated int `json:"duplicated"` // in a player's data more than once
	Misplaced  int `json:"misplaced"`  // in another player's data
	Unknown    int `json:"unknown"`    // in a player's data, never sent
	Drained    int `json:"drained"`    // handled after play, by the check's own sessions
}

func (r GiftReport) ok() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Misplaced == 0 && r.Unknown == 0
}

// receiveGift is every session's message handler.
func receiveGift(p *Player, m profileledger.Message) error {
	p.Gifts = append(p.Gifts, string(m.Payload))
	return nil
}

// runGiftShop sends gifts until the run's end. It owns its connection.
func (d *demo) runGiftShop(ctx context.Context, url string, rng *rand.Rand) error {
	nc, err := nats.Connect(url, nats.Name("profileledger-demo-giftshop"))
	if err != nil {
		return fmt.Errorf("gift shop: connect: %w", err)
	}
	st, err := d.openStore(ctx, nc, "giftshop")
	if err != nil {
		nc.Close()
		return fmt.Errorf("gift shop: %w", err)
	}
	d.wg.Go(func() {
		defer nc.Close()
		defer st.Close(context.Background())
		t := time.NewTicker(giftEvery)
		defer t.Stop()
		for n := 1; time.Now().Before(d.end); n++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			p := d.players[rng.IntN(len(d.players))]
			g := &sentGift{id: fmt.Sprintf("gift-%05d", n), to: p.key}
			mctx, cancel := context.WithTimeout(ctx, mutateTimeout)
			mctx = profileledger.WithMeta(mctx, map[string]string{profileledger.MetaActor: "giftshop"})
			err := st.Message(mctx, p.key, []byte(g.id), profileledger.MessageID(g.id))
			cancel()
			switch {
			case err == nil:
				g.outcome = acked
			case errors.Is(err, profileledger.ErrInboxFull):
				g.outcome = rejected
			default:
				g.outcome = uncertain
			}
			d.gifts.mu.Lock()
			d.gifts.sent[g.id] = g
			d.gifts.order = append(d.gifts.order, g)
			d.gifts.mu.Unlock()
		}
	})
	return nil
}

// drainGifts hands the gifts still pending after play to the players: a
// session per player with pending messages, on a store of the check's own,
// until its inbox is empty.
func (d *demo) drainGifts(ctx context.Context, st *profileledger.Store[Player]) (int, error) {
	drained := 0
	for _, p := range d.players {
		info, err := st.Info(ctx, p.key)
		if err != nil {
			return drained, err
		}
		if info.PendingMessages == 0 {
			continue
		}
		s, err := st.StartSession(ctx, p.key)
		if err != nil {
			return drained, fmt.Errorf("drain %s: %w", p.key, err)
		}
		before := len(s.Data().Gifts)
		s.HandleMessages(receiveGift)
		for {
			info, err := st.Info(ctx, p.key)
			if err != nil {
				s.End(ctx)
				return drained, err
			}
			if info.PendingMessages == 0 {
				break
			}
			if !sleep(ctx, 5*time.Millisecond) {
				s.End(ctx)
				return drained, fmt.Errorf("drain %s: %w", p.key, ctx.Err())
			}
		}
		drained += len(s.Data().Gifts) - before
		if err := s.End(ctx); err != nil {
			return drained, fmt.Errorf("drain %s: %w", p.key, err)
		}
	}
	return drained, nil
}

// checkGifts compares every player's gifts with what the shop sent.
func (d *demo) checkGifts(ctx context.Context, st *profileledger.Store[Player], v *Verification) (GiftReport, error) {
	var r GiftReport
	var err error
	if r.Drained, err = d.drainGifts(ctx, st); err != nil {
		return r, err
	}
	d.gifts.mu.Lock()
	defer d.gifts.mu.Unlock()
	r.Sent = len(d.gifts.order)
	for _, g := range d.gifts.order {
		if g.outcome == acked {
			r.Acked++
		}
	}
	seen := map[string]int{}
	for _, p := range d.players {
		view, err := st.Get(ctx, p.key)
		if err != nil {
			return r, err
		}
		for _, id := range view.Data.Gifts {
			seen[id]++
			r.Handled++
			g, ok := d.gifts.sent[id]
			switch {
			case !ok:
				r.Unknown++
				v.problem("%s holds %s, which the shop never sent", p.key, id)
			case g.to != p.key:
				r.Misplaced++
				v.problem("%s holds %s, sent to %s", p.key, id, g.to)
			}
		}
	}
	for id, n := range seen {
		if n > 1 {
			r.Duplicated += n - 1
			v.problem("gift %s was handled %d times", id, n)
		}
	}
	for _, g := range d.gifts.order {
		if g.outcome == acked && seen[g.id] == 0 {
			r.Lost++
			v.problem("acknowledged gift %s to %s was never handled", g.id, g.to)
		}
	}
	return r, nil
}
