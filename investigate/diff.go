package investigate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

// ErrNoSuchPoint means a version or time names no state of the profile:
// before its first event, or a version past its last.
var ErrNoSuchPoint = errors.New("investigate: no such point in the profile's history")

// Point is a moment of a profile's history: a version (Version > 0) or the
// last event stored at or before a time.
type Point struct {
	Version uint64
	Time    time.Time
}

// ParsePoint reads a version ("42") or an RFC 3339 time.
func ParsePoint(s string) (Point, error) {
	if v, err := strconv.ParseUint(s, 10, 64); err == nil && v > 0 {
		return Point{Version: v}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Point{}, fmt.Errorf("%q is neither a version (a positive number) nor an RFC 3339 time", s)
	}
	return Point{Time: t}, nil
}

func (p Point) String() string {
	if p.Version > 0 {
		return "version " + strconv.FormatUint(p.Version, 10)
	}
	return p.Time.UTC().Format(time.RFC3339Nano)
}

// includes reports whether the event belongs to the history up to p.
func (p Point) includes(ev profileledger.Event) bool {
	if p.Version > 0 {
		return ev.Seq <= p.Version
	}
	return !ev.Stored.After(p.Time)
}

// Change is one changed path of a Diff: its value before and after (nil:
// absent).
type Change struct {
	Path   string          `json:"path"`
	Op     string          `json:"op"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// DiffResult is what changed in a profile between two points.
type DiffResult struct {
	Key string `json:"key"`
	// FromVersion and ToVersion are the versions the points resolved to.
	FromVersion uint64 `json:"from_version"`
	ToVersion   uint64 `json:"to_version"`
	// Ops turn the data at FromVersion into the data at ToVersion.
	Ops []ledger.Op `json:"ops"`
	// Changes are the same, as before and after values per path.
	Changes []Change `json:"changes"`
}

// Diff returns what changed in the profile's data between points a and b
// (b may be before a: the diff then undoes). Errors: ErrNoSuchPoint, and
// those of History.
func Diff(ctx context.Context, src Source, key string, a, b Point) (DiffResult, error) {
	docs, vers, err := docsAt(ctx, src, key, a, b)
	if err != nil {
		return DiffResult{}, err
	}
	return diffDocs(key, vers[0], vers[1], docs[0], docs[1]), nil
}

func diffDocs(key string, va, vb uint64, da, db any) DiffResult {
	r := DiffResult{Key: key, FromVersion: va, ToVersion: vb, Ops: projector.Diff(da, db)}
	if r.Ops == nil {
		r.Ops = []ledger.Op{}
	}
	r.Changes = make([]Change, len(r.Ops))
	for i, o := range r.Ops {
		bv, bok := lookup(da, o.Path)
		av, aok := lookup(db, o.Path)
		r.Changes[i] = Change{Path: o.Path, Op: o.Op, Before: raw(bv, bok), After: raw(av, aok)}
	}
	return r
}

// docsAt replays the profile once and returns its documents and versions
// at each point.
func docsAt(ctx context.Context, src Source, key string, points ...Point) ([]any, []uint64, error) {
	docs := make([]any, len(points))
	vers := make([]uint64, len(points))
	var last uint64
	err := Replay(ctx, src, key, func(s Step) error {
		last = s.Event.Seq
		for i, p := range points {
			if p.includes(s.Event) {
				docs[i], vers[i] = s.After, s.Event.Seq
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for i, p := range points {
		switch {
		case vers[i] == 0:
			return nil, nil, fmt.Errorf("%w: profile %q has no event at or before %s", ErrNoSuchPoint, key, p)
		case p.Version > last:
			return nil, nil, fmt.Errorf("%w: profile %q is at version %d, before %s", ErrNoSuchPoint, key, last, p)
		}
	}
	return docs, vers, nil
}
