package investigate

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/profileledger/profileledger"
)

// Location is where a profile holds a value now.
type Location struct {
	Key  string `json:"key"`
	Path string `json:"path"`
}

// Dupe is a value held in more than one place.
type Dupe struct {
	Value json.RawMessage `json:"value"`
	// At are the places it is held now.
	At []Location `json:"at"`
	// Trace is its history across the store.
	Trace TraceResult `json:"trace"`
}

// DupesReport is the result of Dupes.
type DupesReport struct {
	Pattern string `json:"pattern"`
	// Profiles is how many profiles were scanned, and Values how many
	// values matched the pattern in all.
	Profiles int    `json:"profiles"`
	Values   int    `json:"values"`
	Dupes    []Dupe `json:"dupes"`
}

// Dupes scans every profile's current data for values at locations that
// match pattern which are held in more than one profile or twice in one,
// and traces each (one more pass over the store, only if any is found).
// Values are compared as JSON. It reads current data through snapshots if
// src came from FromStore, else by replaying each log.
func Dupes(ctx context.Context, src Source, pattern Pattern, opts ...ScanOption) (DupesReport, error) {
	cfg := newScanConfig(opts)
	rep := DupesReport{Pattern: pattern.String(), Dupes: []Dupe{}}
	keys, err := sortedKeys(ctx, src)
	if err != nil {
		return rep, err
	}
	seen := map[string][]Location{}
	for n, key := range keys {
		doc, err := currentDoc(ctx, src, key)
		if err != nil {
			return rep, err
		}
		pattern.Match(doc, func(ptr string, v any) {
			enc := string(raw(v, true))
			seen[enc] = append(seen[enc], Location{Key: key, Path: ptr})
			rep.Values++
		})
		rep.Profiles++
		cfg.progress(Progress{Phase: "scan", Done: n + 1, Total: len(keys)})
	}
	var values []json.RawMessage
	for enc, at := range seen {
		if len(at) > 1 {
			values = append(values, json.RawMessage(enc))
		}
	}
	if len(values) == 0 {
		return rep, nil
	}
	slices.SortFunc(values, func(a, b json.RawMessage) int { return strings.Compare(string(a), string(b)) })
	traces, err := traceMany(ctx, src, values, pattern, cfg)
	if err != nil {
		return rep, err
	}
	for i, v := range values {
		at := seen[string(v)]
		slices.SortFunc(at, func(a, b Location) int {
			return strings.Compare(a.Key+"\x00"+a.Path, b.Key+"\x00"+b.Path)
		})
		rep.Dupes = append(rep.Dupes, Dupe{Value: v, At: at, Trace: traces[i]})
	}
	return rep, nil
}

// currentDoc returns the profile's current document: through Store.Get
// if src came from FromStore, else (or if the log holds an event whose
// ops do not apply) by a replay that skips what does not fold.
func currentDoc(ctx context.Context, src Source, key string) (any, error) {
	if c, ok := src.(currenter); ok {
		doc, _, err := c.current(ctx, key)
		if !errors.Is(err, profileledger.ErrBadEvent) {
			return doc, err
		}
		// An event that does not fold: the replay below skips it, as a
		// store opened WithSkipBadEvents would.
	}
	var doc any
	err := Replay(ctx, src, key, func(s Step) error { doc = s.After; return nil })
	return doc, err
}
