package audit_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
	"github.com/profileledger/profileledger/snapshots"
)

// profileLog builds one profile's records message by message, with gaps in
// the sequences as other profiles' messages leave them in a shared stream.
type profileLog struct {
	recs []ledger.Record
	seq  uint64
	n    int // events so far, for ids
}

// msg appends one message holding events of session s at epoch e, each
// with the given ops lists, and returns its sequence.
func (l *profileLog) msg(s string, e uint64, typ string, opsList ...[]ledger.Op) uint64 {
	l.seq += 3
	if len(opsList) == 0 {
		opsList = [][]ledger.Op{nil}
	}
	for i, ops := range opsList {
		l.n++
		ev := ledger.Event{V: 1, ID: fmt.Sprintf("id-%d", l.n), Type: typ, Session: s, Epoch: e, Ops: ops, Seq: l.seq}
		l.recs = append(l.recs, ledger.Record{Seq: l.seq, Index: i, Event: ev})
	}
	return l.seq
}

func (l *profileLog) garbage() uint64 {
	l.seq += 3
	l.recs = append(l.recs, ledger.Record{Seq: l.seq, Err: errors.New("not an event envelope")})
	return l.seq
}

func op(o, path, value string) ledger.Op {
	var v json.RawMessage
	if value != "" {
		v = json.RawMessage(value)
	}
	return ledger.Op{Op: o, Path: path, Value: v}
}

func ops(o ...ledger.Op) []ledger.Op { return o }

func snap(t testing.TB, rev uint64, key string, version, epoch uint64, state string) audit.StoredSnapshot {
	t.Helper()
	data, err := snapshots.Encode(snapshots.Snapshot{Key: key, Version: version, Epoch: epoch, State: json.RawMessage(state)})
	if err != nil {
		t.Fatal(err)
	}
	return audit.StoredSnapshot{Revision: rev, Data: data}
}

// sampleLog is a clean profile: two sessions, a group commit, a hand-over.
// It returns the log and the state after each message.
func sampleLog() (*profileLog, map[uint64]string) {
	l := &profileLog{}
	st := map[uint64]string{}
	st[l.msg("s1", 1, started, ops(op("replace", "", `{"coins":100,"items":[]}`)))] = `{"coins":100,"items":[]}`
	st[l.msg("s1", 1, "coin", ops(op("inc", "/coins", "5")))] = `{"coins":105,"items":[]}`
	st[l.msg("s1", 1, "loot", ops(op("add", "/items/-", `"sword"`)), ops(op("inc", "/coins", "-10")))] = `{"coins":95,"items":["sword"]}`
	st[l.msg("s1", 1, ended)] = `{"coins":95,"items":["sword"]}`
	st[l.msg("s2", 2, started)] = `{"coins":95,"items":["sword"]}`
	st[l.msg("s2", 2, "coin", ops(op("inc", "/coins", "1")))] = `{"coins":96,"items":["sword"]}`
	return l, st
}

func TestCheckProfileOfACleanProfile(t *testing.T) {
	l, states := sampleLog()
	var snaps []audit.StoredSnapshot
	rev := uint64(1)
	for seq, state := range states {
		epoch := uint64(1)
		if seq >= 15 {
			epoch = 2
		}
		snaps = append(snaps, snap(t, rev, "k", seq, epoch, state))
		rev++
	}
	// Between two messages: the fold up to the earlier one.
	snaps = append(snaps, snap(t, rev, "k", 7, 1, `{"coins":105,"items":[]}`))
	// Equal as JSON values, not byte for byte.
	snaps = append(snaps, snap(t, rev+1, "k", 18, 2, `{ "items":["sword"], "coins":96.0 }`))
	if got := audit.CheckProfile("k", l.recs, snaps); len(got) != 0 {
		t.Fatalf("violations in a clean profile: %v", got)
	}
	if got := audit.CheckProfile("k", nil, nil); len(got) != 0 {
		t.Fatalf("violations in an empty profile: %v", got)
	}
}

func TestCheckProfileFindsEachViolation(t *testing.T) {
	type want struct {
		rule audit.Rule
		seq  uint64
	}
	corrupt := func(s audit.StoredSnapshot) audit.StoredSnapshot {
		s.Data = append([]byte(nil), s.Data...)
		s.Data[len(s.Data)-3] ^= 0x01 // in the state: the checksum no longer holds
		return s
	}
	cases := []struct {
		name  string
		build func(l *profileLog) []audit.StoredSnapshot
		want  []want
	}{
		{"a snapshot that differs from the fold", func(l *profileLog) []audit.StoredSnapshot {
			return []audit.StoredSnapshot{snap(t, 7, "k", 6, 1, `{"coins":999,"items":[]}`)}
		}, []want{{audit.RuleSnapshotFold, 6}}},
		{"a snapshot with the wrong epoch", func(l *profileLog) []audit.StoredSnapshot {
			return []audit.StoredSnapshot{snap(t, 7, "k", 6, 2, `{"coins":105,"items":[]}`)}
		}, []want{{audit.RuleSnapshotEpoch, 6}}},
		{"a corrupt snapshot names the version it claims", func(l *profileLog) []audit.StoredSnapshot {
			return []audit.StoredSnapshot{corrupt(snap(t, 7, "k", 6, 1, `{"coins":105,"items":[]}`))}
		}, []want{{audit.RuleSnapshotIntact, 6}}},
		{"garbage in the bucket", func(l *profileLog) []audit.StoredSnapshot {
			return []audit.StoredSnapshot{{Revision: 7, Data: []byte("bit rot")}}
		}, []want{{audit.RuleSnapshotIntact, 0}}},
		{"another profile's snapshot", func(l *profileLog) []audit.StoredSnapshot {
			return []audit.StoredSnapshot{snap(t, 7, "other", 6, 1, `{"coins":105,"items":[]}`)}
		}, []want{{audit.RuleSnapshotKey, 6}}},
		{"a snapshot from the future", func(l *profileLog) []audit.StoredSnapshot {
			return []audit.StoredSnapshot{snap(t, 7, "k", 19, 2, `{"coins":96,"items":["sword"]}`)}
		}, []want{{audit.RuleSnapshotInFuture, 19}}},
		{"an event that does not fold, and a snapshot after it that rightly passed over it", func(l *profileLog) []audit.StoredSnapshot {
			l.msg("s2", 2, "bad", ops(op("inc", "/items", "1")))                                    // 21
			l.msg("s2", 2, "coin", ops(op("inc", "/coins", "1")))                                   // 24
			return []audit.StoredSnapshot{snap(t, 7, "k", 24, 2, `{"coins":97,"items":["sword"]}`)} // 96 + 1
		}, []want{{audit.RuleEventFolds, 21}}},
		{"a zombie write is no part of the fold", func(l *profileLog) []audit.StoredSnapshot {
			l.msg("s1", 1, "coin", ops(op("inc", "/coins", "1000")))                                // 21
			l.msg("s2", 2, "coin", ops(op("inc", "/coins", "1")))                                   // 24
			return []audit.StoredSnapshot{snap(t, 7, "k", 24, 2, `{"coins":97,"items":["sword"]}`)} // not 1097
		}, []want{{audit.RuleEpochOrder, 21}}},
		{"garbage in the log is no part of the fold", func(l *profileLog) []audit.StoredSnapshot {
			l.garbage() // 21
			return []audit.StoredSnapshot{snap(t, 7, "k", 21, 2, `{"coins":96,"items":["sword"]}`)}
		}, []want{{audit.RuleNotAnEvent, 21}}},
		{"several, in order of sequence", func(l *profileLog) []audit.StoredSnapshot {
			l.msg("s2", 2, "bad", ops(op("remove", "/nothing", ""))) // 21
			return []audit.StoredSnapshot{
				snap(t, 9, "k", 30, 2, `null`),
				snap(t, 8, "k", 3, 1, `{}`),
				{Revision: 7, Data: []byte("{}")},
			}
		}, []want{{audit.RuleSnapshotIntact, 0}, {audit.RuleSnapshotFold, 3}, {audit.RuleEventFolds, 21}, {audit.RuleSnapshotInFuture, 30}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, _ := sampleLog()
			snaps := c.build(l)
			got := audit.CheckProfile("k", l.recs, snaps)
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i, v := range got {
				if v.Rule != c.want[i].rule || v.Seq != c.want[i].seq || v.Key != "k" || v.Detail == "" {
					t.Errorf("violation %d = %+v, want rule %s at seq %d", i, v, c.want[i].rule, c.want[i].seq)
				}
			}
		})
	}
}

func TestCheckProfileSaysWhereASnapshotDiffers(t *testing.T) {
	l, _ := sampleLog()
	got := audit.CheckProfile("k", l.recs, []audit.StoredSnapshot{snap(t, 7, "k", 9, 1, `{"coins":999999,"items":["sword"]}`)})
	if len(got) != 1 || !strings.Contains(got[0].Detail, "replace /coins 999999") || !strings.Contains(got[0].Detail, "revision 7") {
		t.Fatalf("got %v", got)
	}
	if s := got[0].String(); !strings.HasPrefix(s, `profile "k" seq 9: snapshot-equals-fold: `) {
		t.Errorf("String() = %q", s)
	}
}

func TestCheckProfileDoesNotChangeItsInputs(t *testing.T) {
	l, _ := sampleLog()
	snaps := []audit.StoredSnapshot{snap(t, 2, "k", 9, 1, `{"coins":1}`), snap(t, 1, "k", 3, 1, `{"coins":100,"items":[]}`)}
	before, _ := json.Marshal([]any{l.recs, snaps})
	audit.CheckProfile("k", l.recs, snaps)
	after, _ := json.Marshal([]any{l.recs, snaps})
	if string(before) != string(after) {
		t.Fatal("CheckProfile changed its inputs")
	}
}

// FuzzCheckProfile builds a clean log and snapshots of it from the fuzz
// input and checks that CheckProfile finds nothing; then adds arbitrary
// bytes as one more stored snapshot, which may add at most one snapshot
// violation and must never make it panic.
func FuzzCheckProfile(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte("bit rot"))
	f.Add([]byte{0, 0, 0, 255, 17, 3, 128, 9, 9, 9, 64}, []byte("{\"format\":1,\"key\":\"k\",\"version\":3}\n{}"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, plan, extra []byte) {
		plan = plan[:min(len(plan), 1024)] // the work is quadratic in it
		l := &profileLog{}
		var doc any
		epoch := uint64(0)
		var snaps []audit.StoredSnapshot
		for i, b := range plan {
			var seq uint64
			switch {
			case b%8 == 0 || epoch == 0: // a new session
				epoch++
				o := ops(op("replace", "", `{"n":0,"l":[]}`))
				if epoch > 1 {
					o = nil
				}
				seq = l.msg(fmt.Sprintf("s%d", epoch), epoch, started, o)
				if o != nil {
					doc, _ = projector.Apply(doc, o)
				}
			case b%8 == 1:
				seq = l.garbage()
			case b%8 == 2: // group commit
				a, c := ops(op("inc", "/n", fmt.Sprint(int(b)))), ops(op("add", "/l/-", fmt.Sprint(i)))
				seq = l.msg(fmt.Sprintf("s%d", epoch), epoch, "two", a, c)
				doc, _ = projector.Apply(doc, append(a, c...))
			default:
				o := ops(op("inc", "/n", fmt.Sprint(int(b)-100)))
				seq = l.msg(fmt.Sprintf("s%d", epoch), epoch, "n", o)
				doc, _ = projector.Apply(doc, o)
			}
			if b%3 == 0 {
				state, err := projector.Encode(doc)
				if err != nil {
					t.Fatal(err)
				}
				snaps = append(snaps, snap(t, uint64(i+1), "k", seq, epoch, string(state)))
			}
		}
		base := audit.CheckProfile("k", l.recs, snaps)
		for _, v := range base {
			if v.Rule != audit.RuleNotAnEvent {
				t.Fatalf("violation in a clean log: %v", v)
			}
		}
		got := audit.CheckProfile("k", l.recs, append(slices.Clip(snaps), audit.StoredSnapshot{Revision: 999, Data: extra}))
		if len(got) < len(base) || len(got) > len(base)+1 {
			t.Fatalf("one more snapshot took %d violations to %d: %v", len(base), len(got), got)
		}
		for _, v := range got {
			if v.Rule != audit.RuleNotAnEvent && !strings.HasPrefix(string(v.Rule), "snapshot-") {
				t.Fatalf("an extra snapshot caused %v", v)
			}
		}
	})
}

// TestCheckProfileFoldsAnErasureFromNothing: the fold resets the document
// before a pl.erased tombstone, as a load does, so a snapshot taken after
// an erasure audits clean, and one that kept the erased data does not.
func TestCheckProfileFoldsAnErasureFromNothing(t *testing.T) {
	// An erasure that removed nothing yet (it was cut short), then a new
	// session: everything before the tombstone must be no part of the fold.
	l, _ := sampleLog()
	tomb := l.msg("s3", 3, started)          // 21
	tomb = l.msg("s3", 3, ledger.TypeErased) // 24
	fresh := l.msg("s4", 4, started, ops(op("replace", "", `{"coins":100,"items":[]}`)))
	cases := []struct {
		name  string
		snaps []audit.StoredSnapshot
		want  []audit.Rule
	}{
		{"snapshots of nothing and of the fresh profile", []audit.StoredSnapshot{
			snap(t, 1, "k", tomb, 3, `null`), snap(t, 2, "k", fresh, 4, `{"coins":100,"items":[]}`),
		}, nil},
		{"a snapshot that kept the erased data", []audit.StoredSnapshot{
			snap(t, 1, "k", tomb, 3, `{"coins":96,"items":["sword"]}`),
		}, []audit.Rule{audit.RuleSnapshotFold}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := audit.CheckProfile("k", l.recs, c.snaps)
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i, v := range got {
				if v.Rule != c.want[i] {
					t.Errorf("violation %d = %v, want rule %s", i, v, c.want[i])
				}
			}
		})
	}
	// The log as an erasure leaves it: the tombstone alone, then new sessions.
	after := []ledger.Record{l.recs[len(l.recs)-2], l.recs[len(l.recs)-1]}
	if got := audit.CheckProfile("k", after, []audit.StoredSnapshot{snap(t, 3, "k", fresh, 4, `{"coins":100,"items":[]}`)}); len(got) != 0 {
		t.Fatalf("a log that starts with a tombstone: %v", got)
	}
}

func TestCheckProfileWithInboxChecksEachHandledMessage(t *testing.T) {
	const inbox = "pl.s.msg.k"
	// msgs builds a log whose messages handle inbox sequences 10, 20 and
	// 30 at log sequences 31, 32 and 33 (ids m-10, m-20, m-30).
	msgs := func() []ledger.Record {
		recs := []ledger.Record{ev(1, "a", started, "s1", 1)}
		for i, n := range []string{"10", "20", "30"} {
			recs = append(recs, handled(uint64(31+i), "h"+n, "s1", 1, n))
		}
		return recs
	}
	cases := []struct {
		name  string
		recs  []ledger.Record
		found []audit.StreamMessage
		want  []uint64 // sequences of RuleMessageInInbox violations
	}{
		{"every handled message purged from the inbox", msgs(), nil, nil},
		{"some still in the inbox, with their ids", msgs(), []audit.StreamMessage{
			{Seq: 10, Subject: inbox, MessageID: "m-10"}, {Seq: 30, Subject: inbox, MessageID: "m-30"},
		}, nil},
		{"a handled sequence that is another subject's message", msgs(), []audit.StreamMessage{
			{Seq: 20, Subject: "pl.s.ev.k", MessageID: ""},
		}, []uint64{32}},
		{"another profile's inbox message", msgs(), []audit.StreamMessage{
			{Seq: 20, Subject: "pl.s.msg.other", MessageID: "m-20"},
		}, []uint64{32}},
		{"an inbox message with another id", msgs(), []audit.StreamMessage{
			{Seq: 30, Subject: inbox, MessageID: "someone else's"},
		}, []uint64{33}},
		{"a message handled before it was sent", append(msgs(), handled(40, "h50", "s1", 1, "50")), nil, []uint64{40}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if seqs := audit.HandledSeqs(c.recs); len(seqs) < 3 || seqs[0] != 10 || seqs[2] != 30 {
				t.Fatalf("HandledSeqs = %v", seqs)
			}
			var got []uint64
			for _, v := range audit.CheckProfile("k", c.recs, nil, audit.WithInbox(inbox, c.found)) {
				if v.Rule != audit.RuleMessageInInbox {
					t.Errorf("unexpected %v", v)
					continue
				}
				got = append(got, v.Seq)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("violations at %v, want %v", got, c.want)
			}
			// Without WithInbox the rule is not checked.
			for _, v := range audit.CheckProfile("k", c.recs, nil) {
				if v.Rule == audit.RuleMessageInInbox {
					t.Errorf("checked without WithInbox: %v", v)
				}
			}
		})
	}
}
