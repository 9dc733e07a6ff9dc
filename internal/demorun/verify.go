package demorun

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

// Verification is what reading back every player's log found.
type Verification struct {
	Profiles        int `json:"profiles"`
	Events          int `json:"events"`
	Lost            int `json:"lost"`             // acknowledged, not in the data
	Duplicated      int `json:"duplicated"`       // in the data more than once
	RejectedPresent int `json:"rejected_present"` // rejected, yet in the data
	UncertainLanded int `json:"uncertain_landed"` // uncertain, and in the data once
	UnknownItems    int `json:"unknown_items"`    // in the data, never tried
	CoinMismatches  int `json:"coin_mismatches"`  // profiles whose coins are not the template plus their items' coins
	OrderViolations int `json:"order_violations"` // acknowledged loop items out of acknowledgement order
	GetMismatches   int `json:"get_mismatches"`   // profiles whose Store.Get differs from the fold of the log
	AuditViolations int `json:"audit_violations"`
	GemsDuplicated  int `json:"gems_duplicated"` // a gem owned by two players (or twice by one)
	GemsLost        int `json:"gems_lost"`       // a minted gem owned by nobody
	GoldDelta       int `json:"gold_delta"`      // total gold minus the total minted
	// Dupes is what the dupes command finds in the store at the end
	// (investigate.Dupes over DupesPattern): values held twice.
	Dupes int        `json:"dupes"`
	Gifts GiftReport `json:"gifts"`

	gemOwner  map[string]string
	goldTotal int
	Problems  []string `json:"problems,omitempty"` // the first few findings, in words
}

func (v *Verification) ok() bool {
	return v.Lost == 0 && v.Duplicated == 0 && v.RejectedPresent == 0 && v.UnknownItems == 0 &&
		v.CoinMismatches == 0 && v.OrderViolations == 0 && v.GetMismatches == 0 && v.AuditViolations == 0 &&
		v.GemsDuplicated == 0 && v.GemsLost == 0 && v.GoldDelta == 0 && v.Gifts.ok() && v.Dupes == 0 &&
		len(v.Problems) == 0
}

func (v *Verification) problem(format string, args ...any) {
	if len(v.Problems) < maxSamples {
		v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
	}
}

// verifier reads profiles back: their logs directly, and their data through
// a Store of its own.
type verifier struct {
	log   *ledger.Log
	store *profileledger.Store[Player]
	names names.Names
}

func newVerifier(ctx context.Context, js jetstream.JetStream, store *profileledger.Store[Player]) (*verifier, error) {
	n, err := names.New(StoreName)
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, n.Stream)
	if err != nil {
		return nil, fmt.Errorf("verify: stream: %w", err)
	}
	return &verifier{log: ledger.NewLog(js, stream, 1<<20), store: store, names: n}, nil
}

// check verifies one player's profile against the record of its mutations:
//
//   - every acknowledged mutation's item is in the final data exactly once,
//     and the player loop's acknowledged items are in acknowledgement order;
//   - no rejected mutation's item is in it; an uncertain one at most once;
//   - nothing else is in it, and coins are the starting coins plus the coins
//     of the mutations whose items are in it;
//   - audit.Check finds no violation in the log;
//   - Store.Get (snapshot plus replay) equals the plain fold of the log.
func (vr *verifier) check(ctx context.Context, p *player, v *Verification) error {
	tok, err := keys.Encode(p.key)
	if err != nil {
		return err
	}
	var recs []ledger.Record
	if err := vr.log.Read(ctx, vr.names.Events(tok), 0, 0, func(r ledger.Record) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		return fmt.Errorf("verify %s: read log: %w", p.key, err)
	}
	v.Profiles++
	v.Events += len(recs)
	for _, viol := range audit.Check(p.key, recs) {
		v.AuditViolations++
		v.problem("audit: %v", viol)
	}

	// The plain fold of every event in the log, from nothing.
	events := make([]ledger.Event, 0, len(recs))
	for _, r := range recs {
		if r.Err == nil {
			events = append(events, r.Event)
		}
	}
	doc, err := projector.Fold(nil, events)
	if err != nil {
		return fmt.Errorf("verify %s: fold: %w", p.key, err)
	}
	raw, err := projector.Encode(doc)
	if err != nil {
		return fmt.Errorf("verify %s: %w", p.key, err)
	}
	var folded Player
	if err := json.Unmarshal(raw, &folded); err != nil {
		return fmt.Errorf("verify %s: folded data: %w", p.key, err)
	}

	view, err := vr.store.Get(ctx, p.key)
	if err != nil {
		return fmt.Errorf("verify %s: Get: %w", p.key, err)
	}
	gotRaw, err := json.Marshal(view.Data)
	if err != nil {
		return err
	}
	got, err := projector.Decode(gotRaw)
	if err != nil {
		return err
	}
	if !projector.Equal(doc, got) {
		v.GetMismatches++
		v.problem("%s: Store.Get at version %d is %s, the fold of the log is %s", p.key, view.Version, brief(gotRaw), brief(raw))
	} else if len(events) > 0 && view.Version != events[len(events)-1].Seq {
		v.GetMismatches++
		v.problem("%s: Store.Get is at version %d, the log's last event at %d", p.key, view.Version, events[len(events)-1].Seq)
	}

	v.goldTotal += folded.Gold
	for _, g := range folded.Gems {
		if prev, dup := v.gemOwner[g]; dup {
			v.GemsDuplicated++
			v.problem("%s is owned by %s and %s", g, prev, p.key)
		}
		v.gemOwner[g] = p.key
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	count := make(map[string]int, len(folded.Inventory))
	wantCoins := startingCoins
	lastOrder := 0
	for _, item := range folded.Inventory {
		count[item]++
		m := p.muts[item]
		if m == nil {
			v.UnknownItems++
			v.problem("%s: %q is in the inventory but was never tried", p.key, item)
			continue
		}
		wantCoins += m.coins
		if m.ackOrder > 0 {
			if m.ackOrder < lastOrder {
				v.OrderViolations++
				v.problem("%s: acknowledged %s (#%d) is after #%d in the inventory", p.key, item, m.ackOrder, lastOrder)
			}
			lastOrder = max(lastOrder, m.ackOrder)
		}
	}
	for _, m := range p.order {
		n := count[m.item]
		switch {
		case n > 1:
			v.Duplicated++
			v.problem("%s: %s (%s) is in the inventory %d times", p.key, m.item, m.outcome, n)
		case m.outcome == acked && n == 0:
			v.Lost++
			v.problem("%s: acknowledged %s is missing", p.key, m.item)
		case m.outcome == rejected && n > 0:
			v.RejectedPresent++
			v.problem("%s: rejected %s is in the inventory", p.key, m.item)
		case (m.outcome == uncertain || m.outcome == unexplained) && n == 1:
			v.UncertainLanded++
		}
	}
	if folded.Coins != wantCoins {
		v.CoinMismatches++
		v.problem("%s: %d coins, want %d (starting coins plus the coins of the items present)", p.key, folded.Coins, wantCoins)
	}
	return nil
}

func (o outcome) String() string {
	switch o {
	case acked:
		return "acknowledged"
	case rejected:
		return "rejected"
	case uncertain:
		return "uncertain"
	case unexplained:
		return "unexplained error"
	}
	return "no outcome"
}

// brief shortens raw JSON for a message.
func brief(raw []byte) string {
	const max = 120
	if len(raw) <= max {
		return string(raw)
	}
	return string(raw[:max]) + "…"
}
