package investigate

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"

	"github.com/profileledger/profileledger/ledger"
)

// Move is a value arriving in a profile or leaving it.
type Move struct {
	Key string `json:"key"`
	// Kind is "arrived" (the profile holds more of it after the event)
	// or "left" (fewer).
	Kind string `json:"kind"`
	// Count is how many times the profile holds the value after it, and
	// Paths where.
	Count int      `json:"count"`
	Paths []string `json:"paths,omitempty"`
	// With is the other profile of a trade.
	With string `json:"with,omitempty"`
	Cause
	// Duplicated marks an arrival that made the value live twice: it
	// came from no profile that gave it up (no trade from its holder),
	// while DupedFrom held it — the origin of a dupe.
	Duplicated bool     `json:"duplicated,omitempty"`
	DupedFrom  []string `json:"duped_from,omitempty"`
}

// Holder is one profile that holds or held a traced value.
type Holder struct {
	Key string `json:"key"`
	// Count is how many times it holds the value now (0: it left), and
	// Paths where.
	Count int      `json:"count"`
	Paths []string `json:"paths,omitempty"`
	// Moves are the value's arrivals and departures, oldest first.
	Moves []Move `json:"moves"`
}

// TraceResult is a value's history across the store.
type TraceResult struct {
	// Value is the value traced, as JSON.
	Value json.RawMessage `json:"value"`
	// Holders are the profiles that hold or held it, in the order it
	// first arrived in them: the chain it followed.
	Holders []Holder `json:"holders"`
	// Live is how many times it is held now, over all profiles.
	Live int `json:"live"`
	// Dupe is set when it is live in two profiles, or twice in one.
	Dupe bool `json:"dupe"`
	// Timeline is every move of the value, in the order stored.
	Timeline []Move `json:"timeline"`
}

// Origins returns the moves that duplicated the value.
func (t TraceResult) Origins() []Move {
	var out []Move
	for _, m := range t.Timeline {
		if m.Duplicated {
			out = append(out, m)
		}
	}
	return out
}

// Values returns the JSON encodings that a value typed by a person may
// mean: the string itself, and the value as JSON if it is JSON ("42",
// "true", `{"id":"a"}`).
func Values(s string) []json.RawMessage {
	str, _ := json.Marshal(s)
	out := []json.RawMessage{str}
	var v any
	if json.Unmarshal([]byte(s), &v) == nil {
		if enc := raw(v, true); string(enc) != string(str) {
			out = append(out, enc)
		}
	}
	return out
}

// Trace returns every profile that holds or ever held value (any of its
// encodings, see Values) at a location matching pattern, with when and how
// it arrived and left. It replays every profile of the store.
func Trace(ctx context.Context, src Source, value string, pattern Pattern, opts ...ScanOption) (TraceResult, error) {
	res, err := traceMany(ctx, src, Values(value), pattern, newScanConfig(opts))
	if err != nil {
		return TraceResult{}, err
	}
	// Of the encodings, report the one that is found.
	for _, r := range res {
		if len(r.Holders) > 0 {
			return r, nil
		}
	}
	return res[0], nil
}

// traceMany traces several values (JSON encodings) in one pass.
func traceMany(ctx context.Context, src Source, values []json.RawMessage, pattern Pattern, cfg scanConfig) ([]TraceResult, error) {
	idx := make(map[string]int, len(values))
	res := make([]TraceResult, len(values))
	for i, v := range values {
		idx[string(v)] = i
		res[i] = TraceResult{Value: v, Holders: []Holder{}, Timeline: []Move{}}
	}
	keys, err := sortedKeys(ctx, src)
	if err != nil {
		return nil, err
	}
	for n, key := range keys {
		holders := make([]*Holder, len(values))
		prev := make([]int, len(values))
		err := Replay(ctx, src, key, func(s Step) error {
			if s.Skipped != nil || (len(s.Event.Ops) == 0 && s.Event.Type != ledger.TypeErased) {
				return nil
			}
			paths := make([][]string, len(values))
			pattern.Match(s.After, func(ptr string, v any) {
				if i, ok := idx[string(raw(v, true))]; ok {
					paths[i] = append(paths[i], ptr)
				}
			})
			for i := range values {
				c := len(paths[i])
				if c == prev[i] {
					if holders[i] != nil {
						holders[i].Paths = paths[i]
					}
					continue
				}
				if holders[i] == nil {
					holders[i] = &Holder{Key: key}
				}
				m := Move{Key: key, Kind: "arrived", Count: c, Paths: paths[i], With: s.Event.Meta[ledger.MetaWith], Cause: causeOf(s)}
				if c < prev[i] {
					m.Kind = "left"
				}
				holders[i].Moves = append(holders[i].Moves, m)
				holders[i].Count, holders[i].Paths = c, paths[i]
				prev[i] = c
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for i, h := range holders {
			if h != nil {
				res[i].Holders = append(res[i].Holders, *h)
			}
		}
		cfg.progress(Progress{Phase: "trace", Done: n + 1, Total: len(keys)})
	}
	for i := range res {
		timeline(&res[i])
	}
	return res, nil
}

// timeline orders every move of r by time and marks those that
// duplicated the value.
func timeline(r *TraceResult) {
	var all []Move
	for _, h := range r.Holders {
		all = append(all, h.Moves...)
		r.Live += h.Count
		if h.Count > 1 {
			r.Dupe = true
		}
	}
	live := 0
	for _, h := range r.Holders {
		if h.Count > 0 {
			live++
		}
	}
	r.Dupe = r.Dupe || live > 1
	slices.SortStableFunc(all, func(a, b Move) int {
		return cmp.Or(a.Stored.Compare(b.Stored), cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.Index, b.Index))
	})
	// A trade's departure from the giver, by trade id.
	gave := map[string]string{}
	for _, m := range all {
		if m.Kind == "left" && m.Meta[ledger.MetaTrade] != "" {
			gave[m.Meta[ledger.MetaTrade]] = m.Key
		}
	}
	count := map[string]int{}
	for i := range all {
		m := &all[i]
		before := count[m.Key]
		count[m.Key] = m.Count
		if m.Kind != "arrived" {
			continue
		}
		from := gave[m.Meta[ledger.MetaTrade]] // "" if not a trade that took it from someone
		for _, h := range r.Holders {
			if h.Key != m.Key && h.Key != from && count[h.Key] > 0 {
				m.DupedFrom = append(m.DupedFrom, h.Key)
			}
		}
		if before > 0 {
			m.DupedFrom = append(m.DupedFrom, m.Key) // twice in one profile
		}
		m.Duplicated = len(m.DupedFrom) > 0
	}
	first := map[string]int{}
	for i, m := range all {
		if _, ok := first[m.Key]; !ok {
			first[m.Key] = i
		}
	}
	slices.SortStableFunc(r.Holders, func(a, b Holder) int { return cmp.Compare(first[a.Key], first[b.Key]) })
	r.Timeline = all
	if r.Timeline == nil {
		r.Timeline = []Move{}
	}
	// Copy the marks back to the holders' moves.
	byEvent := map[[2]any]Move{}
	for _, m := range all {
		byEvent[[2]any{m.Key, m.EventID}] = m
	}
	for hi := range r.Holders {
		for mi, m := range r.Holders[hi].Moves {
			r.Holders[hi].Moves[mi] = byEvent[[2]any{m.Key, m.EventID}]
		}
	}
}
