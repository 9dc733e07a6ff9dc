package investigate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/profileledger/profileledger"
)

// ErrNoSuchEvent means a profile has no event at the sequence and index
// asked for.
var ErrNoSuchEvent = errors.New("investigate: no such event")

// errFound stops a replay once it has what it looked for.
var errFound = errors.New("found")

// EventDetail is one event with what it did to the profile's data.
type EventDetail struct {
	Entry
	// Skipped says why the fold did not apply the event ("" if it did),
	// and Suspect why an applied event is not what profileledger writes.
	Skipped string `json:"skipped,omitempty"`
	Suspect string `json:"suspect,omitempty"`
	// Before and After are the profile's whole data before and after the
	// event (null before the first event, or after an erasure).
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
	// Changes are what changed, path by path.
	Changes []Change `json:"changes"`
}

// EventAt returns the profile's event at sequence seq and index index
// (events of a group commit share a sequence), with the data before and
// after it. It replays the log up to seq. Errors: ErrNoSuchEvent, and
// those of History.
func EventAt(ctx context.Context, src Source, key string, seq uint64, index int) (EventDetail, error) {
	var d EventDetail
	err := Replay(ctx, src, key, func(s Step) error {
		if s.Event.Seq != seq || s.Event.Index != index {
			return nil
		}
		d.Entry = Entry{Event: s.Event, Summary: SummarizeOps(s.Event.Ops), How: How(s.Event)}
		if s.Skipped != nil {
			d.Skipped = s.Skipped.Error()
			if s.Event.ID == "" { // a message that is not an event
				d.Bad, d.How = s.Skipped.Error(), "not an event"
			}
		}
		d.Suspect = s.Suspect
		r := diffDocs(key, 0, 0, s.Before, s.After)
		d.Changes = r.Changes
		d.Before, d.After = rawDoc(s.Before), rawDoc(s.After)
		return errFound
	}, profileledger.ToVersion(seq))
	switch {
	case errors.Is(err, errFound):
		return d, nil
	case err != nil:
		return EventDetail{}, err
	}
	return EventDetail{}, fmt.Errorf("%w: profile %q has no event at sequence %d index %d", ErrNoSuchEvent, key, seq, index)
}

// State is a profile's data at a point of its history.
type State struct {
	Key string `json:"key"`
	// Version is the sequence of the last event folded, and Stored when
	// the server stored it.
	Version uint64    `json:"version"`
	Stored  time.Time `json:"stored"`
	// Data is the data then (null if the profile was erased then).
	Data json.RawMessage `json:"data"`
}

// StateAt returns the profile's data as of point p: after the last event
// at or before it. It replays the log up to p. Errors: ErrNoSuchPoint,
// and those of History.
func StateAt(ctx context.Context, src Source, key string, p Point) (State, error) {
	st := State{Key: key}
	var doc any
	opts := []profileledger.HistoryOption{}
	if p.Version > 0 {
		opts = append(opts, profileledger.ToVersion(p.Version))
	} else {
		opts = append(opts, profileledger.Until(p.Time))
	}
	err := Replay(ctx, src, key, func(s Step) error {
		if p.includes(s.Event) {
			doc, st.Version, st.Stored = s.After, s.Event.Seq, s.Event.Stored
		}
		return nil
	}, opts...)
	if err != nil {
		return State{}, err
	}
	if st.Version == 0 {
		return State{}, fmt.Errorf("%w: profile %q has no event at or before %s", ErrNoSuchPoint, key, p)
	}
	st.Data = rawDoc(doc)
	return st, nil
}

// rawDoc encodes a whole document, null for none.
func rawDoc(doc any) json.RawMessage {
	if doc == nil {
		return json.RawMessage("null")
	}
	return raw(doc, true)
}
