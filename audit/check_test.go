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
