package profileledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/snapshots"
)

// Tests for the defects of issue 9 (hardening): each failed on the code
// before its fix.

// TestASnapshotWhoseLogWasDeletedIsNotTrusted: the stream is deleted and
// recreated while the snapshot bucket survives. The snapshot's version is
// then no event of the profile's subject: loads must distrust it, say so,
// and see a fresh profile; a session must start (before the fix Get
// returned the snapshot's coins and StartSession spun until its context
// ended).
func TestASnapshotWhoseLogWasDeletedIsNotTrusted(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	s := start(t, st, "k")
	for range 5 {
		if err := s.Mutate(ctx, "coin", addCoins(100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.End(ctx); err != nil { // snapshot at the end
		t.Fatal(err)
	}
	if v, err := st.Get(ctx, "k"); err != nil || v.Report.SnapshotVersion == 0 {
		t.Fatalf("no snapshot to test with: %+v, %v", v.Report, err)
	}
	if err := e.js.DeleteStream(ctx, "PL_players"); err != nil {
		t.Fatal(err)
	}
	st2 := e.open(t, "players") // recreates the stream; the snapshot bucket is as it was

	v, err := st2.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if v.Exists || v.Data.Coins != 100 {
		t.Fatalf("Get after the log was deleted = exists %v, %d coins; want a fresh profile (100 coins)", v.Exists, v.Data.Coins)
	}
	if len(v.Report.SkippedSnapshots) == 0 {
		t.Fatalf("the distrusted snapshot is not in the load report: %+v", v.Report)
	}

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s2, err := st2.StartSession(sctx, "k")
	if err != nil {
		t.Fatalf("StartSession after the log was deleted: %v", err)
	}
	if got := s2.Data().Coins; got != 100 {
		t.Fatalf("session data = %d coins, want the template's 100", got)
	}
	if err := s2.Mutate(ctx, "coin", addCoins(1)); err != nil {
		t.Fatal(err)
	}
	if err := s2.End(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestASnapshotThatIsNotOfItsVersionsEventIsNotTrusted plants snapshots
// with valid checksums whose version is an event of the profile, but whose
// epoch or session is not that event's. Loads must skip them.
func TestASnapshotThatIsNotOfItsVersionsEventIsNotTrusted(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	s := start(t, st, "k")
	if err := s.Mutate(ctx, "coin", addCoins(5)); err != nil {
		t.Fatal(err)
	}
	version, epoch, session := s.Version(), s.Epoch(), s.ID()
	if err := s.Mutate(ctx, "coin", addCoins(5)); err != nil {
		t.Fatal(err)
	}
	kv, err := snapshots.OpenKV(ctx, e.js, snapshots.KVConfig{Bucket: "PL_players_SNAPSHOTS"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		epoch   uint64
		session string
	}{
		{"an older epoch", epoch - 1, session},
		{"another session", epoch, "someone-else"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := snapshots.Encode(snapshots.Snapshot{Key: "k", Version: version, Epoch: tc.epoch, Session: tc.session,
				State: []byte(`{"coins":1000000,"inventory":[],"stats":{}}`), Meta: map[string]string{"pl.state": "1"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := kv.PutRaw(ctx, "k", raw); err != nil {
				t.Fatal(err)
			}
			v, err := st.Get(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			if v.Data.Coins != 110 || len(v.Report.SkippedSnapshots) == 0 || !contains(v.Report.SkippedSnapshots[0], "session") {
				t.Fatalf("Get = %d coins, report %+v; want 110 from the log and the planted snapshot reported", v.Data.Coins, v.Report)
			}
		})
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
}

// Versions of one profile type, as two releases of a game server see it.
type petV1 struct {
	Name string `json:"name"`
}
type itemV1 struct {
	ID string `json:"id"`
}
type profileV1 struct {
	Coins int      `json:"coins"`
	Pet   petV1    `json:"pet"`
	Items []itemV1 `json:"items"`
}
type petV2 struct {
	Name  string `json:"name"`
	Color string `json:"color"`
}
type itemV2 struct {
	ID     string `json:"id"`
	Rarity string `json:"rarity"`
}
type profileV2 struct {
	Coins  int               `json:"coins"`
	Gems   int               `json:"gems"`
	Titles map[string]string `json:"titles"`
	Pet    petV2             `json:"pet"`
	Items  []itemV2          `json:"items"`
}

// TestAnOlderServerKeepsFieldsItDoesNotKnow: during a rolling deploy a
// newer server writes fields the older binary's type lacks (at the top, in
// a nested object, in array elements). Sessions, mutations, explicit ops,
// trades, snapshots and reads on the older server must keep them, and the
// newer server sees them again. Before the fix the older server's first
// session removed them.
func TestAnOlderServerKeepsFieldsItDoesNotKnow(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	newer, err := profileledger.Open(ctx, e.js, "game", profileV2{Titles: map[string]string{}, Items: []itemV2{}}, profileledger.WithSnapshotEvery(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { newer.Close(context.Background()) })
	older, err := profileledger.Open(ctx, e.js, "game", profileV1{Items: []itemV1{}}, profileledger.WithSnapshotEvery(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { older.Close(context.Background()) })

	for _, k := range []string{"a", "b"} {
		s, err := newer.StartSession(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Mutate(ctx, "grant", func(p *profileV2) error {
			p.Coins, p.Gems = 10, 7
			p.Titles["first"] = "Dragon Slayer"
			p.Pet = petV2{Name: "Rex", Color: "red"}
			p.Items = append(p.Items, itemV2{ID: k + "1", Rarity: "common"}, itemV2{ID: k + "2", Rarity: "epic"}, itemV2{ID: k + "3", Rarity: "rare"})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// The older server: a session per profile, typed mutations that
	// remove the first item and rename the pet, explicit ops, a trade
	// moving the last item of a to b, hand-overs between its sessions.
	a, err := older.StartSession(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := older.StartSession(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Mutate(ctx, "sell", func(p *profileV1) error {
		p.Items = p.Items[1:]
		p.Coins += 5
		p.Pet.Name = "Max"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, "bonus", profileledger.Inc("/coins", 3)); err != nil {
		t.Fatal(err)
	}
	err = profileledger.Trade(ctx, "give", a, b, func(pa, pb *profileV1) error {
		last := pa.Items[len(pa.Items)-1]
		pa.Items = pa.Items[:len(pa.Items)-1]
		pb.Items = append(pb.Items, last)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*profileledger.Session[profileV1]{a, b} {
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Another older session reads the snapshot written at End and ends.
	a2, err := older.StartSession(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.End(ctx); err != nil {
		t.Fatal(err)
	}

	// The newer server sees everything: from the snapshot, from a full
	// replay, and in a session.
	want := map[string]profileV2{
		"a": {Coins: 15, Gems: 7, Titles: map[string]string{"first": "Dragon Slayer"}, Pet: petV2{Name: "Max", Color: "red"}, Items: []itemV2{{ID: "a2", Rarity: "epic"}}},
		"b": {Coins: 13, Gems: 7, Titles: map[string]string{"first": "Dragon Slayer"}, Pet: petV2{Name: "Rex", Color: "red"},
			Items: []itemV2{{ID: "b1", Rarity: "common"}, {ID: "b2", Rarity: "epic"}, {ID: "b3", Rarity: "rare"}, {ID: "a3", Rarity: ""}}},
	}
	// a3 crossed in a trade made by the older server, which never knew
	// a3's rarity: the trade's typed ops add the item as the older type
	// holds it. What it did not touch keeps its unknown fields.
	for k, w := range want {
		for _, read := range []struct {
			name string
			opts []profileledger.ReadOption
		}{{"snapshot and tail", nil}, {"full replay", []profileledger.ReadOption{profileledger.AtTime(time.Now())}}} {
			v, err := newer.Get(ctx, k, read.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%+v", v.Data); got != fmt.Sprintf("%+v", w) {
				t.Errorf("%s, %s:\n got %s\nwant %+v", k, read.name, got, w)
			}
		}
		s, err := newer.StartSession(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%+v", s.Data()); got != fmt.Sprintf("%+v", w) {
			t.Errorf("%s, newer session:\n got %s\nwant %+v", k, got, w)
		}
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAStealByTheStoreThatHoldsTheProfileEndsTheOldSession: StartSession
// with Steal on the Store that already holds the profile must not leave the
// old session orphaned (never renewed, never told, not ended by Close).
func TestAStealByTheStoreThatHoldsTheProfileEndsTheOldSession(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	old := start(t, st, "k")
	if err := old.Mutate(ctx, "coin", addCoins(1)); err != nil {
		t.Fatal(err)
	}
	thief := start(t, st, "k", profileledger.Steal())
	select {
	case <-old.Done():
	case <-ctx.Done():
		t.Fatal("the old session is still live after its own store stole its profile")
	}
	if err := old.Err(); !errors.Is(err, profileledger.ErrSessionLost) {
		t.Fatalf("old session's Err = %v, want ErrSessionLost", err)
	}
	if err := old.Mutate(ctx, "coin", addCoins(1)); !errors.Is(err, profileledger.ErrSessionLost) {
		t.Fatalf("a mutation of the old session = %v, want ErrSessionLost", err)
	}
	if err := thief.Mutate(ctx, "coin", addCoins(1)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*profileledger.Session[Player]{"old": old, "thief": thief} {
		select {
		case <-s.Done():
		default:
			t.Errorf("the %s session is not done after Store.Close", name)
		}
	}
	v, err := e.open(t, "players").Get(ctx, "k")
	if err != nil || v.Data.Coins != 102 {
		t.Fatalf("log = %+v, %v; want 102 coins", v.Data, err)
	}
}

// TestEverySessionAStoreReturnedEndsByClose races StartSession with Close:
// no session may come back live from a closed store.
func TestEverySessionAStoreReturnedEndsByClose(t *testing.T) {
	e := newEnv(t)
	for round := range 8 {
		st, err := profileledger.Open(ctxT(t), e.js, "players", template(), profileledger.WithLeaseTTL(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var got []*profileledger.Session[Player]
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				s, err := st.StartSession(ctxT(t), fmt.Sprintf("r%d-%d", round, i))
				if err == nil {
					mu.Lock()
					got = append(got, s)
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(round) * time.Millisecond)
		cctx, cancel := context.WithTimeout(context.Background(), time.Duration(round*5)*time.Millisecond)
		st.Close(cctx)
		cancel()
		wg.Wait()
		for _, s := range got {
			select {
			case <-s.Done():
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: session of %q is live after Close returned and StartSession returned it", round, s.Key())
			}
		}
	}
}

// stopNATS stops the test's server until the returned function starts it
// again (and is registered to run at cleanup, first).
func stopNATS(t *testing.T, e env) (restart func()) {
	t.Helper()
	e.srv.Stop()
	var once sync.Once
	restart = func() { once.Do(func() { e.srv.Restart() }) }
	t.Cleanup(restart)
	return restart
}

// TestEndAndTradeRespectTheirContext: with an append in flight that cannot
// be answered (NATS is down), End and Trade return when their context ends,
// not when the append's own deadline does (before the fix they waited for
// it: 10 s).
func TestEndAndTradeRespectTheirContext(t *testing.T) {
	for _, what := range []string{"End", "Trade"} {
		t.Run(what, func(t *testing.T) {
			e := newEnv(t)
			st := e.open(t, "players", profileledger.WithLeaseTTL(30*time.Second))
			ctx := ctxT(t)
			s := start(t, st, "k")
			other := start(t, st, "other")
			restart := stopNATS(t, e)
			mutated := make(chan error, 1)
			go func() { mutated <- s.Mutate(context.Background(), "coin", addCoins(1)) }() // no deadline: the batch's default, 10 s
			time.Sleep(100 * time.Millisecond)                                             // let it be in flight
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			var err error
			if what == "End" {
				err = s.End(short)
			} else {
				err = profileledger.Trade(short, "swap", s, other, func(a, b *Player) error { a.Coins--; b.Coins++; return nil })
			}
			select {
			case merr := <-mutated:
				t.Fatalf("%s returned (%v) only after the append in flight did (%v): it did not respect its context", what, err, merr)
			default:
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s = %v, want the context's deadline", what, err)
			}
			restart()
			<-mutated
		})
	}
}

// TestLoadReportIsCappedAndCopied: a subject full of garbage is reported,
// but the list is bounded, counted, and the caller's copy is its own.
func TestLoadReportIsCappedAndCopied(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	for i := range 150 {
		if _, err := e.js.Publish(ctx, "pl.players.ev.k", fmt.Appendf(nil, "garbage %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	s := start(t, st, "k")
	r := s.LoadReport()
	if r.SkippedTotal != 150 || len(r.SkippedMessages) != profileledger.MaxReportedSkips {
		t.Fatalf("report lists %d skipped messages of %d counted; want %d of 150", len(r.SkippedMessages), r.SkippedTotal, profileledger.MaxReportedSkips)
	}
	r.SkippedMessages[0].Reason = "changed by the caller"
	if got := s.LoadReport().SkippedMessages[0].Reason; got == "changed by the caller" {
		t.Fatal("LoadReport returned the session's own slice")
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestASnapshotWithoutTheProfileStateIsNotUsed: a snapshot written by a
// version from before the profile state (user ids, handled messages,
// migrations) would read as a profile without them: during a rolling
// deploy a newer server must replay instead of trusting it.
func TestASnapshotWithoutTheProfileStateIsNotUsed(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	s := start(t, st, "k")
	if err := s.AddUserID(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	kv, err := snapshots.OpenKV(ctx, e.js, snapshots.KVConfig{Bucket: "PL_players_SNAPSHOTS"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := kv.Load(ctx, "k", 0)
	if err != nil || !l.Found {
		t.Fatalf("no snapshot: %+v, %v", l, err)
	}
	old := l.Snapshot
	old.Meta = nil // as the older version wrote it
	raw, err := snapshots.Encode(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.PutRaw(ctx, "k", raw); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, "k")
	if err != nil || len(info.UserIDs) != 1 {
		t.Fatalf("Info = %+v, %v; want alice, from the log", info, err)
	}
	s2 := start(t, st, "k")
	if ids := s2.UserIDs(); len(ids) != 1 || !contains(s2.LoadReport().SkippedSnapshots[0], "older version") {
		t.Fatalf("user ids %v, report %+v", ids, s2.LoadReport())
	}
	if err := s2.End(ctx); err != nil {
		t.Fatal(err)
	}
}
