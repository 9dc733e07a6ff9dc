package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/ledger"
)

const tradesDescription = `
Lists a profile's trades: for each, its sequence, time, trade id, the other
profile, and what moved on both sides (each side's ops, from both logs), so
an investigator can follow an item from profile to profile.`

// tradeRow is one trade as seen from one profile.
type tradeRow struct {
	Seq      uint64      `json:"seq"`
	Time     time.Time   `json:"time"`
	Trade    string      `json:"trade"`
	Type     string      `json:"type"`
	With     string      `json:"with"`
	Ops      []ledger.Op `json:"ops"`
	TheirSeq uint64      `json:"their_seq,omitempty"`
	Theirs   []ledger.Op `json:"their_ops,omitempty"`
	// Missing is set when the other side's event is not in its log — an
	// atomic trade never leaves one side alone, so this is a violation.
	Missing bool `json:"missing,omitempty"`
	// UndoneBy is the sequence of a later rollback of this profile to a
	// version before the trade: this side of the trade was undone, the
	// other side was not (Session.Rollback).
	// Meta is the caller's metadata on this side's event: who and why
	// (WithMeta), without the trade's own keys.
	Meta         map[string]string `json:"meta,omitempty"`
	UndoneBy     uint64            `json:"undone_by_rollback,omitempty"`
	UndoneReason string            `json:"undone_reason,omitempty"`
}

// rollback is a pl.rollback event: at seq, back to version to.
type rollback struct {
	seq, to uint64
	reason  string
}

func (m *Main) runTrades(ctx context.Context, args []string) int {
	fs := m.newFlagSet("trades", "[connection flags] [-json] <store> <key>", tradesDescription)
	nf := addNATSFlags(fs, time.Minute)
	asJSON := fs.Bool("json", false, "print the trades as one JSON array")
	pos, code, ok := m.parseArgs(fs, args) // flags may come before or after the arguments
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return m.usageError(fs, "want a store and a key, got %d arguments", len(pos))
	}
	if err := nf.check(); err != nil {
		return m.usageError(fs, "%v", err)
	}
	store, key := pos[0], pos[1]
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	nc, js, err := nf.connect("trades")
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger trades: %v\n", err)
		return exitFail
	}
	defer nc.Close()
	rows, err := listTrades(ctx, js, store, key)
	if err != nil {
		fmt.Fprintf(m.stderr, "profileledger trades: %v\n", err)
		return exitFail
	}
	if *asJSON {
		enc := json.NewEncoder(m.stdout)
		enc.SetIndent("", "  ")
		if rows == nil {
			rows = []tradeRow{}
		}
		enc.Encode(rows)
		return exitOK
	}
	fmt.Fprintf(m.stdout, "profile %q in store %s: %d trade(s)\n", key, store, len(rows))
	for _, r := range rows {
		fmt.Fprintf(m.stdout, "\nseq %d  %s  %s  trade %s  with %q", r.Seq, r.Time.UTC().Format(time.RFC3339Nano), r.Type, r.Trade, r.With)
		if r.Missing {
			fmt.Fprintf(m.stdout, "  (NOT IN %q's LOG)\n", r.With)
		} else {
			fmt.Fprintf(m.stdout, " (their seq %d)\n", r.TheirSeq)
		}
		if len(r.Meta) > 0 {
			fmt.Fprintf(m.stdout, "  %-12s %s\n", "who, why:", formatMeta(r.Meta))
		}
		fmt.Fprintf(m.stdout, "  %-12s %s\n", "this side:", formatOps(r.Ops))
		if !r.Missing {
			fmt.Fprintf(m.stdout, "  %-12s %s\n", r.With+":", formatOps(r.Theirs))
		}
		if r.UndoneBy > 0 {
			fmt.Fprintf(m.stdout, "  undone on this side by the rollback at seq %d (%s); %q kept its side\n", r.UndoneBy, r.UndoneReason, r.With)
		}
	}
	return exitOK
}

// formatMeta prints metadata as key=value pairs, actor and reason first.
func formatMeta(meta map[string]string) string {
	keys := slices.Sorted(maps.Keys(meta))
	slices.SortStableFunc(keys, func(a, b string) int {
		rank := func(k string) int {
			switch k {
			case "actor":
				return 0
			case "reason":
				return 1
			}
			return 2
		}
		return rank(a) - rank(b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(meta[k])
	}
	return strings.Join(parts, " ")
}

func formatOps(ops []ledger.Op) string {
	if len(ops) == 0 {
		return "(nothing)"
	}
	parts := make([]string, len(ops))
	for i, op := range ops {
		s := op.Op + " " + op.Path
		if op.From != "" {
			s = op.Op + " " + op.From + " -> " + op.Path
		}
		if len(op.Value) > 0 {
			s += " " + string(op.Value)
		}
		parts[i] = s
	}
	return strings.Join(parts, "; ")
}

// listTrades reads key's log in store and, for each of its trade events,
// the other side's event from the other profile's log.
func listTrades(ctx context.Context, js jetstream.JetStream, store, key string) ([]tradeRow, error) {
	n, err := names.New(store)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, n.Stream)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", store, err)
	}
	log := ledger.NewLog(js, st, 1<<20)
	defer log.Close()
	var rollbacks []rollback // of key's profile
	read := func(k string) ([]ledger.Record, error) {
		tok, err := keys.Encode(k)
		if err != nil {
			return nil, err
		}
		var recs []ledger.Record
		err = log.Read(ctx, n.Events(tok), 0, 0, func(r ledger.Record) error {
			switch {
			case r.Err != nil:
			case r.Event.Meta[ledger.MetaTrade] != "":
				recs = append(recs, r)
			case r.Event.Type == ledger.TypeRollback && k == key:
				to, _ := strconv.ParseUint(r.Event.Meta[ledger.MetaRollbackTo], 10, 64)
				rollbacks = append(rollbacks, rollback{seq: r.Seq, to: to, reason: r.Event.Meta["reason"]})
			}
			return nil
		})
		return recs, err
	}
	mine, err := read(key)
	if err != nil {
		return nil, err
	}
	others := map[string]map[string]ledger.Record{} // other key -> trade id -> its event
	var rows []tradeRow
	for _, r := range mine {
		ev := r.Event
		row := tradeRow{Seq: r.Seq, Time: r.Stored, Trade: ev.Meta[ledger.MetaTrade], Type: ev.Type, With: ev.Meta[ledger.MetaWith], Ops: ev.Ops}
		for k, v := range ev.Meta {
			if k != ledger.MetaTrade && k != ledger.MetaWith {
				if row.Meta == nil {
					row.Meta = map[string]string{}
				}
				row.Meta[k] = v
			}
		}
		byID, ok := others[row.With]
		if !ok {
			recs, err := read(row.With)
			if err != nil {
				return nil, fmt.Errorf("the other side %q: %w", row.With, err)
			}
			byID = map[string]ledger.Record{}
			for _, o := range recs {
				byID[o.Event.Meta[ledger.MetaTrade]] = o
			}
			others[row.With] = byID
		}
		if o, ok := byID[row.Trade]; ok {
			row.TheirSeq, row.Theirs = o.Seq, o.Event.Ops
		} else {
			row.Missing = true
		}
		for _, rb := range rollbacks {
			if rb.to < row.Seq && row.Seq < rb.seq {
				row.UndoneBy, row.UndoneReason = rb.seq, rb.reason
				break
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}
