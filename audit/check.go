package audit

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	"github.com/profileledger/profileledger/ledger"
)

// Rule names one invariant.
type Rule string

// The rules Check enforces.
const (
	// RuleUniqueID: every event id appears once in the log.
	RuleUniqueID Rule = "unique-event-id"
	// RuleEpochOrder: epochs never decrease along the log.
	RuleEpochOrder Rule = "epochs-never-decrease"
	// RuleFenceFirst: each epoch opens with its session's session.started,
	// and has one. The one exception is the log's first message when it is
	// an erasure's tombstone (pl.erased): Store.Erase removes every event
	// before its tombstone, its own session.started included.
	RuleFenceFirst Rule = "epoch-opens-with-session-started"
	// RuleOneSession: one session writes each epoch.
	RuleOneSession Rule = "one-session-per-epoch"
	// RuleNotAnEvent: every message on a profile's subject is an event.
	RuleNotAnEvent Rule = "message-is-an-event"
	// RuleEndedIsLast: nothing of a session follows its session.ended, or
	// its pl.erased tombstone (an erasing session appends nothing after it).
	RuleEndedIsLast Rule = "nothing-after-session-ended"
	// RuleMessageOnce: an inbox message is handled at most once. Among the
	// events a load folds (not those a newer epoch or another session's
	// claim to the epoch passes over), every pl.message event names an inbox
	// message by its stream sequence (Meta pl.msg.seq, a positive integer),
	// and those sequences strictly increase along the log: a sequence seen
	// before is a message handled twice, a lower one a message handled out
	// of inbox order (or again, after its first handling was removed).
	RuleMessageOnce Rule = "message-handled-once"
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

// Check returns every violation in one profile's records, in log order:
// RuleNotAnEvent, RuleUniqueID, RuleEpochOrder, RuleFenceFirst,
// RuleOneSession, RuleEndedIsLast, RuleMessageOnce and RuleChain (which
// wants the records of the whole subject, as Store reads them). Messages that are
// not events are reported too (RuleNotAnEvent): a load skips them, but an
// auditor should see them.
func Check(key string, recs []ledger.Record) []Violation {
	var out []Violation
	add := func(seq uint64, r Rule, format string, args ...any) {
		out = append(out, Violation{Key: key, Seq: seq, Rule: r, Detail: fmt.Sprintf(format, args...)})
	}
	ids := map[string]uint64{}
	var epoch uint64
	var session string
	ended := false
	var handled handledMessages
	for i, r := range recs {
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
			if ev.Type != ledger.TypeSessionStarted && !(i == 0 && ev.Type == ledger.TypeErased) {
				add(r.Seq, RuleFenceFirst, "epoch %d begins with %q", ev.Epoch, ev.Type)
			}
			epoch, session, ended = ev.Epoch, ev.Session, false
		case ev.Session != session:
			add(r.Seq, RuleOneSession, "epoch %d written by session %s and session %s", epoch, session, ev.Session)
			continue // a load passes over it
		case ended:
			add(r.Seq, RuleEndedIsLast, "%q by session %s after it ended", ev.Type, ev.Session)
		case ev.Type == ledger.TypeSessionStarted:
			add(r.Seq, RuleFenceFirst, "second session.started in epoch %d", epoch)
		}
		if ev.Type == ledger.TypeSessionEnded || ev.Type == ledger.TypeErased {
			ended = true
		}
		if ev.Type == ledger.TypeMessage {
			if detail := handled.take(r.Seq, ev); detail != "" {
				add(r.Seq, RuleMessageOnce, "%s", detail)
			}
		}
	}
	out = append(out, checkChain(key, recs)...)
	slices.SortStableFunc(out, func(a, b Violation) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// handledMessages follows the pl.message events of one log for
// RuleMessageOnce.
type handledMessages struct {
	last    uint64            // the highest inbox sequence handled so far
	lastAt  uint64            // the log sequence of its event
	handled map[uint64]uint64 // inbox sequence -> log sequence of its event
}

// take checks the pl.message event ev at log sequence seq and returns what
// is wrong with it ("" if nothing).
func (h *handledMessages) take(seq uint64, ev ledger.Event) string {
	n, ok := msgSeq(ev)
	if !ok {
		return fmt.Sprintf("event %s names no inbox message (%s %q)", ev.ID, ledger.MetaMsgSeq, ev.Meta[ledger.MetaMsgSeq])
	}
	if h.handled == nil {
		h.handled = map[uint64]uint64{}
	}
	defer func() { h.handled[n] = seq }()
	if at, twice := h.handled[n]; twice {
		return fmt.Sprintf("inbox message %d (id %q) handled again: also by the event at seq %d", n, ev.Meta[ledger.MetaMsgID], at)
	}
	if n < h.last {
		return fmt.Sprintf("inbox message %d (id %q) handled after message %d (at seq %d): not in inbox order", n, ev.Meta[ledger.MetaMsgID], h.last, h.lastAt)
	}
	h.last, h.lastAt = n, seq
	return ""
}

// msgSeq returns the inbox sequence a pl.message event names.
func msgSeq(ev ledger.Event) (uint64, bool) {
	n, err := strconv.ParseUint(ev.Meta[ledger.MetaMsgSeq], 10, 64)
	return n, err == nil && n > 0
}
