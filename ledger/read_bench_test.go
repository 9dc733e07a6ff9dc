package ledger_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/ledger"
)

// BenchmarkRead compares the two ways to read one profile's events after a
// version: batched direct gets (what Log.Read does) and an ordered consumer
// filtered to the subject. Run: go test -run '^$' -bench Read ./ledger/
func BenchmarkRead(b *testing.B) {
	for _, n := range []int{10, 1000} {
		l, js := newLog(b)
		c := ctx(b)
		var last ledger.Head
		for i := range n {
			s, err := l.Append(c, subj, last, event(1, fmt.Sprint("e", i)))
			if err != nil {
				b.Fatal(err)
			}
			last = s
		}
		b.Run(fmt.Sprintf("events=%d/direct-get", n), func(b *testing.B) {
			for b.Loop() {
				got := 0
				if err := l.Read(c, subj, 0, 0, func(ledger.Record) error { got++; return nil }); err != nil || got != n {
					b.Fatalf("read %d, %v", got, err)
				}
			}
		})
		b.Run(fmt.Sprintf("events=%d/ordered-consumer", n), func(b *testing.B) {
			for b.Loop() {
				if got := readOrdered(b, c, js, last.Seq); got != n {
					b.Fatalf("read %d", got)
				}
			}
		})
	}
}

func readOrdered(b *testing.B, c context.Context, js jetstream.JetStream, last uint64) int {
	cons, err := js.OrderedConsumer(c, "PL_T", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 1,
	})
	if err != nil {
		b.Fatal(err)
	}
	got := 0
	for {
		batch, err := cons.FetchNoWait(512)
		if err != nil {
			b.Fatal(err)
		}
		for m := range batch.Messages() {
			md, _ := m.Metadata()
			if _, err := ledger.DecodeEvent(m.Data()); err != nil {
				b.Fatal(err)
			}
			got++
			if md.Sequence.Stream >= last {
				return got
			}
		}
	}
}
