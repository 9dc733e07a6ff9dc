package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newLog(t testing.TB) (*ledger.Log, jetstream.JetStream) {
	t.Helper()
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	st, err := ledger.OpenStream(ctx(t), js, ledger.StreamConfig{Name: "PL_T", Subjects: []string{"pl.t.>"}, MaxMsgSize: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return ledger.NewLog(js, st, 4<<10), js
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func event(epoch uint64, typ string) ledger.Event {
	return ledger.Event{ID: uuid.NewString(), Type: typ, Session: fmt.Sprint("s", epoch), Epoch: epoch, Time: time.Now()}
}

func read(t testing.TB, l *ledger.Log, subj string) []ledger.Record {
	t.Helper()
	var out []ledger.Record
	if err := l.Read(ctx(t), subj, 0, 0, func(r ledger.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

const subj = "pl.t.ev.k"

func TestAppendIsFencedOnTheExpectedSequence(t *testing.T) {
	l, js := newLog(t)
	c := ctx(t)
	seq0, err := l.Append(c, subj, ledger.Head{}, event(1, ledger.TypeSessionStarted))
	if err != nil {
		t.Fatal(err)
	}
	seqs := []ledger.Head{seq0}
	// Another subject's traffic does not move this subject's fence.
	if _, err := l.Append(c, "pl.t.ev.other", ledger.Head{}, event(1, "x")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(c, subj, seqs[0], event(1, "coin")); err != nil {
		t.Fatalf("append at the right fence: %v", err)
	}
	// Same epoch, stale fence: ErrStale.
	_, err = l.Append(c, subj, seqs[0], event(1, "coin"))
	var ce *ledger.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, ledger.ErrStale) {
		t.Fatalf("stale append = %v, want ErrStale", err)
	}
	// A newer epoch appends; the old epoch's append is fenced.
	last := read(t, l, subj)
	if _, err := l.Append(c, subj, last[len(last)-1].Head(), event(2, ledger.TypeSessionStarted)); err != nil {
		t.Fatal(err)
	}
	_, err = l.Append(c, subj, last[len(last)-1].Head(), event(1, "coin"))
	if !errors.Is(err, ledger.ErrFenced) || !errors.As(err, &ce) || ce.Epoch != 2 {
		t.Fatalf("zombie append = %v, want ErrFenced by epoch 2", err)
	}
	// Garbage from a third party is "stale", not "fenced".
	if _, err := js.Publish(c, subj, []byte("junk")); err != nil {
		t.Fatal(err)
	}
	recs := read(t, l, subj)
	_, err = l.Append(c, subj, recs[len(recs)-2].Head(), event(2, "coin"))
	if !errors.Is(err, ledger.ErrStale) {
		t.Fatalf("append behind junk = %v, want ErrStale", err)
	}
	if n := len(read(t, l, subj)); n != 4 {
		t.Fatalf("log has %d messages, want 4 (3 events + junk): a rejected append landed", n)
	}
}

func TestRetryOfALandedAppendReturnsItsSequenceOnce(t *testing.T) {
	l, _ := newLog(t)
	c := ctx(t)
	ev := event(1, ledger.TypeSessionStarted)
	first, err := l.Append(c, subj, ledger.Head{}, ev)
	if err != nil {
		t.Fatal(err)
	}
	// The ack was "lost": the writer retries the same event at the same fence.
	again, err := l.Append(c, subj, ledger.Head{}, ev)
	if err != nil || again != first {
		t.Fatalf("retry = %v, %v; want the first sequence %d", again, err, first)
	}
	// Same for a group of events in one message.
	group := []ledger.Event{event(1, "a"), event(1, "b"), event(1, "c")}
	s1, err := l.Append(c, subj, first, group...)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := l.Append(c, subj, first, group...)
	if err != nil || s1 != s2 {
		t.Fatalf("group retry = %v, %v; want %v", s2, err, s1)
	}
	// And for an atomic batch across two subjects.
	parts := func() []ledger.Part {
		return []ledger.Part{
			{Subject: "pl.t.ev.x", Expected: ledger.Head{}, Events: []ledger.Event{group[0]}},
			{Subject: "pl.t.ev.y", Expected: ledger.Head{}, Events: []ledger.Event{group[1]}},
		}
	}
	group[0], group[1] = event(1, "give"), event(1, "take")
	a1, err := l.AppendAtomic(c, parts()...)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := l.AppendAtomic(c, parts()...)
	if err != nil || fmt.Sprint(a1) != fmt.Sprint(a2) {
		t.Fatalf("atomic retry = %v, %v; want %v", a2, err, a1)
	}
	if n := len(read(t, l, "pl.t.ev.x")) + len(read(t, l, "pl.t.ev.y")); n != 2 {
		t.Fatalf("atomic retry left %d events, want 2", n)
	}
	if n := len(read(t, l, subj)); n != 4 {
		t.Fatalf("log has %d events, want 4", n)
	}
}

func TestAGroupIsOneMessageAndAnAtomicBatchLandsWholeOrNotAtAll(t *testing.T) {
	l, _ := newLog(t)
	c := ctx(t)
	seq, err := l.Append(c, subj, ledger.Head{}, event(1, "a"), event(1, "b"), event(1, "c"))
	if err != nil {
		t.Fatal(err)
	}
	recs := read(t, l, subj)
	if len(recs) != 3 || recs[2].Seq != seq.Seq || recs[0].Seq != seq.Seq || recs[2].Index != 2 || recs[1].Event.Type != "b" {
		t.Fatalf("group read back as %+v", recs)
	}
	seqs := []ledger.Head{seq, seq, seq}
	// Two subjects in one batch, one fence stale: neither lands.
	_, err = l.AppendAtomic(c,
		ledger.Part{Subject: "pl.t.ev.x", Expected: ledger.Head{}, Events: []ledger.Event{event(1, "give")}},
		ledger.Part{Subject: subj, Expected: ledger.Head{Seq: seq.Seq - 1}, Events: []ledger.Event{event(1, "take")}},
	)
	if !errors.Is(err, ledger.ErrStale) {
		t.Fatalf("half-stale atomic append = %v, want ErrStale", err)
	}
	if n := len(read(t, l, "pl.t.ev.x")); n != 0 {
		t.Fatalf("the fresh side landed %d events of a rejected batch", n)
	}
	out, err := l.AppendAtomic(c,
		ledger.Part{Subject: "pl.t.ev.x", Expected: ledger.Head{}, Events: []ledger.Event{event(1, "give")}},
		ledger.Part{Subject: subj, Expected: seqs[2], Events: []ledger.Event{event(1, "take")}},
	)
	if err != nil || len(out) != 2 || out[1].Seq != out[0].Seq+1 {
		t.Fatalf("atomic append = %v, %v", out, err)
	}
}

func TestTooLargeIsRefusedBeforeSending(t *testing.T) {
	l, _ := newLog(t)
	ev := event(1, "big")
	ev.Meta = map[string]string{"x": strings.Repeat("x", 5000)}
	_, err := l.Append(ctx(t), subj, ledger.Head{}, ev)
	if !errors.Is(err, ledger.ErrTooLarge) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("append = %v, want ErrTooLarge naming the limit", err)
	}
	if n := len(read(t, l, subj)); n != 0 {
		t.Fatalf("%d events landed", n)
	}
}

func TestReadPagesThroughLongLogsInOrder(t *testing.T) {
	l, _ := newLog(t)
	c := ctx(t)
	var last ledger.Head
	for i := range 1300 {
		s, err := l.Append(c, subj, last, event(1, fmt.Sprint("e", i)))
		if err != nil {
			t.Fatal(err)
		}
		last = s
		if i%3 == 0 { // interleave another profile
			if _, err := l.Append(c, "pl.t.ev.noise", ledger.Head{}, event(1, "n")); err != nil && !errors.Is(err, ledger.ErrStale) {
				t.Fatal(err)
			}
		}
	}
	recs := read(t, l, subj)
	if len(recs) != 1300 {
		t.Fatalf("read %d events, want 1300", len(recs))
	}
	for i, r := range recs {
		if r.Event.Type != fmt.Sprint("e", i) || (i > 0 && r.Seq <= recs[i-1].Seq) {
			t.Fatalf("record %d = %s at %d: out of order", i, r.Event.Type, r.Seq)
		}
	}
	// From a version, up to a version.
	var got []uint64
	if err := l.Read(c, subj, recs[99].Seq, recs[109].Seq, func(r ledger.Record) error { got = append(got, r.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 || got[0] != recs[100].Seq || got[9] != recs[109].Seq {
		t.Fatalf("read (%d, %d] = %v", recs[99].Seq, recs[109].Seq, got)
	}
	if n, err := l.Last(c, subj); err != nil || n != last.Seq {
		t.Fatalf("Last = %d, %v; want %d", n, err, last)
	}
}

func TestOpenStreamRefusesAnIncompatibleStream(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	c := ctx(t)
	if _, err := js.CreateStream(c, jetstream.StreamConfig{Name: "PL_T", Subjects: []string{"pl.t.>"}, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	_, err := ledger.OpenStream(c, js, ledger.StreamConfig{Name: "PL_T", Subjects: []string{"pl.t.>"}})
	if !errors.Is(err, ledger.ErrStreamConfig) {
		t.Fatalf("OpenStream over a stream with MaxAge = %v, want ErrStreamConfig", err)
	}
	info, _ := js.Stream(c, "PL_T")
	if info.CachedInfo().Config.MaxAge != time.Hour || info.CachedInfo().Config.AllowAtomicPublish {
		t.Fatal("OpenStream changed the existing stream")
	}
}

func TestDecodeEventRefusesForeignMessages(t *testing.T) {
	for _, in := range []string{``, `junk`, `{}`, `{"v":1}`, `{"v":9,"id":"a","type":"t","epoch":1}`, `{"v":1,"id":"a","type":"t","epoch":0}`, `{"v":1,"id":"a","type":"t","epoch":1,"extra":1}`, `{"v":1,"id":"a","type":"t","epoch":1} {}`} {
		if _, err := ledger.DecodeEvent([]byte(in)); err == nil {
			t.Errorf("DecodeEvent(%q) accepted it", in)
		}
	}
	if _, err := ledger.DecodeEvent([]byte(`{"v":1,"id":"a","type":"t","session":"s","epoch":1,"time":"2026-01-01T00:00:00Z"}`)); err != nil {
		t.Errorf("a valid event: %v", err)
	}
}

func TestReadThroughDoesNotStopBeforeTheLeadersLastSequence(t *testing.T) {
	l, _ := newLog(t)
	c := ctx(t)
	var last ledger.Head
	for range 5 {
		s, err := l.Append(c, subj, last, event(1, "e"))
		if err != nil {
			t.Fatal(err)
		}
		last = s
	}
	if got, err := l.LastFromLeader(c, subj); err != nil || got != last.Seq {
		t.Fatalf("LastFromLeader = %d, %v; want %d", got, err, last)
	}
	if got, err := l.LastFromLeader(c, "pl.t.ev.none"); err != nil || got != 0 {
		t.Fatalf("LastFromLeader of an empty subject = %d, %v", got, err)
	}
	n := 0
	if err := l.ReadThrough(c, subj, 0, last.Seq, func(ledger.Record) error { n++; return nil }); err != nil || n != 5 {
		t.Fatalf("ReadThrough = %d records, %v", n, err)
	}
	// A reader told to read through a sequence its replica does not have
	// yet keeps reading (here: until a later append arrives), never stops
	// short as if it had seen everything.
	seen := 0
	done := make(chan error, 1)
	go func() {
		done <- l.ReadThrough(c, subj, last.Seq, last.Seq+1, func(ledger.Record) error { seen++; return nil })
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("ReadThrough returned (%v) before the sequence it must reach existed", err)
	default:
	}
	if _, err := l.Append(c, subj, last, event(1, "late")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || seen != 1 {
		t.Fatalf("ReadThrough = %d records, %v; want the late one", seen, err)
	}
}
