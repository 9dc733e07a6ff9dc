package investigate

import (
	"context"
	"encoding/json"
	"time"

	"github.com/profileledger/profileledger/projector"
)

// Cause is the event behind a change: when, what, who and how.
type Cause struct {
	Seq     uint64            `json:"seq"`
	Index   int               `json:"index,omitempty"`
	EventID string            `json:"event_id"`
	Type    string            `json:"type"`
	Session string            `json:"session"`
	Epoch   uint64            `json:"epoch"`
	Time    time.Time         `json:"time"`
	Stored  time.Time         `json:"stored"`
	Meta    map[string]string `json:"meta,omitempty"`
	How     string            `json:"how"`
	// Suspect is Step.Suspect: why the event is not what profileledger
	// writes ("" for a regular event).
	Suspect string `json:"suspect,omitempty"`
}

func causeOf(s Step) Cause {
	ev := s.Event
	return Cause{Seq: ev.Seq, Index: ev.Index, EventID: ev.ID, Type: ev.Type, Session: ev.Session, Epoch: ev.Epoch,
		Time: ev.Time, Stored: ev.Stored, Meta: ev.Meta, How: How(ev), Suspect: s.Suspect}
}

// BlameChange is one event that changed the blamed path.
type BlameChange struct {
	Cause
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// ElementBlame is one element of the array at the blamed path now, with
// the event that put it there.
type ElementBlame struct {
	Index int             `json:"index"`
	Value json.RawMessage `json:"value"`
	Cause
}

// BlameResult is a path's history in one profile.
type BlameResult struct {
	Key  string `json:"key"`
	Path string `json:"path"`
	// Changes are the events that changed the value at Path, oldest first.
	Changes []BlameChange `json:"changes"`
	// Elements are set when the value at Path is an array now: each
	// element, with the event that last added it (an element equal to
	// one that was there before keeps its cause when others move).
	Elements []ElementBlame `json:"elements,omitempty"`
}

// Blame returns every event that changed the value at the JSON pointer
// path in the profile's data, with the value before and after; for an
// array, also the cause of each element.
func Blame(ctx context.Context, src Source, key, path string) (BlameResult, error) {
	res := BlameResult{Key: key, Path: path, Changes: []BlameChange{}}
	type held struct {
		enc   string
		cause Cause
	}
	var elems []held
	err := Replay(ctx, src, key, func(s Step) error {
		if s.Skipped != nil {
			return nil
		}
		bv, bok := lookup(s.Before, path)
		av, aok := lookup(s.After, path)
		if bok == aok && (!bok || projector.Equal(bv, av)) {
			return nil
		}
		c := causeOf(s)
		res.Changes = append(res.Changes, BlameChange{Cause: c, Before: raw(bv, bok), After: raw(av, aok)})
		arr, _ := av.([]any)
		// Each element of the new array keeps the cause of an equal,
		// unclaimed element of the old one, or gets this event's.
		pool := map[string][]Cause{}
		for _, e := range elems {
			pool[e.enc] = append(pool[e.enc], e.cause)
		}
		next := make([]held, len(arr))
		for i, v := range arr {
			enc := string(raw(v, true))
			if cs := pool[enc]; len(cs) > 0 {
				next[i], pool[enc] = held{enc, cs[0]}, cs[1:]
			} else {
				next[i] = held{enc, c}
			}
		}
		elems = next
		return nil
	})
	if err != nil {
		return BlameResult{}, err
	}
	for i, e := range elems {
		res.Elements = append(res.Elements, ElementBlame{Index: i, Value: json.RawMessage(e.enc), Cause: e.cause})
	}
	return res, nil
}
