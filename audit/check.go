package audit

import (
	"fmt"

	"github.com/profileledger/profileledger/ledger"
)

// Rule names one invariant.
type Rule string

// The rules Check enforces.
const (
	RuleUniqueID    Rule = "unique-event-id"
	RuleEpochOrder  Rule = "epochs-never-decrease"
	RuleFenceFirst  Rule = "epoch-opens-with-session-started"
	RuleOneSession  Rule = "one-session-per-epoch"
	RuleNotAnEvent  Rule = "message-is-an-event"
	RuleEndedIsLast Rule = "nothing-after-session-ended"
)

// Violation is one broken invariant at one sequence.
type Violation struct {
	Key    string `json:"key"`
	Seq    uint64 `json:"seq"`
	Rule   Rule   `json:"rule"`
	Detail string `json:"detail"`
}

func (v Violation) String() string {
	return fmt.Sprintf("profile %q seq %d: %s: %s", v.Key, v.Seq, v.Rule, v.Detail)
}

// Check returns every violation in one profile's records, in log order.
// Messages that are not events are reported too (RuleNotAnEvent): a load
// skips them, but an auditor should see them.
func Check(key string, recs []ledger.Record) []Violation {
	var out []Violation
	add := func(seq uint64, r Rule, format string, args ...any) {
		out = append(out, Violation{Key: key, Seq: seq, Rule: r, Detail: fmt.Sprintf(format, args...)})
	}
	ids := map[string]uint64{}
	var epoch uint64
	var session string
	ended := false
	for _, r := range recs {
		if r.Err != nil {
			add(r.Seq, RuleNotAnEvent, "%v", r.Err)
			continue
		}
		ev := r.Event
		if prev, dup := ids[ev.ID]; dup {
			add(r.Seq, RuleUniqueID, "event id %s is also at seq %d", ev.ID, prev)
		}
		ids[ev.ID] = r.Seq
		switch {
		case ev.Epoch < epoch:
			add(r.Seq, RuleEpochOrder, "epoch %d (session %s) after epoch %d began", ev.Epoch, ev.Session, epoch)
			continue
		case ev.Epoch > epoch:
			if ev.Type != ledger.TypeSessionStarted {
				add(r.Seq, RuleFenceFirst, "epoch %d begins with %q", ev.Epoch, ev.Type)
			}
			epoch, session, ended = ev.Epoch, ev.Session, false
		case ev.Session != session:
			add(r.Seq, RuleOneSession, "epoch %d written by session %s and session %s", epoch, session, ev.Session)
		case ended:
			add(r.Seq, RuleEndedIsLast, "%q by session %s after it ended", ev.Type, ev.Session)
		case ev.Type == ledger.TypeSessionStarted:
			add(r.Seq, RuleFenceFirst, "second session.started in epoch %d", epoch)
		}
		if ev.Type == ledger.TypeSessionEnded {
			ended = true
		}
	}
	return out
}
