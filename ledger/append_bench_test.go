package ledger_test

import (
	"fmt"
	"testing"

	"github.com/profileledger/profileledger/ledger"
)

// BenchmarkAppend measures one fenced append of n events in one message
// (group commit), and of two one-event parts in one atomic batch. Run: go test -run '^$' -bench Append ./ledger/
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			l, _ := newLog(b)
			c := ctx(b)
			var last ledger.Head
			for b.Loop() {
				evs := make([]ledger.Event, n)
				for i := range evs {
					evs[i] = event(1, "e")
				}
				seq, err := l.Append(c, subj, last, evs...)
				if err != nil {
					b.Fatal(err)
				}
				last = seq
			}
		})
	}
}

func BenchmarkAppendAtomicTwoSubjects(b *testing.B) {
	l, _ := newLog(b)
	c := ctx(b)
	var la, lb ledger.Head
	for b.Loop() {
		seqs, err := l.AppendAtomic(c,
			ledger.Part{Subject: "pl.t.ev.a", Expected: la, Events: []ledger.Event{event(1, "give")}},
			ledger.Part{Subject: "pl.t.ev.b", Expected: lb, Events: []ledger.Event{event(1, "take")}})
		if err != nil {
			b.Fatal(err)
		}
		la, lb = seqs[0], seqs[1]
	}
}
