package profileledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
)

func TestDeferredWritesAreFlushedOnIntervalAndAtEnd(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players", profileledger.WithDeferredWrites(time.Hour)) // no timed flush in this test
	ctx := ctxT(t)
	s := start(t, st, "k")
	v0 := s.Version()
	for range 5 {
		if err := s.Mutate(ctx, "coin", addCoins(1)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Data().Coins != 105 {
		t.Fatalf("deferred data = %d, want 105 at once", s.Data().Coins)
	}
	if s.Version() != v0 {
		t.Fatalf("deferred mutations moved the durable version before a flush")
	}
	if v, _ := st.Get(ctx, "k"); v.Data.Coins != 100 {
		t.Fatalf("log has %d coins before a flush, want 100", v.Data.Coins)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := st.Get(ctx, "k"); v.Data.Coins != 105 || v.Version != s.Version() {
		t.Fatalf("after Flush the log has %+v, session version %d", v, s.Version())
	}
	if err := s.Mutate(ctx, "coin", addCoins(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := st.Get(ctx, "k"); v.Data.Coins != 106 {
		t.Fatalf("End did not flush: log has %d coins", v.Data.Coins)
	}
}

func TestDeferredWritesFlushOnTheirOwn(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players", profileledger.WithDeferredWrites(50*time.Millisecond))
	ctx := ctxT(t)
	s := start(t, st, "k")
	if err := s.Mutate(ctx, "coin", addCoins(7)); err != nil {
		t.Fatal(err)
	}
	for {
		v, err := st.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if v.Data.Coins == 107 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("the deferred mutation was never flushed")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestStoreCloseEndsEverySessionCleanly(t *testing.T) {
	e := newEnv(t)
	st, err := profileledger.Open(context.Background(), e.js, "players", template(), profileledger.WithLeaseTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	var ss []*profileledger.Session[Player]
	for i := range 5 {
		s, err := st.StartSession(ctx, fmt.Sprint("p", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Mutate(ctx, "coin", addCoins(i)); err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		<-s.Done()
		if !errors.Is(s.Err(), profileledger.ErrSessionEnded) {
			t.Errorf("%s: Err = %v", s.Key(), s.Err())
		}
	}
	if _, err := st.StartSession(ctx, "p0"); !errors.Is(err, profileledger.ErrClosed) {
		t.Errorf("StartSession after Close = %v, want ErrClosed", err)
	}
	if err := st.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}
	// The leases are released: another store starts at once, with NoWait.
	st2 := e.open(t, "players")
	for i := range 5 {
		s, err := st2.StartSession(ctx, fmt.Sprint("p", i), profileledger.NoWait())
		if err != nil {
			t.Fatalf("p%d after Close: %v", i, err)
		}
		if s.Data().Coins != 100+i {
			t.Errorf("p%d coins = %d", i, s.Data().Coins)
		}
	}
}

// PlayerV2 is Player with a field added later.
type PlayerV2 struct {
	Player
	Gems int `json:"gems"`
}

func TestReconcileFillsNewFieldsFromTheTemplateAndRecordsIt(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	s := start(t, st, "k")
	if err := s.Mutate(ctx, "coin", addCoins(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	st2, err := profileledger.Open(ctx, e.js, "players", PlayerV2{Player: template(), Gems: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close(ctx)
	s2, err := st2.StartSession(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if d := s2.Data(); d.Gems != 3 || d.Coins != 101 {
		t.Fatalf("reconciled data = %+v, want gems 3 from the template and coins 101 from the log", d)
	}
	if err := s2.End(ctx); err != nil {
		t.Fatal(err)
	}
	// The new field is in the log now: a full replay has it.
	v, err := st2.Get(ctx, "k", profileledger.AtTime(time.Now()))
	if err != nil || v.Data.Gems != 3 {
		t.Fatalf("full replay = %+v, %v", v, err)
	}
}

func TestGetAtVersionReadsThePast(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players", profileledger.WithSnapshotEvery(3))
	ctx := ctxT(t)
	s := start(t, st, "k")
	versions := map[uint64]int{}
	for i := 1; i <= 10; i++ {
		if err := s.Mutate(ctx, "coin", addCoins(1)); err != nil {
			t.Fatal(err)
		}
		versions[s.Version()] = 100 + i
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	for v, coins := range versions {
		got, err := st.Get(ctx, "k", profileledger.AtVersion(v))
		if err != nil || got.Data.Coins != coins || got.Version != v {
			t.Errorf("AtVersion(%d) = coins %d version %d, %v; want %d", v, got.Data.Coins, got.Version, err, coins)
		}
	}
	if v, err := st.Get(ctx, "never"); err != nil || v.Exists || v.Data.Coins != 100 {
		t.Errorf("Get of a missing profile = %+v, %v; want the template, Exists false", v, err)
	}
}

func TestConcurrentMutationsKeepEachWritersOrder(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	ctx := ctxT(t)
	s := start(t, st, "k")
	const writers, each = 8, 40
	acked := make([][]uint64, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("w%d-%d", w, i)
				err := s.Mutate(ctx, "item", func(p *Player) error {
					p.Inventory = append(p.Inventory, name)
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				acked[w] = append(acked[w], uint64(i))
			}
		})
	}
	wg.Wait()
	inv := s.Data().Inventory
	if len(inv) != writers*each {
		t.Fatalf("inventory has %d items, want %d", len(inv), writers*each)
	}
	next := make([]int, writers)
	for _, it := range inv {
		var w, i int
		fmt.Sscanf(it, "w%d-%d", &w, &i)
		if i != next[w] {
			t.Fatalf("writer %d's item %d appears where %d was due: acknowledgement order broken", w, i, next[w])
		}
		next[w]++
	}
	v, err := st.Get(ctx, "k")
	if err != nil || len(v.Data.Inventory) != writers*each {
		t.Fatalf("log has %d items, %v", len(v.Data.Inventory), err)
	}
}

func TestOpenTwiceAtOnceAndRefuseAnIncompatibleStream(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			st, err := profileledger.Open(ctx, e.js, "shared", template())
			if err == nil {
				err = st.Close(ctx)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "PL_odd", Subjects: []string{"pl.odd.>"}, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	_, err := profileledger.Open(ctx, e.js, "odd", template())
	if err == nil || !contains(err.Error(), "max_age") {
		t.Fatalf("Open over an incompatible stream = %v, want an error naming max_age", err)
	}
	if _, err := profileledger.Open(ctx, e.js, "bad.name", template()); !errors.Is(err, profileledger.ErrInvalidInput) {
		t.Fatalf("Open with a dotted name = %v", err)
	}
}

func TestADeferredBacklogLargerThanOneMessageIsFlushedInChunks(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players", profileledger.WithDeferredWrites(time.Hour), profileledger.WithMaxEventSize(4096))
	ctx := ctxT(t)
	s := start(t, st, "k")
	for i := range 300 { // ~300 events of ~250 bytes: many messages' worth
		if err := s.Mutate(ctx, "coin", addCoins(1)); err != nil {
			t.Fatalf("mutation %d: %v", i, err)
		}
	}
	if err := s.End(ctx); err != nil {
		t.Fatalf("End with a large backlog: %v", err)
	}
	if v, err := st.Get(ctx, "k"); err != nil || v.Data.Coins != 400 {
		t.Fatalf("log has %+v, %v; want 400 coins", v.Data, err)
	}
}

func TestACorruptSnapshotIsReportedAndNotTrusted(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	ctx := ctxT(t)
	s := start(t, st, "k")
	if err := s.Mutate(ctx, "coin", addCoins(5)); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	// Someone overwrites the newest snapshot with junk (or a disk flips bits).
	kv, err := e.js.KeyValue(ctx, "PL_players_SNAPSHOTS")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte(`{"format":1,"key":"k","version":99,"epoch":1,"size":3,"crc32c":"00000000"}`+"\n"+`{"coins":1000000}`)); err != nil {
		t.Fatal(err)
	}
	s2 := start(t, st, "k")
	if got := s2.Data().Coins; got != 105 {
		t.Fatalf("coins = %d after a corrupt snapshot, want 105 from the log", got)
	}
	if r := s2.LoadReport(); len(r.SkippedSnapshots) == 0 {
		t.Fatalf("the corrupt snapshot was not reported: %+v", r)
	}
}

func TestAForgedEventAfterASnapshotIsSkippedAsInAFullReplay(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	ctx := ctxT(t)
	s := start(t, st, "k")
	if err := s.Mutate(ctx, "coin", addCoins(3)); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil { // writes a snapshot at the end
		t.Fatal(err)
	}
	// A third party appends an event claiming the ended session's epoch.
	forged := fmt.Sprintf(`{"v":1,"id":"forged-1","type":"coin","session":"intruder","epoch":%d,"time":"2026-01-01T00:00:00Z","ops":[{"op":"inc","path":"/coins","value":1000}]}`, s.Epoch())
	if _, err := e.js.Publish(ctx, "pl.players.ev.k", []byte(forged)); err != nil {
		t.Fatal(err)
	}
	fromSnapshot, err := st.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	fullReplay, err := st.Get(ctx, "k", profileledger.AtTime(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if fromSnapshot.Report.SnapshotVersion == 0 {
		t.Fatal("the read did not start from a snapshot: the test is not testing anything")
	}
	if fromSnapshot.Data.Coins != 103 || fullReplay.Data.Coins != 103 {
		t.Fatalf("coins: %d from the snapshot, %d by full replay; want 103 both (the forged event skipped)", fromSnapshot.Data.Coins, fullReplay.Data.Coins)
	}
	if len(fromSnapshot.Report.SkippedMessages) != 1 {
		t.Fatalf("the forged event was not reported: %+v", fromSnapshot.Report)
	}
}

func TestDeferredEndRacingTheTimedFlushLosesNothing(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players", profileledger.WithDeferredWrites(time.Millisecond))
	ctx := ctxT(t)
	for round := range 30 {
		key := fmt.Sprint("k", round)
		s := start(t, st, key)
		for range 20 {
			if err := s.Mutate(ctx, "coin", addCoins(1)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.End(ctx); err != nil {
			t.Fatalf("round %d: End while the timed flush runs: %v", round, err)
		}
		if v, err := st.Get(ctx, key); err != nil || v.Data.Coins != 120 {
			t.Fatalf("round %d: log has %d coins (%v), want 120", round, v.Data.Coins, err)
		}
	}
}

func TestMixedMutationsKeepTheLogAndTheDataInStep(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players", profileledger.WithSnapshotEvery(7))
	ctx := ctxT(t)
	s := start(t, st, "k")
	r := rand.New(rand.NewPCG(8, 9))
	for i := range 300 {
		var err error
		switch r.IntN(6) {
		case 0:
			err = s.Mutate(ctx, "m", func(p *Player) error { p.Coins += r.IntN(5); p.Name = fmt.Sprint("n", r.IntN(3)); return nil })
		case 1:
			err = s.Mutate(ctx, "m", func(p *Player) error {
				p.Stats[fmt.Sprint("s", r.IntN(4))] = r.IntN(3)
				if r.IntN(3) == 0 {
					delete(p.Stats, fmt.Sprint("s", r.IntN(4)))
				}
				return nil
			})
		case 2:
			err = s.Mutate(ctx, "m", func(p *Player) error {
				if len(p.Inventory) > 0 && r.IntN(2) == 0 {
					p.Inventory = p.Inventory[1:]
				} else {
					p.Inventory = append(p.Inventory, fmt.Sprint("i", i))
				}
				return nil
			})
		case 3: // T still has "level": the document must get it back
			err = s.Apply(ctx, "a", profileledger.Remove("/level"))
		case 4: // T has no "extra": the document must drop it
			err = s.Apply(ctx, "a", profileledger.Add("/extra", i), profileledger.Inc("/coins", 1))
		case 5:
			err = s.Apply(ctx, "a", profileledger.Set("/stats", map[string]int{"z": i}))
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	want := s.Data()
	full, err := st.Get(ctx, "k", profileledger.AtTime(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	fromSnap, err := st.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(full.Data) != fmt.Sprint(want) || fmt.Sprint(fromSnap.Data) != fmt.Sprint(want) {
		t.Fatalf("session %+v\nfull replay %+v\nfrom snapshot %+v", want, full.Data, fromSnap.Data)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	// A new session (from the end snapshot) continues from the same data.
	s2 := start(t, st, "k")
	if fmt.Sprint(s2.Data()) != fmt.Sprint(want) {
		t.Fatalf("next session %+v, want %+v", s2.Data(), want)
	}
}

func TestMoveCopyAndTestOps(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players", profileledger.WithMemoryStorage())
	ctx := ctxT(t)
	s := start(t, st, "k")
	if err := s.Apply(ctx, "setup", profileledger.Set("/stats", map[string]int{"a": 1})); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, "copy", profileledger.Copy("/stats/a", "/stats/b"), profileledger.Move("/stats/a", "/stats/c")); err != nil {
		t.Fatal(err)
	}
	if got := s.Data().Stats; len(got) != 2 || got["b"] != 1 || got["c"] != 1 {
		t.Fatalf("stats after copy and move = %v, want b:1 c:1", got)
	}
	v := s.Version()
	// A failing Test op refuses the whole Apply: the Inc before it too.
	err := s.Apply(ctx, "guarded", profileledger.Inc("/coins", 5), profileledger.Test("/level", 99))
	if !errors.Is(err, profileledger.ErrInvalidInput) {
		t.Fatalf("Apply with a failing Test = %v, want ErrInvalidInput", err)
	}
	if s.Version() != v || s.Data().Coins != 100 {
		t.Fatalf("a failed Test changed the session: version %d (was %d), coins %d", s.Version(), v, s.Data().Coins)
	}
	if err := s.Apply(ctx, "guarded", profileledger.Test("/level", 1), profileledger.Inc("/coins", 5)); err != nil {
		t.Fatalf("Apply with a passing Test: %v", err)
	}
	if s.Data().Coins != 105 {
		t.Fatalf("coins = %d, want 105", s.Data().Coins)
	}
}

func TestSkipBadEventsFoldsPastAnEventThatDoesNotApply(t *testing.T) {
	e := newEnv(t)
	strict := e.open(t, "players")
	lenient := e.open(t, "players", profileledger.WithSkipBadEvents())
	ctx := ctxT(t)
	s := start(t, strict, "k")
	if err := s.Mutate(ctx, "coin", addCoins(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	bad := fmt.Sprintf(`{"v":1,"id":"bad-1","type":"x","session":"%s","epoch":%d,"time":"2026-01-01T00:00:00Z","ops":[{"op":"inc","path":"/nope","value":1}]}`, s.ID(), s.Epoch())
	ack, err := e.js.Publish(ctx, "pl.players.ev.k", []byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	at := profileledger.AtTime(time.Now()) // a full replay, past the end snapshot
	if _, err := strict.Get(ctx, "k", at); !errors.Is(err, profileledger.ErrBadEvent) {
		t.Fatalf("strict Get = %v, want ErrBadEvent", err)
	}
	v, err := lenient.Get(ctx, "k", at)
	if err != nil {
		t.Fatalf("lenient Get = %v", err)
	}
	if v.Data.Coins != 102 || len(v.Report.SkippedMessages) != 1 || v.Report.SkippedMessages[0].Seq != ack.Sequence {
		t.Fatalf("lenient Get = coins %d, report %+v; want 102 and the bad event at %d reported", v.Data.Coins, v.Report, ack.Sequence)
	}
}
