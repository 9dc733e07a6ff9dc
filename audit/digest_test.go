package audit_test

import (
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/pltest"
)

func TestADigestStillVerifiesAfterTheLogGrowsAndAProfileIsErased(t *testing.T) {
	srv := pltest.Run(t)
	st, js := openStore(t, srv.URL(), "dig", "a")
	for _, k := range []string{"p", "q", "r"} {
		sessionOf(t, st, k, 2)
	}
	d, rep, err := audit.TakeDigest(testCtx(t), js, "dig")
	if err != nil || !rep.Clean() {
		t.Fatalf("digest: %v, %v", err, rep.Violations)
	}
	if len(d.Heads) != 3 || d.Heads[0].Key != "p" || d.Heads[2].Key != "r" || len(d.Root) != 64 {
		t.Fatalf("digest %+v: want three heads sorted by key and a root", d)
	}
	// Kept elsewhere as JSON and read back.
	raw, _ := json.Marshal(d)
	var kept audit.Digest
	if err := json.Unmarshal(raw, &kept); err != nil || kept.Check() != nil {
		t.Fatalf("a digest read back: %v, %v", err, kept.Check())
	}
	sessionOf(t, st, "p", 3)   // p grows
	sessionOf(t, st, "new", 1) // a profile the digest does not know
	if err := st.Erase(testCtx(t), "q"); err != nil {
		t.Fatal(err)
	}
	rep, err = audit.VerifyDigest(testCtx(t), js, &kept)
	if err != nil || !rep.Clean() {
		t.Fatalf("verify after growth and an erasure: %v, %v", err, rep.Violations)
	}
}

func TestVerifyDigestFindsAChangeBeforeTheRecordedHead(t *testing.T) {
	srv := pltest.Run(t)
	st, js := openStore(t, srv.URL(), "dig", "a")
	sessionOf(t, st, "p", 3)
	sessionOf(t, st, "q", 1)
	d, _, err := audit.TakeDigest(testCtx(t), js, "dig")
	if err != nil {
		t.Fatal(err)
	}
	tp := newTamperer(t, js, "dig")
	// q is rewritten whole by an insider who recomputes every link: its
	// chain is intact, but the recorded head is gone.
	qs := tp.seqs("q")
	var msgs []*jetstream.RawStreamMsg
	for _, s := range qs {
		m, err := tp.stream.GetMsg(testCtx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
		tp.delete(s)
	}
	for _, m := range msgs {
		tp.raw("q", m.Data) // linked to the new head, from genesis
	}
	if breaks, _, _ := chainBreaks(t, js, "dig", "q"); len(breaks) != 0 {
		t.Fatalf("the rewritten chain breaks at %v: the forger was meant to relink it", breaks)
	}
	// p loses its last message: no gap is left in the chain.
	ps := tp.seqs("p")
	tp.delete(ps[len(ps)-1])

	rep, err := audit.VerifyDigest(testCtx(t), js, d)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, v := range rep.Violations {
		t.Log(v)
		if v.Rule == audit.RuleDigest {
			got[v.Key] = v.Seq
		}
	}
	if got["p"] != ps[len(ps)-1] || got["q"] != qs[len(qs)-1] || len(got) != 2 {
		t.Fatalf("digest violations %v, want p at %d and q at %d", got, ps[len(ps)-1], qs[len(qs)-1])
	}
}

func TestAnEditedDigestIsRefused(t *testing.T) {
	srv := pltest.Run(t)
	st, js := openStore(t, srv.URL(), "dig", "a")
	sessionOf(t, st, "p", 1)
	d, _, err := audit.TakeDigest(testCtx(t), js, "dig")
	if err != nil {
		t.Fatal(err)
	}
	d.Heads[0].Seq--
	if _, err := audit.VerifyDigest(testCtx(t), js, d); err == nil {
		t.Fatal("a digest whose head was edited was verified")
	}
}
