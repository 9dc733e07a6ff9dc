package ledger_test

import (
	"testing"

	"github.com/profileledger/profileledger/ledger"
)

// TestEveryAppendLinksToThePreviousMessageOnItsSubject: the head Append
// returns is the stored message's chain hash, and the next message's link
// names it, through single appends, groups and atomic batches.
func TestEveryAppendLinksToThePreviousMessageOnItsSubject(t *testing.T) {
	l, _ := newLog(t)
	c := ctx(t)
	h1, err := l.Append(c, subj, ledger.Head{}, event(1, ledger.TypeSessionStarted))
	if err != nil {
		t.Fatal(err)
	}
	h2, err := l.Append(c, subj, h1, event(1, "a"), event(1, "b"))
	if err != nil {
		t.Fatal(err)
	}
	hs, err := l.AppendAtomic(c,
		ledger.Part{Subject: subj, Expected: h2, Events: []ledger.Event{event(1, "give")}},
		ledger.Part{Subject: "pl.t.ev.other", Events: []ledger.Event{event(1, "take")}})
	if err != nil {
		t.Fatal(err)
	}
	recs := read(t, l, subj)
	wantLinks := []ledger.Head{{}, h1, h1, h2}
	wantHeads := []ledger.Head{h1, h2, h2, hs[0]}
	if len(recs) != len(wantLinks) {
		t.Fatalf("read %d records, want %d", len(recs), len(wantLinks))
	}
	for i, r := range recs {
		if r.Link != wantLinks[i].String() {
			t.Errorf("record %d (seq %d) links to %q, want %q", i, r.Seq, r.Link, wantLinks[i])
		}
		if r.Head() != wantHeads[i] {
			t.Errorf("record %d: head %v, the append returned %v", i, r.Head(), wantHeads[i])
		}
	}
	other := read(t, l, "pl.t.ev.other")
	if len(other) != 1 || other[0].Link != (ledger.Head{}).String() || other[0].Head() != hs[1] {
		t.Fatalf("the other subject's first message: link %q head %v, want genesis and %v", other[0].Link, other[0].Head(), hs[1])
	}
}

func TestParseHeadReadsWhatStringWritesAndRefusesTheRest(t *testing.T) {
	h := ledger.Head{Seq: 42, Hash: ledger.ChainHash("0:", []byte("x"))}
	got, err := ledger.ParseHead(h.String())
	if err != nil || got != h {
		t.Fatalf("ParseHead(%q) = %v, %v", h.String(), got, err)
	}
	for _, bad := range []string{"", "42", "x:00", "42:abc", "42:" + h.String()[3:] + "00", "-1:" + h.String()[3:]} {
		if _, err := ledger.ParseHead(bad); err == nil {
			t.Errorf("ParseHead(%q) accepted it", bad)
		}
	}
}

// FuzzParseHead: any header value is parsed or refused, never a panic, and
// what is accepted is written back the same way.
func FuzzParseHead(f *testing.F) {
	f.Add(ledger.Head{}.String())
	f.Add(ledger.Head{Seq: 7, Hash: ledger.ChainHash("", []byte("x"))}.String())
	f.Add("1:")
	f.Add(":::")
	f.Fuzz(func(t *testing.T, v string) {
		h, err := ledger.ParseHead(v)
		if err != nil {
			return
		}
		if again, err := ledger.ParseHead(h.String()); err != nil || again != h {
			t.Fatalf("ParseHead(%q) = %v; its String %q reads back as %v, %v", v, h, h.String(), again, err)
		}
	})
}
