package snapshots_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/pltest"
	"github.com/profileledger/profileledger/snapshots"
	"github.com/profileledger/profileledger/snapshots/snapshotstest"
)

func TestKVConformance(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	n := 0
	snapshotstest.Run(t, func(t *testing.T) snapshotstest.Target {
		n++
		return openKV(t, js, snapshots.KVConfig{Bucket: fmt.Sprintf("SNAP_%d", n), History: 3})
	})
}

// TestKVConformanceR3 runs the suite on a replicated bucket, where JetStream
// reports compare-and-set conflicts with another error code (10164) and
// followers may answer reads.
func TestKVConformanceR3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := pltest.RunCluster(t, 3)
	js := pltest.Connect(t, c.URLs())
	n := 0
	snapshotstest.Run(t, func(t *testing.T) snapshotstest.Target {
		n++
		return openKV(t, js, snapshots.KVConfig{Bucket: fmt.Sprintf("SNAP_%d", n), History: 3, Replicas: 3})
	})
}

func TestOpenKVConcurrentlySucceeds(t *testing.T) {
	srv := pltest.Run(t)
	ctx := testContext(t)
	const procs = 8
	var wg sync.WaitGroup
	errs := make([]error, procs)
	for i := range procs {
		js := pltest.Connect(t, srv.URL()) // one connection per "process"
		wg.Go(func() {
			_, errs[i] = snapshots.OpenKV(ctx, js, snapshots.KVConfig{Bucket: "SNAP"})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("OpenKV #%d: %v", i, err)
		}
	}
}

func TestOpenKVRejectsIncompatibleBucket(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	ctx := testContext(t)
	openKV(t, js, snapshots.KVConfig{Bucket: "SNAP", History: 5})

	tests := []struct {
		name string
		cfg  snapshots.KVConfig
		why  string
	}{
		{"history", snapshots.KVConfig{Bucket: "SNAP", History: 7}, `bucket "SNAP" has History 5, want 7`},
		{"default history", snapshots.KVConfig{Bucket: "SNAP", History: 0, Replicas: 1}, ""},
		{"replicas", snapshots.KVConfig{Bucket: "SNAP", History: 5, Replicas: 3}, `bucket "SNAP" has Replicas 1, want 3`},
		{"storage", snapshots.KVConfig{Bucket: "SNAP", Storage: jetstream.MemoryStorage}, `bucket "SNAP" has Storage`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := snapshots.OpenKV(ctx, js, tt.cfg)
			if tt.why == "" {
				if err != nil {
					t.Fatalf("OpenKV: %v", err)
				}
				return
			}
			if !errors.Is(err, snapshots.ErrIncompatibleBucket) || !strings.Contains(err.Error(), tt.why) {
				t.Fatalf("OpenKV = %v, want ErrIncompatibleBucket saying %q", err, tt.why)
			}
		})
	}

	st, err := js.KeyValue(ctx, "SNAP")
	if err != nil {
		t.Fatal(err)
	}
	status, err := st.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if status.History() != 5 {
		t.Fatalf("bucket history changed to %d", status.History())
	}
}

func TestOpenKVChecksConfig(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	ctx := testContext(t)
	for _, cfg := range []snapshots.KVConfig{
		{},
		{Bucket: "SNAP", History: 65},
		{Bucket: "SNAP", History: -1},
		{Bucket: "SNAP", MaxValueSize: -1},
		{Bucket: "SNAP", MaxValueSize: 64 << 20}, // beyond the default max_payload of 1 MiB
		{Bucket: "bad.name"},
	} {
		if _, err := snapshots.OpenKV(ctx, js, cfg); err == nil {
			t.Errorf("OpenKV(%+v) succeeded", cfg)
		}
	}
	kv := openKV(t, js, snapshots.KVConfig{Bucket: "SNAP"})
	if kv.History() != snapshots.DefaultHistory {
		t.Errorf("default History = %d, want %d", kv.History(), snapshots.DefaultHistory)
	}
	// The default 1 MiB is lowered to leave room for headers within the
	// server's max_payload of 1 MiB.
	if got := kv.MaxValueSize(); got <= snapshots.DefaultMaxValueSize-1024 || got > snapshots.DefaultMaxValueSize {
		t.Errorf("default MaxValueSize = %d", got)
	}
}

func TestKVSurvivesRestart(t *testing.T) {
	srv := pltest.Run(t, pltest.SyncAlways())
	js := pltest.Connect(t, srv.URL())
	nc := js.Conn()
	ctx := testContext(t)
	kv := openKV(t, js, snapshots.KVConfig{Bucket: "SNAP"})
	want := snapshots.Snapshot{Key: "user:1", Version: 7, Epoch: 2, State: []byte(`{"coins":3}`)}
	if err := kv.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	// A request written before the client notices the restart is lost with
	// the old socket: use the connection once a round trip proves it new.
	for deadline := time.Now().Add(10 * time.Second); nc.Stats().Reconnects == 0 || nc.FlushTimeout(200*time.Millisecond) != nil; {
		if time.Now().After(deadline) {
			t.Fatal("the client did not reconnect after the restart")
		}
		time.Sleep(10 * time.Millisecond)
	}
	kv = openKV(t, js, snapshots.KVConfig{Bucket: "SNAP"})
	l, err := kv.Load(ctx, "user:1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Found || l.Snapshot.Version != 7 || string(l.Snapshot.State) != `{"coins":3}` {
		t.Fatalf("after restart Load = %+v", l)
	}
}

func TestKVLoadFailsWhenServerIsDown(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	kv := openKV(t, js, snapshots.KVConfig{Bucket: "SNAP"})
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := kv.Load(ctx, "k", 0); err == nil {
		t.Fatalf("Load with the server down succeeded")
	}
}

func openKV(t testing.TB, js jetstream.JetStream, cfg snapshots.KVConfig) *snapshots.KV {
	t.Helper()
	kv, err := snapshots.OpenKV(testContext(t), js, cfg)
	if err != nil {
		t.Fatalf("OpenKV(%+v): %v", cfg, err)
	}
	return kv
}

// testContext returns a context that ends with the test or after 30 s.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
