package audit_test

import (
	"errors"
	"testing"

	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/ledger"
)

func ev(seq uint64, id, typ, session string, epoch uint64) ledger.Record {
	return ledger.Record{Seq: seq, Event: ledger.Event{V: 1, ID: id, Type: typ, Session: session, Epoch: epoch, Seq: seq}}
}

const (
	started = ledger.TypeSessionStarted
	ended   = ledger.TypeSessionEnded
)

func TestCheck(t *testing.T) {
	good := []ledger.Record{
		ev(1, "a", started, "s1", 1), ev(2, "b", "coin", "s1", 1), ev(3, "c", ended, "s1", 1),
		ev(5, "d", started, "s2", 2), ev(6, "e", "coin", "s2", 2),
		ev(9, "f", started, "s3", 3), // steal: no end of s2
	}
	cases := []struct {
		name string
		recs []ledger.Record
		want []audit.Rule
	}{
		{"a clean log", good, nil},
		{"a duplicated event id", append(append([]ledger.Record{}, good...), ev(10, "b", "coin", "s3", 3)), []audit.Rule{audit.RuleUniqueID}},
		{"a zombie write after a newer fence", append(append([]ledger.Record{}, good...), ev(10, "z", "coin", "s2", 2)), []audit.Rule{audit.RuleEpochOrder}},
		{"an epoch that does not open with session.started", []ledger.Record{ev(1, "a", "coin", "s1", 1)}, []audit.Rule{audit.RuleFenceFirst}},
		{"two sessions in one epoch", []ledger.Record{ev(1, "a", started, "s1", 1), ev(2, "b", "coin", "s9", 1)}, []audit.Rule{audit.RuleOneSession}},
		{"a write after session.ended", []ledger.Record{ev(1, "a", started, "s1", 1), ev(2, "b", ended, "s1", 1), ev(3, "c", "coin", "s1", 1)}, []audit.Rule{audit.RuleEndedIsLast}},
		{"a second fence in one epoch", []ledger.Record{ev(1, "a", started, "s1", 1), ev(2, "b", started, "s1", 1)}, []audit.Rule{audit.RuleFenceFirst}},
		{"garbage", []ledger.Record{{Seq: 4, Err: errors.New("not an event envelope")}}, []audit.Rule{audit.RuleNotAnEvent}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := audit.Check("k", c.recs)
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want rules %v", got, c.want)
			}
			for i, v := range got {
				if v.Rule != c.want[i] || v.Key != "k" || v.Seq == 0 {
					t.Errorf("violation %d = %+v, want rule %s", i, v, c.want[i])
				}
			}
		})
	}
}

// handled is a pl.message event handling inbox message msg (Meta
// pl.msg.seq, "" for none).
func handled(seq uint64, id, session string, epoch uint64, msg string) ledger.Record {
	r := ev(seq, id, ledger.TypeMessage, session, epoch)
	r.Event.Meta = map[string]string{ledger.MetaMsgID: "m-" + msg}
	if msg != "" {
		r.Event.Meta[ledger.MetaMsgSeq] = msg
	}
	return r
}

func TestCheckErasureAndMessages(t *testing.T) {
	erased := ledger.TypeErased
	cases := []struct {
		name string
		recs []ledger.Record
		want []audit.Rule
	}{
		{"a log that starts with an erasure's tombstone", []ledger.Record{
			ev(7, "t", erased, "s3", 3), ev(8, "a", started, "s4", 4), ev(9, "b", "coin", "s4", 4),
		}, nil},
		{"an erasure that did not remove the log before it", []ledger.Record{
			ev(1, "a", started, "s1", 1), ev(2, "b", "coin", "s1", 1), ev(3, "c", started, "s2", 2), ev(4, "t", erased, "s2", 2), ev(5, "d", started, "s3", 3),
		}, nil},
		{"a tombstone opening an epoch anywhere but first", []ledger.Record{
			ev(1, "a", started, "s1", 1), ev(4, "t", erased, "s2", 2),
		}, []audit.Rule{audit.RuleFenceFirst}},
		{"a write after the tombstone in its epoch", []ledger.Record{
			ev(7, "t", erased, "s3", 3), ev(8, "a", "coin", "s3", 3),
		}, []audit.Rule{audit.RuleEndedIsLast}},
		{"messages handled once, in inbox order, across sessions", []ledger.Record{
			ev(1, "a", started, "s1", 1), handled(5, "b", "s1", 1, "2"), handled(9, "c", "s1", 1, "3"),
			ev(10, "d", started, "s2", 2), handled(12, "e", "s2", 2, "11"),
		}, nil},
		{"a message handled twice", []ledger.Record{
			ev(1, "a", started, "s1", 1), handled(5, "b", "s1", 1, "2"), ev(10, "d", started, "s2", 2), handled(12, "e", "s2", 2, "2"),
		}, []audit.Rule{audit.RuleMessageOnce}},
		{"messages handled out of inbox order", []ledger.Record{
			ev(1, "a", started, "s1", 1), handled(5, "b", "s1", 1, "3"), handled(6, "c", "s1", 1, "2"),
		}, []audit.Rule{audit.RuleMessageOnce}},
		{"a handled message that names no inbox message", []ledger.Record{
			ev(1, "a", started, "s1", 1), handled(5, "b", "s1", 1, ""), handled(6, "c", "s1", 1, "0"),
		}, []audit.Rule{audit.RuleMessageOnce, audit.RuleMessageOnce}},
		{"a zombie's handling is no handling (only its epoch is reported)", []ledger.Record{
			ev(1, "a", started, "s1", 1), handled(5, "b", "s1", 1, "2"), ev(10, "d", started, "s2", 2), handled(12, "e", "s1", 1, "2"),
		}, []audit.Rule{audit.RuleEpochOrder}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := audit.Check("k", c.recs)
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want rules %v", got, c.want)
			}
			for i, v := range got {
				if v.Rule != c.want[i] || v.Key != "k" || v.Seq == 0 {
					t.Errorf("violation %d = %+v, want rule %s", i, v, c.want[i])
				}
			}
		})
	}
}
