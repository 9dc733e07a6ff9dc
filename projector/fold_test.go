package projector_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

func TestFoldAppliesEventsInOrder(t *testing.T) {
	events := []ledger.Event{
		{Seq: 1, ID: "e1", Ops: parseOps(t, `[{"op":"replace","path":"","value":{"coins":0,"bag":[]}}]`)},
		{Seq: 2, ID: "e2"}, // no ops: a session marker
		{Seq: 3, ID: "e3", Ops: parseOps(t, `[{"op":"inc","path":"/coins","value":10},{"op":"add","path":"/bag/-","value":"sword"}]`)},
		{Seq: 4, ID: "e4", Ops: parseOps(t, `[{"op":"inc","path":"/coins","value":-3}]`)},
	}
	got, err := projector.Fold(nil, events)
	if err != nil {
		t.Fatal(err)
	}
	if s := mustEncode(t, got); s != `{"bag":["sword"],"coins":7}` {
		t.Errorf("got %s", s)
	}
}

func TestFoldStopsAtTheFirstBadEvent(t *testing.T) {
	events := []ledger.Event{
		{Seq: 5, ID: "e5", Ops: parseOps(t, `[{"op":"add","path":"","value":{"coins":1}}]`)},
		{Seq: 6, ID: "e6", Ops: parseOps(t, `[{"op":"inc","path":"/coins","value":1},{"op":"inc","path":"/gems","value":1}]`)},
		{Seq: 7, ID: "e7", Ops: parseOps(t, `[{"op":"inc","path":"/coins","value":1}]`)},
	}
	got, err := projector.Fold(nil, events)
	var foldErr *projector.FoldError
	if !errors.As(err, &foldErr) {
		t.Fatalf("got error %v (%T), want a *FoldError", err, err)
	}
	if foldErr.Seq != 6 || foldErr.ID != "e6" {
		t.Errorf("FoldError names event %d %q, want 6 \"e6\"", foldErr.Seq, foldErr.ID)
	}
	var opErr *projector.OpError
	if !errors.As(err, &opErr) || opErr.Index != 1 || !errors.Is(err, projector.ErrPathNotFound) {
		t.Errorf("FoldError does not wrap the OpError of op 1: %v", err)
	}
	if s := mustEncode(t, got); s != `{"coins":1}` {
		t.Errorf("got %s, want the document after event 5", s)
	}
	want := "projector: event 6 (id e6): projector: op 1 (inc /gems): projector: path not found: no value at /gems"
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
}

func TestFoldOfNoEventsIsTheStart(t *testing.T) {
	got, err := projector.Fold(nil, nil)
	if got != nil || err != nil {
		t.Errorf("Fold(nil, nil) = %v, %v", got, err)
	}
}

func TestFoldIsDeterministic(t *testing.T) {
	for seed := range uint64(100) {
		events := newGen(seed).events(t, 30)
		first, err := projector.Fold(nil, events)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		second, err := projector.Fold(nil, events)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !reflect.DeepEqual(first, second) || mustEncode(t, first) != mustEncode(t, second) {
			t.Fatalf("seed %d: two folds differ:\n%s\n%s", seed, mustEncode(t, first), mustEncode(t, second))
		}
	}
}

func TestFoldCanResumeFromAnyVersion(t *testing.T) {
	for seed := range uint64(100) {
		g := newGen(seed)
		events := g.events(t, 30)
		k := g.r.IntN(len(events) + 1)
		whole, err := projector.Fold(nil, events)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		snapshot, err := projector.Fold(nil, events[:k])
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		before := deepCopy(snapshot)
		resumed, err := projector.Fold(snapshot, events[k:])
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !projector.Equal(resumed, whole) {
			t.Fatalf("seed %d, k %d: resumed %s, whole %s", seed, k, mustEncode(t, resumed), mustEncode(t, whole))
		}
		assertUnchanged(t, before, snapshot)
	}
}
