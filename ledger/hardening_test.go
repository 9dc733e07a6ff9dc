package ledger_test

import (
	"errors"
	"testing"

	"github.com/profileledger/profileledger/ledger"
)

// TestAMessageIDNamesOneContent: a message of [e1,e2] and one of [e1,e2,e3]
// must not share an id, or a retry that regrouped the events would be
// taken for the landed message (issue 9, defect 2).
func TestAMessageIDNamesOneContent(t *testing.T) {
	e1, e2, e3 := event(1, "a"), event(1, "b"), event(1, "c")
	ids := map[string][]ledger.Event{}
	for _, g := range [][]ledger.Event{{e1}, {e1, e2}, {e1, e2, e3}, {e1, e3}, {e2, e3}} {
		id := ledger.MessageID(g)
		if prev, ok := ids[id]; ok {
			t.Fatalf("%d and %d events share the message id %q", len(prev), len(g), id)
		}
		ids[id] = g
		if again := ledger.MessageID(append([]ledger.Event(nil), g...)); again != id {
			t.Fatalf("the same content got two ids: %q, %q", id, again)
		}
	}
	if ledger.MessageID([]ledger.Event{e1}) != e1.ID {
		t.Fatal("a single event's message id is not the event's id")
	}
}

// TestARegroupedRetryIsNotTakenForTheLandedMessage: [e1,e2] landed; a writer
// that (wrongly) sends [e1,e2,e3] at the same fence must not be told it
// landed.
func TestARegroupedRetryIsNotTakenForTheLandedMessage(t *testing.T) {
	l, _ := newLog(t)
	c := ctx(t)
	first, err := l.Append(c, subj, ledger.Head{}, event(1, ledger.TypeSessionStarted))
	if err != nil {
		t.Fatal(err)
	}
	e1, e2, e3 := event(1, "a"), event(1, "b"), event(1, "c")
	if _, err := l.Append(c, subj, first, e1, e2); err != nil {
		t.Fatal(err)
	}
	_, err = l.Append(c, subj, first, e1, e2, e3)
	if !errors.Is(err, ledger.ErrStale) {
		t.Fatalf("regrouped retry = %v, want ErrStale (e3 is not in the log)", err)
	}
	for _, r := range read(t, l, subj) {
		if r.Event.ID == e3.ID {
			t.Fatal("e3 landed")
		}
	}
}

// TestAnAppendBeyondTheEndOfTheLogIsADefiniteRejection: a fence past the
// subject's last sequence (the stream was deleted or restored) is a known
// outcome, ErrRewound, at once: never "outcome unknown".
func TestAnAppendBeyondTheEndOfTheLogIsADefiniteRejection(t *testing.T) {
	l, _ := newLog(t)
	c := ctx(t)
	last, err := l.Append(c, subj, ledger.Head{}, event(1, ledger.TypeSessionStarted))
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Append(c, subj, ledger.Head{Seq: last.Seq + 40}, event(1, "late"))
	var conflict *ledger.ConflictError
	if !errors.Is(err, ledger.ErrRewound) || !errors.As(err, &conflict) || conflict.Last != last.Seq {
		t.Fatalf("append at a fence past the end = %v, want ErrRewound naming the last sequence %d", err, last)
	}
	if errors.Is(err, ledger.ErrUncertain) {
		t.Fatal("a definite rejection reported as uncertain")
	}
}

// TestAReadInFlightAtCloseDoesNotPoolItsSubscription: a read that finishes
// after Log.Close unsubscribes instead of putting its inbox into the closed
// pool, where nothing would ever unsubscribe it.
func TestAReadInFlightAtCloseDoesNotPoolItsSubscription(t *testing.T) {
	l, _ := newLog(t)
	subscribed, pooled, err := ledger.PoolAfterClose(l)
	if err != nil {
		t.Fatal(err)
	}
	if subscribed || pooled != 0 {
		t.Fatalf("after Close a returned read left subscribed=%v, %d pooled", subscribed, pooled)
	}
}
