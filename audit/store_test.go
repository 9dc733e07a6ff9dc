package audit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
	"github.com/profileledger/profileledger/snapshots"
)

// player is the profile type of these tests.
type player struct {
	Coins int      `json:"coins"`
	Items []string `json:"items"`
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openStore opens store on its own connection to url, as one game server
// would, and closes it at cleanup.
func openStore(t testing.TB, url, store, node string, opts ...profileledger.Option) (*profileledger.Store[player], jetstream.JetStream) {
	t.Helper()
	js := pltest.Connect(t, url)
	opts = append([]profileledger.Option{profileledger.WithNode(node), profileledger.WithLeaseTTL(time.Second)}, opts...)
	st, err := profileledger.Open(testCtx(t), js, store, player{Coins: 100, Items: []string{}}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st.Close(ctx)
	})
	return st, js
}

// tally counts the events a test makes, as the audit should find them.
type tally struct{ events int }

func (c *tally) start(t testing.TB, st *profileledger.Store[player], key string, opts ...profileledger.SessionOption) *profileledger.Session[player] {
	t.Helper()
	s, err := st.StartSession(testCtx(t), key, opts...)
	if err != nil {
		t.Fatalf("start %q: %v", key, err)
	}
	c.events++ // session.started
	return s
}

func (c *tally) mutate(t testing.TB, s *profileledger.Session[player], n int) {
	t.Helper()
	for i := range n {
		err := s.Mutate(testCtx(t), "loot", func(p *player) error {
			p.Coins += 3
			p.Items = append(p.Items, fmt.Sprintf("item-%d", i))
			return nil
		})
		if err != nil {
			t.Fatalf("mutate %q: %v", s.Key(), err)
		}
		c.events++
	}
}

func (c *tally) end(t testing.TB, s *profileledger.Session[player]) {
	t.Helper()
	if err := s.End(testCtx(t)); err != nil && !errors.Is(err, profileledger.ErrSessionEnded) {
		t.Fatalf("end %q: %v", s.Key(), err)
	}
	c.events++ // session.ended
}

// storedSnapshots counts the snapshot values in the bucket's history of
// every key, read through the KV API (not the auditor's way).
func storedSnapshots(t testing.TB, js jetstream.JetStream, store string) int {
	t.Helper()
	ctx := testCtx(t)
	kv, err := js.KeyValue(ctx, "PL_"+store+"_SNAPSHOTS")
	if err != nil {
		t.Fatal(err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for k := range lister.Keys() {
		hist, err := kv.History(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range hist {
			if e.Operation() == jetstream.KeyValuePut {
				n++
			}
		}
	}
	return n
}

func TestStoreAuditsACleanStoreClean(t *testing.T) {
	srv := pltest.Run(t)
	const store = "clean"
	// Snapshots every 2 events, so that sessions save some in the middle.
	a, js := openStore(t, srv.URL(), store, "a", profileledger.WithSnapshotEvery(2))
	b, _ := openStore(t, srv.URL(), store, "b", profileledger.WithSnapshotEvery(2))
	var c tally

	// One session, ended.
	s := c.start(t, a, "user:1")
	c.mutate(t, s, 3)
	c.end(t, s)
	// A hand-over from a to b: a's session ends (session.ended, handover).
	s = c.start(t, a, "user:1")
	c.mutate(t, s, 2)
	s2 := c.start(t, b, "user:1")
	<-s.Done()
	c.events++ // a's session.ended
	c.mutate(t, s2, 2)
	// A steal back: b's session ends without a word.
	s3 := c.start(t, a, "user:1", profileledger.Steal())
	c.mutate(t, s3, 1)
	c.end(t, s3)
	if err := s2.Mutate(testCtx(t), "late", func(p *player) error { p.Coins++; return nil }); !errors.Is(err, profileledger.ErrSessionLost) {
		t.Fatalf("a mutation of the stolen session: %v, want ErrSessionLost", err)
	}

	// Keys that are not subject tokens as they are; a trade between them.
	x, y := c.start(t, a, "a.b"), c.start(t, a, "ü >")
	c.mutate(t, x, 1)
	err := profileledger.Trade(testCtx(t), "trade", x, y, func(p, q *player) error {
		q.Items, p.Items = append(q.Items, p.Items[0]), p.Items[1:]
		p.Coins, q.Coins = p.Coins+10, q.Coins-10
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.events += 2
	c.end(t, x)
	c.end(t, y)
	// A profile with a session still live during the audit (on a store
	// that saves no snapshot in the background, so that the count holds).
	cst, _ := openStore(t, srv.URL(), store, "c")
	live := c.start(t, cst, "live")
	c.mutate(t, live, 5)

	var progress []audit.Progress
	rep, err := audit.Store(testCtx(t), js, store, audit.WithProgress(3, func(p audit.Progress) { progress = append(progress, p) }))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() {
		t.Fatalf("violations in a clean store: %v", rep.Violations)
	}
	snaps := storedSnapshots(t, js, store)
	if rep.Store != store || rep.Profiles != 4 || rep.Events != c.events || rep.Snapshots != snaps || rep.Messages != c.events {
		t.Errorf("report %+v; want 4 profiles, %d events in as many messages, %d snapshots", rep, c.events, snaps)
	}
	if snaps < 4 {
		t.Errorf("only %d snapshots: the test means to check more", snaps)
	}
	want := []audit.Progress{
		{Profiles: 3, Total: 4},
		{Profiles: 4, Total: 4, Events: rep.Events, Snapshots: rep.Snapshots},
	}
	if len(progress) != 2 || progress[0].Profiles != want[0].Profiles || progress[0].Total != 4 || progress[1] != want[1] {
		t.Errorf("progress %+v, want %+v (first one's counts partial)", progress, want)
	}
}

// forger writes to a store's stream and bucket behind profileledger's back,
// as anyone with publish rights could.
type forger struct {
	t     testing.TB
	js    jetstream.JetStream
	store string
	kv    jetstream.KeyValue
}

func newForger(t testing.TB, js jetstream.JetStream, store string) *forger {
	kv, err := js.KeyValue(testCtx(t), "PL_"+store+"_SNAPSHOTS")
	if err != nil {
		t.Fatal(err)
	}
	return &forger{t: t, js: js, store: store, kv: kv}
}

func (f *forger) subject(key string) string {
	tok, err := keys.Encode(key)
	if err != nil {
		f.t.Fatal(err)
	}
	return "pl." + f.store + ".ev." + tok
}

// raw publishes data on key's subject, unfenced, and returns its sequence.
// It links the message to the subject's last one as ledger does (a forger
// who knows the chain's rules), so that what each test forges is caught
// by the rule it is about, not by the hash chain.
func (f *forger) raw(key string, data []byte) uint64 {
	f.t.Helper()
	m := nats.NewMsg(f.subject(key))
	m.Data = data
	m.Header.Set(ledger.ChainHeader, f.head(key).String())
	ack, err := f.js.PublishMsg(testCtx(f.t), m)
	if err != nil {
		f.t.Fatal(err)
	}
	return ack.Sequence
}

// head is the chain head of key's subject as ledger computes it.
func (f *forger) head(key string) ledger.Head {
	f.t.Helper()
	st, err := f.js.Stream(testCtx(f.t), "PL_"+f.store)
	if err != nil {
		f.t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(testCtx(f.t), f.subject(key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return ledger.Head{}
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return ledger.Head{Seq: m.Sequence, Hash: ledger.ChainHash(m.Header.Get(ledger.ChainHeader), m.Data)}
}

func (f *forger) event(key string, ev ledger.Event) uint64 {
	f.t.Helper()
	ev.V, ev.Time = ledger.FormatVersion, time.Now().UTC()
	data, err := ev.Encode()
	if err != nil {
		f.t.Fatal(err)
	}
	return f.raw(key, data)
}

// last returns the sequence of the last message on key's subject.
func (f *forger) last(key string) uint64 {
	f.t.Helper()
	st, err := f.js.Stream(testCtx(f.t), "PL_"+f.store)
	if err != nil {
		f.t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(testCtx(f.t), f.subject(key))
	if err != nil {
		f.t.Fatal(err)
	}
	return m.Sequence
}

// snapshot returns key's newest stored snapshot.
func (f *forger) snapshot(key string) snapshots.Snapshot {
	f.t.Helper()
	tok, _ := keys.Encode(key)
	e, err := f.kv.Get(testCtx(f.t), tok)
	if err != nil {
		f.t.Fatal(err)
	}
	s, err := snapshots.Decode(e.Value())
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// putSnapshot stores s (changed by change) under key, unchecked, and
// returns its version.
func (f *forger) putSnapshot(key string, s snapshots.Snapshot, change func(*snapshots.Snapshot), damage func([]byte)) uint64 {
	f.t.Helper()
	change(&s)
	data, err := snapshots.Encode(s)
	if err != nil {
		f.t.Fatal(err)
	}
	if damage != nil {
		damage(data)
	}
	tok, err := keys.Encode(key)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.kv.Put(testCtx(f.t), tok, data); err != nil {
		f.t.Fatal(err)
	}
	return s.Version
}

func TestStoreFindsEachViolation(t *testing.T) {
	srv := pltest.Run(t)
	const store = "broken"
	st, js := openStore(t, srv.URL(), store, "a")
	f := newForger(t, js, store)
	var c tally
	// session runs one session of key with a mutation and ends it.
	session := func(key string) *profileledger.Session[player] {
		s := c.start(t, st, key)
		c.mutate(t, s, 1)
		c.end(t, s)
		return s
	}

	type want struct {
		rule audit.Rule
		seq  uint64
	}
	wants := map[string][]want{}

	session("clean")
	wants["clean"] = nil

	// A zombie: the first session writes after the second began.
	old := session("zombie")
	session("zombie")
	seq := f.event("zombie", ledger.Event{ID: "z1", Type: "loot", Session: old.ID(), Epoch: old.Epoch(),
		Ops: []ledger.Op{{Op: "inc", Path: "/coins", Value: []byte("1000")}}})
	wants["zombie"] = []want{{audit.RuleEpochOrder, seq}}

	// A duplicated event id, in a forged but otherwise proper epoch.
	s := session("dup")
	f.event("dup", ledger.Event{ID: "f1", Type: ledger.TypeSessionStarted, Session: "forger", Epoch: s.Epoch() + 1})
	seq = f.event("dup", ledger.Event{ID: "f1", Type: "loot", Session: "forger", Epoch: s.Epoch() + 1})
	wants["dup"] = []want{{audit.RuleUniqueID, seq}}

	session("garbage")
	seq = f.raw("garbage", []byte("\x00 not an event"))
	wants["garbage"] = []want{{audit.RuleNotAnEvent, seq}}

	// An event whose op does not fold: inc on an array.
	s = session("nofold")
	f.event("nofold", ledger.Event{ID: "f2", Type: ledger.TypeSessionStarted, Session: "forger", Epoch: s.Epoch() + 1})
	seq = f.event("nofold", ledger.Event{ID: "f3", Type: "loot", Session: "forger", Epoch: s.Epoch() + 1,
		Ops: []ledger.Op{{Op: "inc", Path: "/items", Value: []byte("1")}}})
	wants["nofold"] = []want{{audit.RuleEventFolds, seq}}

	// Snapshots: well formed and checksummed, but wrong; damaged; from the
	// future; another profile's; with the wrong epoch. The genuine ones
	// stay in the history and must pass.
	session("snap-state")
	seq = f.putSnapshot("snap-state", f.snapshot("snap-state"), func(s *snapshots.Snapshot) { s.State = []byte(`{"coins":999999,"items":[]}`) }, nil)
	if seq != f.last("snap-state") {
		t.Fatalf("the newest snapshot is at %d, the log ends at %d", seq, f.last("snap-state"))
	}
	wants["snap-state"] = []want{{audit.RuleSnapshotFold, seq}}

	session("snap-corrupt")
	seq = f.putSnapshot("snap-corrupt", f.snapshot("snap-corrupt"), func(*snapshots.Snapshot) {}, func(b []byte) { b[len(b)-2] ^= 0x20 })
	wants["snap-corrupt"] = []want{{audit.RuleSnapshotIntact, seq}}

	session("snap-future")
	seq = f.putSnapshot("snap-future", f.snapshot("snap-future"), func(s *snapshots.Snapshot) { s.Version += 1000 }, nil)
	wants["snap-future"] = []want{{audit.RuleSnapshotInFuture, seq}}

	session("snap-key")
	seq = f.putSnapshot("snap-key", f.snapshot("snap-key"), func(s *snapshots.Snapshot) { s.Key = "someone else" }, nil)
	wants["snap-key"] = []want{{audit.RuleSnapshotKey, seq}}

	session("snap-epoch")
	seq = f.putSnapshot("snap-epoch", f.snapshot("snap-epoch"), func(s *snapshots.Snapshot) { s.Epoch += 5 }, nil)
	wants["snap-epoch"] = []want{{audit.RuleSnapshotEpoch, seq}}

	// A snapshot of a profile that has no log at all.
	seq = f.putSnapshot("ghost", f.snapshot("clean"), func(s *snapshots.Snapshot) { s.Key = "ghost" }, nil)
	wants["ghost"] = []want{{audit.RuleSnapshotInFuture, seq}}

	// A subject that is no profile's.
	if _, err := js.Publish(testCtx(t), "pl."+store+".ev.not_a_key", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	wants[""] = []want{{audit.RuleSubjectKey, 0}}

	rep, err := audit.Store(testCtx(t), js, store)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]want{}
	for _, v := range rep.Violations {
		got[v.Key] = append(got[v.Key], want{v.Rule, v.Seq})
		t.Log(v)
	}
	for key, w := range wants {
		if !slices.Equal(got[key], w) {
			t.Errorf("profile %q: got %v, want %v", key, got[key], w)
		}
	}
	for key := range got {
		if _, ok := wants[key]; !ok {
			t.Errorf("profile %q: unexpected %v", key, got[key])
		}
	}
	if rep.Profiles != len(wants)-1 {
		t.Errorf("%d profiles audited, want %d", rep.Profiles, len(wants)-1)
	}
	forged := 1 + 2 + 2 // zombie, dup, nofold; the garbage message holds no event
	if rep.Events != c.events+forged {
		t.Errorf("%d events, want %d", rep.Events, c.events+forged)
	}
}

// TestStoreAuditsAStoreInUse audits while sessions mutate, hand over and
// save snapshots: an audit racing them must find nothing (no snapshot
// taken for one from the future, no torn read).
func TestStoreAuditsAStoreInUse(t *testing.T) {
	srv := pltest.Run(t)
	auditInUse(t, srv.URL(), srv.URL(), srv.URL())
}

// TestStoreAuditsAReplicatedStoreInUse is TestStoreAuditsAStoreInUse on a
// 3-node cluster with R3 streams and buckets, the two stores and the
// auditor each on another server: the replica serving the auditor's reads
// may lag the one that acknowledged a write.
func TestStoreAuditsAReplicatedStoreInUse(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := pltest.RunCluster(t, 3)
	auditInUse(t, c.Servers()[0].URL(), c.Servers()[1].URL(), c.Servers()[2].URL(), profileledger.WithReplicas(3))
}

func auditInUse(t *testing.T, urlA, urlB, urlAudit string, opts ...profileledger.Option) {
	const store = "busy"
	opts = append(opts, profileledger.WithSnapshotEvery(2))
	a, _ := openStore(t, urlA, store, "a", opts...)
	b, _ := openStore(t, urlB, store, "b", opts...)
	js := pltest.Connect(t, urlAudit)
	ctx, cancel := context.WithTimeout(testCtx(t), 1500*time.Millisecond)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 4 {
		wg.Go(func() {
			key := fmt.Sprintf("user:%d", i)
			stores := []*profileledger.Store[player]{a, b}
			var s *profileledger.Session[player]
			// Each round takes the profile over from the other store: a
			// hand-over, or every third round a steal.
			for round := 0; ctx.Err() == nil; round++ {
				var opts []profileledger.SessionOption
				if round%3 == 2 {
					opts = append(opts, profileledger.Steal())
				}
				next, err := stores[round%2].StartSession(ctx, key, opts...)
				if err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("round %d of %q: %w", round, key, err)
					}
					break
				}
				s = next
				for j := 0; j < 5 && ctx.Err() == nil; j++ {
					s.Mutate(ctx, "loot", func(p *player) error { p.Coins++; return nil })
				}
			}
			if s != nil {
				ectx, ecancel := context.WithTimeout(context.Background(), 5*time.Second)
				s.End(ectx)
				ecancel()
			}
		})
	}
	audits := 0
	for ctx.Err() == nil {
		rep, err := audit.Store(testCtx(t), js, store)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Clean() {
			t.Fatalf("audit %d of a store in use: %v", audits, rep.Violations)
		}
		audits++
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rep, err := audit.Store(testCtx(t), js, store)
	if err != nil || !rep.Clean() || rep.Profiles != 4 || rep.Snapshots == 0 {
		t.Fatalf("final audit: %v, %+v", err, rep)
	}
	t.Logf("%d audits while in use; at the end %d events, %d snapshots", audits, rep.Events, rep.Snapshots)
}

func TestStoreErrors(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	for _, name := range []string{"", "a.b", "a*", strings.Repeat("a", 49)} {
		if _, err := audit.Store(testCtx(t), js, name); !errors.Is(err, audit.ErrInvalidStore) {
			t.Errorf("store %q: %v, want ErrInvalidStore", name, err)
		}
	}
	rep, err := audit.Store(testCtx(t), js, "nosuchstore")
	if !errors.Is(err, audit.ErrNoStore) || rep == nil || rep.Violations == nil {
		t.Errorf("missing store: %v, %+v; want ErrNoStore and an empty report", err, rep)
	}
	// An empty store audits clean, and progress still reports the end.
	openStore(t, srv.URL(), "empty", "a")
	calls := 0
	rep, err = audit.Store(testCtx(t), js, "empty", audit.WithProgress(0, func(audit.Progress) { calls++ }))
	if err != nil || !rep.Clean() || rep.Profiles != 0 || calls != 1 {
		t.Errorf("empty store: %v, %+v, %d progress calls", err, rep, calls)
	}
}

// TestStoreReadsLongLogsInChunks reads a log in calls of two messages
// each, group commits (several events in one message) included: every
// event is read once.
func TestStoreReadsLongLogsInChunks(t *testing.T) {
	defer audit.SetReadChunk(2)()
	srv := pltest.Run(t)
	const store = "long"
	_, js := openStore(t, srv.URL(), store, "a")
	f := newForger(t, js, store)
	events := func(n int, typ string, ops ...ledger.Op) []ledger.Event {
		evs := make([]ledger.Event, n)
		for i := range evs {
			evs[i] = ledger.Event{V: ledger.FormatVersion, ID: fmt.Sprintf("%s-%d-%d", typ, n, i), Type: typ, Session: "s", Epoch: 1, Ops: ops}
		}
		return evs
	}
	publish := func(evs []ledger.Event) {
		data, err := ledger.EncodeMessage(evs)
		if err != nil {
			t.Fatal(err)
		}
		f.raw("k", data)
	}
	publish(events(1, ledger.TypeSessionStarted, ledger.Op{Op: "replace", Path: "", Value: []byte(`{"coins":0,"items":[]}`)}))
	want := 1
	for n := 1; n <= 6; n++ {
		publish(events(n, "coin", ledger.Op{Op: "inc", Path: "/coins", Value: []byte("1")}))
		want += n
	}
	rep, err := audit.Store(testCtx(t), js, store)
	if err != nil || !rep.Clean() || rep.Events != want || rep.Messages != 7 {
		t.Fatalf("%v, %+v; want %d events in 7 messages", err, rep, want)
	}
}

// waitHandled waits until s's data holds n items (its handler adds one per
// message).
func waitHandled(t *testing.T, s *profileledger.Session[player], n int) {
	t.Helper()
	ctx := testCtx(t)
	for len(s.Data().Items) < n {
		select {
		case <-ctx.Done():
			t.Fatalf("%q: %d of %d messages handled", s.Key(), len(s.Data().Items), n)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func gift(p *player, m profileledger.Message) error {
	p.Items = append(p.Items, string(m.Payload))
	return nil
}

// TestStoreAuditsMessagesAndErasuresClean: handled messages (some pending
// at the start of a session, some arriving live, one refused once and
// offered again, one sent twice with one id), a hand-over between two
// handlers, and erasures (of a held profile, by user id, then used again
// with snapshots) all audit clean.
func TestStoreAuditsMessagesAndErasuresClean(t *testing.T) {
	srv := pltest.Run(t)
	const store = "inbox"
	a, js := openStore(t, srv.URL(), store, "a", profileledger.WithSnapshotEvery(2))
	b, _ := openStore(t, srv.URL(), store, "b", profileledger.WithSnapshotEvery(2))
	ctx := testCtx(t)
	send := func(key, payload string, opts ...profileledger.MessageOption) {
		t.Helper()
		if err := b.Message(ctx, key, []byte(payload), opts...); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		send("k", fmt.Sprintf("early-%d", i))
	}
	s, err := a.StartSession(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	refused := false
	s.HandleMessages(func(p *player, m profileledger.Message) error {
		if string(m.Payload) == "live-1" && !refused {
			refused = true
			return errors.New("not now")
		}
		return gift(p, m)
	})
	for i := range 3 {
		send("k", fmt.Sprintf("live-%d", i))
	}
	send("k", "once", profileledger.MessageID("order-1"))
	send("k", "once", profileledger.MessageID("order-1")) // a retry: de-duplicated
	waitHandled(t, s, 7)
	// A hand-over to b, which handles the rest.
	s2, err := b.StartSession(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	s2.HandleMessages(gift)
	send("k", "after-handover")
	waitHandled(t, s2, 8)
	if err := s2.End(ctx); err != nil {
		t.Fatal(err)
	}

	// Erasures: of a held profile (its holder hands over), and by user id.
	held, err := a.StartSession(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	held.HandleMessages(gift)
	send("held", "secret")
	waitHandled(t, held, 1)
	if err := held.AddUserID(ctx, "user:7"); err != nil {
		t.Fatal(err)
	}
	if err := b.Erase(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	u, err := a.StartSession(ctx, "linked")
	if err != nil {
		t.Fatal(err)
	}
	if err := u.AddUserID(ctx, "user:7"); err != nil {
		t.Fatal(err)
	}
	if err := u.End(ctx); err != nil {
		t.Fatal(err)
	}
	if keys, err := b.EraseUser(ctx, "user:7"); err != nil || len(keys) != 1 {
		t.Fatalf("EraseUser = %v, %v", keys, err)
	}
	// The erased profile used again: new sessions, messages, snapshots.
	again, err := a.StartSession(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	again.HandleMessages(gift)
	send("held", "new life")
	waitHandled(t, again, 1)
	var c tally
	c.mutate(t, again, 3)
	if err := again.End(ctx); err != nil {
		t.Fatal(err)
	}

	rep, err := audit.Store(ctx, js, store)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() || rep.Profiles != 3 {
		t.Fatalf("%d profiles, violations: %v", rep.Profiles, rep.Violations)
	}
	first := pltest.ReadLog(t, js, store, "held")[0]
	if first.Event.Type != ledger.TypeErased {
		t.Fatalf("the erased profile's log starts with %q, want the tombstone", first.Event.Type)
	}
}

// TestStoreFindsMessageViolations forges pl.message events on profiles'
// subjects, as a buggy or malicious client could, and sees each found.
func TestStoreFindsMessageViolations(t *testing.T) {
	srv := pltest.Run(t)
	const store = "badinbox"
	st, js := openStore(t, srv.URL(), store, "a")
	f := newForger(t, js, store)
	ctx := testCtx(t)
	// handledOne runs a session of key that handles one message and ends,
	// and returns the session and the inbox sequence of that message.
	handledOne := func(key string) (*profileledger.Session[player], uint64) {
		t.Helper()
		if err := st.Message(ctx, key, []byte("gift"), profileledger.MessageID("gift-of-"+key)); err != nil {
			t.Fatal(err)
		}
		s, err := st.StartSession(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		s.HandleMessages(gift)
		waitHandled(t, s, 1)
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
		var seq uint64
		for _, r := range pltest.ReadLog(t, js, store, key) {
			if r.Event.Type == ledger.TypeMessage {
				fmt.Sscan(r.Event.Meta[ledger.MetaMsgSeq], &seq)
			}
		}
		if seq == 0 {
			t.Fatalf("%q: no handled message in the log", key)
		}
		return s, seq
	}
	// forge appends a forged session (session.started, then a pl.message
	// handling inbox sequence msg with id) after s's epoch; it returns the
	// pl.message event's sequence.
	forge := func(key string, s *profileledger.Session[player], msg uint64, id string) uint64 {
		t.Helper()
		f.event(key, ledger.Event{ID: key + "-fence", Type: ledger.TypeSessionStarted, Session: "forger", Epoch: s.Epoch() + 1})
		return f.event(key, ledger.Event{ID: key + "-msg", Type: ledger.TypeMessage, Session: "forger", Epoch: s.Epoch() + 1,
			Ops:  []ledger.Op{{Op: "add", Path: "/items/-", Value: []byte(`"gift"`)}},
			Meta: map[string]string{ledger.MetaMsgSeq: fmt.Sprint(msg), ledger.MetaMsgID: id}})
	}
	type want struct {
		rule audit.Rule
		seq  uint64
	}
	wants := map[string][]want{}

	handledOne("clean")
	wants["clean"] = nil

	// The same message handled again by a later session.
	s, msg := handledOne("twice")
	wants["twice"] = []want{{audit.RuleMessageOnce, forge("twice", s, msg, "gift-of-twice")}}

	// pending sends a message to key's inbox that nobody handles, and
	// returns its sequence.
	stream, err := js.Stream(ctx, "PL_"+store)
	if err != nil {
		t.Fatal(err)
	}
	pending := func(key, id string) uint64 {
		t.Helper()
		if err := st.Message(ctx, key, []byte("pending"), profileledger.MessageID(id)); err != nil {
			t.Fatal(err)
		}
		tok, _ := keys.Encode(key)
		m, err := stream.GetLastMsgForSubject(ctx, "pl."+store+".msg."+tok)
		if err != nil {
			t.Fatal(err)
		}
		return m.Sequence
	}

	// Another profile's inbox message, handled here.
	s, _ = handledOne("foreign")
	wants["foreign"] = []want{{audit.RuleMessageInInbox, forge("foreign", s, pending("someone else", "theirs"), "theirs")}}

	// A message still pending in the inbox, handled under another id.
	s, _ = handledOne("wrong-id")
	wants["wrong-id"] = []want{{audit.RuleMessageInInbox, forge("wrong-id", s, pending("wrong-id", "real-id"), "forged-id")}}

	// A message handled before anyone sent it.
	s, _ = handledOne("future")
	wants["future"] = []want{{audit.RuleMessageInInbox, forge("future", s, f.last("future")+1000, "x")}}

	rep, err := audit.Store(ctx, js, store)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]want{}
	for _, v := range rep.Violations {
		got[v.Key] = append(got[v.Key], want{v.Rule, v.Seq})
		t.Log(v)
	}
	for key, w := range wants {
		if !slices.Equal(got[key], w) {
			t.Errorf("profile %q: got %v, want %v", key, got[key], w)
		}
	}
	for key := range got {
		if _, ok := wants[key]; !ok {
			t.Errorf("profile %q: unexpected %v", key, got[key])
		}
	}
}
