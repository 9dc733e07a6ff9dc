package audit_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
)

// tamperer is an insider with the stream's admin rights: it deletes,
// re-publishes and inserts messages on a profile's event subject through
// the JetStream API, behind profileledger's back.
type tamperer struct {
	*forger
	stream jetstream.Stream
}

func newTamperer(t testing.TB, js jetstream.JetStream, store string) *tamperer {
	t.Helper()
	st, err := js.Stream(testCtx(t), "PL_"+store)
	if err != nil {
		t.Fatal(err)
	}
	return &tamperer{forger: newForger(t, js, store), stream: st}
}

// seqs returns the sequences of the messages on key's subject, in order.
func (tp *tamperer) seqs(key string) []uint64 {
	tp.t.Helper()
	l := ledger.NewLog(tp.js, tp.stream, 1<<20)
	defer l.Close()
	var out []uint64
	err := l.Read(testCtx(tp.t), tp.subject(key), 0, 0, func(r ledger.Record) error {
		if len(out) == 0 || out[len(out)-1] != r.Seq {
			out = append(out, r.Seq)
		}
		return nil
	})
	if err != nil {
		tp.t.Fatal(err)
	}
	return out
}

func (tp *tamperer) delete(seq uint64) {
	tp.t.Helper()
	if err := tp.stream.DeleteMsg(testCtx(tp.t), seq); err != nil {
		tp.t.Fatalf("delete %d: %v", seq, err)
	}
}

// republish deletes the message at seq and publishes a copy of it, its
// headers included (the chain link too), with its data changed by change;
// it returns the copy's sequence. JetStream has no way to change a stored
// message in place: this is what "altering" one comes to.
func (tp *tamperer) republish(seq uint64, change func(string) string) uint64 {
	tp.t.Helper()
	raw, err := tp.stream.GetMsg(testCtx(tp.t), seq)
	if err != nil {
		tp.t.Fatal(err)
	}
	tp.delete(seq)
	m := nats.NewMsg(raw.Subject)
	m.Data = []byte(change(string(raw.Data)))
	m.Header.Set(ledger.ChainHeader, raw.Header.Get(ledger.ChainHeader))
	ack, err := tp.js.PublishMsg(testCtx(tp.t), m)
	if err != nil {
		tp.t.Fatal(err)
	}
	return ack.Sequence
}

// sessionOf runs one session of key with n mutations and ends it.
func sessionOf(t testing.TB, st *profileledger.Store[player], key string, n int) {
	t.Helper()
	var c tally
	s := c.start(t, st, key)
	c.mutate(t, s, n)
	c.end(t, s)
}

// chainBreaks audits store and returns where key's chain breaks, with the
// details, and every violation of key.
func chainBreaks(t testing.TB, js jetstream.JetStream, store, key string) (breaks []uint64, details []string, all []audit.Violation) {
	t.Helper()
	rep, err := audit.Store(testCtx(t), js, store)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		if v.Key != key {
			continue
		}
		t.Log(v)
		all = append(all, v)
		if v.Rule == audit.RuleChain {
			breaks = append(breaks, v.Seq)
			details = append(details, v.Detail)
		}
	}
	return breaks, details, all
}

var coinsValue = regexp.MustCompile(`("path":"/coins","value":)[0-9]+`)

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAuditFindsAMessageDeletedThroughTheJetStreamAPI(t *testing.T) {
	srv := pltest.Run(t)
	st, js := openStore(t, srv.URL(), "tamper", "a")
	sessionOf(t, st, "p", 4)
	tp := newTamperer(t, js, "tamper")
	seqs := tp.seqs("p") // started, 4 loot, ended
	gone := seqs[2]
	tp.delete(gone)

	breaks, details, _ := chainBreaks(t, js, "tamper", "p")
	if !equalSeqs(breaks, []uint64{seqs[3]}) {
		t.Fatalf("chain breaks at %v, want at %d (the message after the deleted %d)", breaks, seqs[3], gone)
	}
	if !strings.Contains(details[0], "links to sequence "+itoa(gone)) || !strings.Contains(details[0], "deleted") {
		t.Errorf("detail %q does not name the deleted sequence %d", details[0], gone)
	}
}

func TestAuditFindsAMessageAlteredByRepublishing(t *testing.T) {
	srv := pltest.Run(t)
	st, js := openStore(t, srv.URL(), "tamper", "a")
	sessionOf(t, st, "p", 4)
	tp := newTamperer(t, js, "tamper")
	seqs := tp.seqs("p")
	// The second loot set the coins; the insider sets more.
	copySeq := tp.republish(seqs[2], func(s string) string {
		out := coinsValue.ReplaceAllString(s, `${1}999999`)
		if out == s {
			t.Fatalf("event %s sets no coins to alter", s)
		}
		return out
	})

	breaks, _, _ := chainBreaks(t, js, "tamper", "p")
	// Where the original was, the next message's link names a missing
	// sequence; the copy, at the end, names a predecessor that is not the
	// message before it.
	if want := []uint64{seqs[3], copySeq}; !equalSeqs(breaks, want) {
		t.Fatalf("chain breaks at %v, want at %v", breaks, want)
	}
}

func TestARepublishedLastMessageKeepsTheChainButNotTheDigest(t *testing.T) {
	// The last message, altered and re-published with its own link: no
	// gap is left behind it, and the copy links to the message before it,
	// so the chain holds; the copy is the log's message now. A digest
	// taken before proves the change.
	srv := pltest.Run(t)
	st, js := openStore(t, srv.URL(), "tamper", "a")
	sessionOf(t, st, "p", 2)
	d, rep, err := audit.TakeDigest(testCtx(t), js, "tamper")
	if err != nil || !rep.Clean() {
		t.Fatalf("digest: %v, %v", err, rep.Violations)
	}
	tp := newTamperer(t, js, "tamper")
	seqs := tp.seqs("p")
	last := seqs[len(seqs)-1]
	tp.republish(last, func(s string) string { return strings.Replace(s, `"reason":"end"`, `"reason":"handover"`, 1) })
	sessionOf(t, st, "p", 1) // the next session links to the copy's stored bytes

	if breaks, _, _ := chainBreaks(t, js, "tamper", "p"); len(breaks) != 0 {
		t.Fatalf("chain breaks at %v; a re-published last message keeps the chain", breaks)
	}
	rep, err = audit.VerifyDigest(testCtx(t), js, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Violations) != 1 || rep.Violations[0].Rule != audit.RuleDigest || rep.Violations[0].Seq != last {
		t.Fatalf("verify-digest: %v, want %s at %d", rep.Violations, audit.RuleDigest, last)
	}
}

func TestAuditFindsANaiveInsertByAClientWithPublishRights(t *testing.T) {
	srv := pltest.Run(t)
	st, js := openStore(t, srv.URL(), "tamper", "a")
	var c tally
	s := c.start(t, st, "p")
	c.mutate(t, s, 2)
	// A client with publish rights writes an event claiming the live
	// session's identity, as a raw publish: no chain link.
	tp := newTamperer(t, js, "tamper")
	forged := ledger.Event{ID: "forged", Type: "loot", Session: s.ID(), Epoch: s.Epoch(), Ops: []ledger.Op{{Op: "inc", Path: "/coins", Value: []byte("1000")}}}
	forged.V = ledger.FormatVersion
	data, err := forged.Encode()
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(testCtx(t), tp.subject("p"), data)
	if err != nil {
		t.Fatal(err)
	}
	// The holder's next append is fenced out; a new session goes on.
	_ = s.Mutate(testCtx(t), "loot", func(p *player) error { p.Coins++; return nil })
	sessionOf(t, st, "p", 1)

	breaks, details, _ := chainBreaks(t, js, "tamper", "p")
	if !equalSeqs(breaks, []uint64{ack.Sequence}) || !strings.Contains(details[0], "no chain link") {
		t.Fatalf("chain breaks at %v (%v), want at the insert %d", breaks, details, ack.Sequence)
	}
}

func TestAChainCorrectInsertIsCaughtByTheEpochRulesUnlessItClaimsTheLiveSession(t *testing.T) {
	srv := pltest.Run(t)
	st, js := openStore(t, srv.URL(), "tamper", "a")
	var c tally
	s := c.start(t, st, "p")
	c.mutate(t, s, 1)
	c.end(t, s)
	tp := newTamperer(t, js, "tamper")
	// An insider who links correctly (tp.event computes the link as
	// ledger does) but writes in another session's name at the last
	// epoch: the chain holds, the one-session-per-epoch rule does not.
	seq := tp.event("p", ledger.Event{ID: "forged-1", Type: "loot", Session: "insider", Epoch: s.Epoch(),
		Ops: []ledger.Op{{Op: "inc", Path: "/coins", Value: []byte("1000")}}})
	_, _, all := chainBreaks(t, js, "tamper", "p")
	if len(all) != 1 || all[0].Rule != audit.RuleOneSession || all[0].Seq != seq {
		t.Fatalf("violations %v, want only %s at %d", all, audit.RuleOneSession, seq)
	}
	// In the ended session's own name: nothing-after-session-ended.
	seq = tp.event("p", ledger.Event{ID: "forged-2", Type: "loot", Session: s.ID(), Epoch: s.Epoch(),
		Ops: []ledger.Op{{Op: "inc", Path: "/coins", Value: []byte("1000")}}})
	_, _, all = chainBreaks(t, js, "tamper", "p")
	if len(all) != 2 || all[1].Rule != audit.RuleEndedIsLast || all[1].Seq != seq {
		t.Fatalf("violations %v, want %s at %d last", all, audit.RuleEndedIsLast, seq)
	}
}

func TestAuditFindsReorderedMessages(t *testing.T) {
	srv := pltest.Run(t)
	st, js := openStore(t, srv.URL(), "tamper", "a")
	sessionOf(t, st, "p", 4)
	tp := newTamperer(t, js, "tamper")
	seqs := tp.seqs("p")
	// Swap the second and third loot: re-publish the later one first.
	same := func(s string) string { return s }
	b := tp.republish(seqs[3], same)
	a := tp.republish(seqs[2], same)

	breaks, _, _ := chainBreaks(t, js, "tamper", "p")
	// seqs[4] names the missing seqs[3]; b names seqs[2], gone, after the
	// end of the log; a names seqs[1], behind b.
	if want := []uint64{seqs[4], b, a}; !equalSeqs(breaks, want) {
		t.Fatalf("chain breaks at %v, want at %v", breaks, want)
	}
}

func TestAnErasedProfileStartsItsChainAtTheTombstone(t *testing.T) {
	srv := pltest.Run(t)
	st, js := openStore(t, srv.URL(), "tamper", "a")
	sessionOf(t, st, "p", 3)
	tp := newTamperer(t, js, "tamper")
	before := tp.head("p")
	if err := st.Erase(testCtx(t), "p"); err != nil {
		t.Fatal(err)
	}
	sessionOf(t, st, "p", 1)
	seqs := tp.seqs("p")
	l := ledger.NewLog(js, tp.stream, 1<<20)
	defer l.Close()
	var first ledger.Record
	_ = l.Read(testCtx(t), tp.subject("p"), 0, seqs[0], func(r ledger.Record) error { first = r; return nil })
	// The tombstone links to the erased chain's head: the erasing
	// session's own session.started, after everything before it.
	link, err := ledger.ParseHead(first.Link)
	if first.Event.Type != ledger.TypeErased || err != nil || link.Seq <= before.Seq || link.Seq >= first.Seq {
		t.Fatalf("the log starts with %q linking to %q (%v); want the tombstone, linking to the erased head after %v", first.Event.Type, first.Link, err, before)
	}
	if _, _, all := chainBreaks(t, js, "tamper", "p"); len(all) != 0 {
		t.Fatalf("violations after an erasure: %v", all)
	}
	// Deleting the tombstone is not an erasure: the next message names a
	// sequence that is gone, and is no tombstone.
	tp.delete(seqs[0])
	if breaks, _, _ := chainBreaks(t, js, "tamper", "p"); !equalSeqs(breaks, []uint64{seqs[1]}) {
		t.Fatalf("chain breaks at %v, want at %d", breaks, seqs[1])
	}
}

func TestEventsFromBeforeTheChainAreAnUnchainedPrefixNotTampering(t *testing.T) {
	srv := pltest.Run(t)
	st, js := openStore(t, srv.URL(), "tamper", "a")
	tp := newTamperer(t, js, "tamper")
	// An older binary's session: events without links.
	old := func(ev ledger.Event) uint64 {
		ev.V, ev.Session, ev.Epoch = ledger.FormatVersion, "old-session", 1
		data, err := ev.Encode()
		if err != nil {
			t.Fatal(err)
		}
		ack, err := js.Publish(testCtx(t), tp.subject("p"), data)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	old(ledger.Event{ID: "o1", Type: ledger.TypeSessionStarted})
	old(ledger.Event{ID: "o2", Type: "loot", Ops: []ledger.Op{{Op: "replace", Path: "", Value: []byte(`{"coins":5,"items":[]}`)}}})
	old(ledger.Event{ID: "o3", Type: ledger.TypeSessionEnded, Meta: map[string]string{"reason": "end"}})
	// This version's session links to the last of them.
	sessionOf(t, st, "p", 2)
	if _, _, all := chainBreaks(t, js, "tamper", "p"); len(all) != 0 {
		t.Fatalf("violations in a log whose chain starts after older events: %v", all)
	}
	// An unlinked message after linked ones is a break.
	seq := old(ledger.Event{ID: "o4", Type: "loot", Epoch: 1})
	if breaks, _, _ := chainBreaks(t, js, "tamper", "p"); !equalSeqs(breaks, []uint64{seq}) {
		t.Fatalf("chain breaks at %v, want at %d", breaks, seq)
	}
}
