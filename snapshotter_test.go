package profileledger_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/pltest"
)

// crashedHolder writes n mutations to key from a store on its own
// connection, then cuts the connection: the holder dies without End, so
// no snapshot is written at its end.
func crashedHolder(t *testing.T, url, key string, n int) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	st, err := profileledger.Open(ctxT(t), js, "players", template(), profileledger.WithLeaseTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, st, key)
	for range n {
		if err := s.Mutate(ctxT(t), "coins", addCoins(1)); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	st.Close(ctx) // abandons the session: the connection is gone
}

func TestTheSnapshotterCutsTheReplayOfAProfileWhoseHolderCrashed(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	// 254 mutations and the session's fence: 255 events, one short of the
	// holder's own snapshot (every 256).
	crashedHolder(t, e.srv.URL(), "crashed", 254)
	v, err := st.Get(ctxT(t), "crashed")
	if err != nil {
		t.Fatal(err)
	}
	if v.Report.Replayed != 255 || v.Report.SnapshotVersion != 0 {
		t.Fatalf("before the snapshotter: replayed %d from snapshot %d, want 255 from none", v.Report.Replayed, v.Report.SnapshotVersion)
	}
	p, err := st.Snapshotter(100)
	if err != nil {
		t.Fatal(err)
	}
	runProjection(t, p)
	waitFor(t, "a snapshot", func() bool { return p.Counts().Snapshots >= 2 && p.Counts().LastSeq >= v.Version })
	after, err := st.Get(ctxT(t), "crashed")
	if err != nil {
		t.Fatal(err)
	}
	if after.Report.Replayed >= 100 || after.Report.SnapshotVersion == 0 || len(after.Report.SkippedSnapshots) > 0 {
		t.Fatalf("after the snapshotter: replayed %d from snapshot %d (skipped %v)", after.Report.Replayed, after.Report.SnapshotVersion, after.Report.SkippedSnapshots)
	}
	if after.Data.Coins != v.Data.Coins || after.Version != v.Version {
		t.Fatalf("from the snapshot: %d coins at %d; from the log: %d at %d", after.Data.Coins, after.Version, v.Data.Coins, v.Version)
	}
	// The next holder starts from it too, and writes on.
	s := start(t, st, "crashed")
	if r := s.LoadReport(); r.Replayed >= 100 || r.SnapshotVersion == 0 {
		t.Fatalf("the next holder replayed %d from snapshot %d", r.Replayed, r.SnapshotVersion)
	}
	if s.Data().Coins != v.Data.Coins {
		t.Fatalf("the next holder has %d coins, want %d", s.Data().Coins, v.Data.Coins)
	}
}

func TestSnapshotsTheSnapshotterWritesWhileHoldersWriteAreNeverAheadOfTheLog(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players", profileledger.WithSnapshotEvery(7))
	other := e.open(t, "players", profileledger.WithSnapshotEvery(7))
	p, err := st.Snapshotter(3)
	if err != nil {
		t.Fatal(err)
	}
	runProjection(t, p)

	var stop atomic.Bool
	var wg sync.WaitGroup
	// One holder writes without pause, group commits included.
	s := start(t, st, "busy")
	for range 3 {
		wg.Go(func() {
			for !stop.Load() {
				s.Apply(ctxT(t), "tick", profileledger.Inc("/coins", 1), profileledger.Add("/inventory/-", "x"))
			}
		})
	}
	// Another profile hops between two stores, handed over each time.
	wg.Go(func() {
		stores := []*profileledger.Store[Player]{st, other}
		for i := 0; !stop.Load(); i++ {
			h, err := stores[i%2].StartSession(ctxT(t), "hopper")
			if err != nil {
				t.Error(err)
				return
			}
			for range 5 {
				h.Mutate(ctxT(t), "lvl", func(p *Player) error { p.Level++; return nil })
			}
		}
	})
	time.Sleep(1500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	waitFor(t, "the snapshotter to catch up", func() bool {
		s, err := p.Status(ctxT(t))
		return err == nil && s.LagEvents() == 0
	})
	if p.Counts().Snapshots == 0 {
		t.Fatal("the snapshotter wrote no snapshot")
	}
	// Every snapshot in the bucket, the snapshotter's and the holders',
	// equals the fold of the log at its version.
	rep := pltest.Audit(t, e.js, "players")
	if rep.Snapshots == 0 {
		t.Fatal("the audit saw no snapshot")
	}
	for _, key := range []string{"busy", "hopper"} {
		v, err := st.Get(ctxT(t), key)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Report.SkippedSnapshots) > 0 {
			t.Errorf("%q: snapshots not trusted: %v", key, v.Report.SkippedSnapshots)
		}
	}
	t.Logf("snapshotter: %+v; audit: %d snapshots, %d events", p.Counts(), rep.Snapshots, rep.Events)
}
