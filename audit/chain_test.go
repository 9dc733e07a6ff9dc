package audit_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/ledger"
)

// chained links recs as ledger writes them: each message (records of one
// sequence are one message) names the one before it, the first genesis;
// a message's data is stood in for by its sequence.
func chained(recs ...ledger.Record) []ledger.Record {
	out := slices.Clone(recs)
	var prev ledger.Head
	for i := range out {
		if i > 0 && out[i].Seq == out[i-1].Seq {
			out[i].Link, out[i].Hash = out[i-1].Link, out[i-1].Hash
			continue
		}
		out[i].Link = prev.String()
		out[i].Hash = ledger.ChainHash(out[i].Link, []byte(fmt.Sprint(out[i].Seq)))
		prev = out[i].Head()
	}
	return out
}

// TestTheChainRuleNamesWhereTheChainBreaks: the pure rule, case by case;
// the tamper tests do the same on a real server.
func TestTheChainRuleNamesWhereTheChainBreaks(t *testing.T) {
	log := chained(
		ev(1, "a", started, "s1", 1), ev(2, "b", "coin", "s1", 1), ev(2, "c", "coin", "s1", 1), // a group: one message
		ev(4, "d", "coin", "s1", 1), ev(7, "e", "coin", "s1", 1), ev(8, "f", ended, "s1", 1),
	)
	without := func(i int) []ledger.Record { return slices.Delete(slices.Clone(log), i, i+1) }
	cases := []struct {
		name string
		recs []ledger.Record
		want []uint64 // where the chain breaks
	}{
		{"an intact chain, a group commit inside", log, nil},
		{"a message deleted: the next one names it", without(3), []uint64{7}},
		{"the first message deleted: the chain starts mid-air", without(0), []uint64{2}},
		{"the last message deleted: nothing after it to tell", without(5), nil},
		{"a message altered in place: its successor's link no longer matches", func() []ledger.Record {
			r := slices.Clone(log)
			r[3].Hash[0] ^= 1
			return r
		}(), []uint64{7}},
		{"an unlinked insert, and the message after it", func() []ledger.Record {
			r := slices.Clone(log)
			return slices.Insert(r, 4, ev(5, "x", "coin", "s1", 1))
		}(), []uint64{5, 7}},
		{"two messages swapped", func() []ledger.Record {
			r := slices.Clone(log)
			r[3], r[4] = r[4], r[3]
			r[3].Seq, r[4].Seq = 4, 7
			return r
		}(), []uint64{4, 7, 8}},
		{"a malformed link", func() []ledger.Record {
			r := slices.Clone(log)
			r[4].Link = "7:not-a-hash"
			return r
		}(), []uint64{7}},
		{"genesis with a non-zero hash", func() []ledger.Record {
			r := slices.Clone(log)
			r[0].Link = ledger.Head{Hash: [32]byte{1}}.String()
			r[0].Hash = ledger.ChainHash(r[0].Link, []byte("1")) // and so its hash
			return r
		}(), []uint64{1, 2}},
		{"a log that starts at an erasure's tombstone", chainedAfter(ledger.Head{Seq: 40, Hash: [32]byte{9}},
			ev(41, "t", ledger.TypeErased, "s9", 9), ev(42, "g", started, "s10", 10)), nil},
		{"a forged tombstone that links to a sequence not before it", chainedAfter(ledger.Head{Seq: 999999, Hash: [32]byte{9}},
			ev(41, "t", ledger.TypeErased, "s9", 9), ev(42, "g", started, "s10", 10)), []uint64{41}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []uint64
			for _, v := range audit.Check("k", c.recs) {
				if v.Rule == audit.RuleChain {
					got = append(got, v.Seq)
					t.Log(v)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("chain breaks at %v, want %v", got, c.want)
			}
		})
	}
}

// chainedAfter links recs as chained does, the first to from.
func chainedAfter(from ledger.Head, recs ...ledger.Record) []ledger.Record {
	out := chained(recs...)
	prev := from
	for i := range out {
		out[i].Link = prev.String()
		out[i].Hash = ledger.ChainHash(out[i].Link, []byte(fmt.Sprint(out[i].Seq)))
		prev = out[i].Head()
	}
	return out
}
