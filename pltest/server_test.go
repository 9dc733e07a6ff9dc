package pltest_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/pltest"
)

func TestRestartKeepsStreamData(t *testing.T) {
	for _, stop := range []string{"Restart", "Kill then Start"} {
		t.Run(stop, func(t *testing.T) {
			srv := pltest.Run(t, pltest.SyncAlways())
			url, dir := srv.URL(), srv.StoreDir()
			js := pltest.Connect(t, url)
			ctx := testContext(t)

			stream := createStream(ctx, t, js, 1, jetstream.FileStorage)
			publish(ctx, t, js, 0, 3)

			if stop == "Restart" {
				srv.Restart()
			} else {
				srv.Kill()
				srv.Start()
			}
			if srv.URL() != url || srv.StoreDir() != dir {
				t.Fatalf("after %s: URL %s, StoreDir %s; want %s, %s", stop, srv.URL(), srv.StoreDir(), url, dir)
			}
			reconnected(t, js.Conn())
			expectMessages(ctx, t, stream, 3)
			publish(ctx, t, js, 3, 1) // the same connection, reconnected
			expectMessages(ctx, t, stream, 4)
		})
	}
}

func TestStopAndKillAreIdempotent(t *testing.T) {
	srv := pltest.Run(t)
	srv.Stop()
	srv.Stop()
	srv.Kill()
	if srv.Running() || srv.NATSServer() != nil {
		t.Fatalf("server still running after Stop")
	}
	srv.Start()
	srv.Start()
	if !srv.Running() {
		t.Fatalf("server not running after Start")
	}
	srv.Kill()
	srv.Kill()
	if srv.Running() {
		t.Fatalf("server still running after Kill")
	}
	srv.Restart()
	if !srv.Running() {
		t.Fatalf("server not running after Restart")
	}
}

// TestKillUndoesWhatACleanShutdownWrites checks Kill's promise about the
// disk: the store directory after Kill is the one at the kill, not the
// one a clean shutdown leaves (which writes each stream's index.db), and
// the server recovers its messages from it.
func TestKillUndoesWhatACleanShutdownWrites(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	ctx := testContext(t)
	createStream(ctx, t, js, 1, jetstream.FileStorage)
	publish(ctx, t, js, 0, 3)
	index := filepath.Join(srv.StoreDir(), "jetstream", "$G", "streams", "EVENTS", "msgs", "index.db")
	_, errBefore := os.Stat(index)

	if !os.IsNotExist(errBefore) {
		t.Fatalf("index.db exists before any shutdown (%v): this test cannot tell a kill from a stop", errBefore)
	}
	srv.Kill()
	if _, err := os.Stat(index); !os.IsNotExist(err) {
		t.Fatalf("index.db after the kill: %v — the kill left what the shutdown wrote", err)
	}
	srv.Start()
	reconnected(t, js.Conn())
	expectMessages(ctx, t, mustStream(ctx, t, js), 3)

	srv.Stop() // a clean stop writes it
	if _, err := os.Stat(index); err != nil {
		t.Fatalf("index.db after a clean stop: %v", err)
	}
}

func TestKillResetsConnectionsAndRefusesNewOnes(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	disconnected := disconnects(js.Conn())
	srv.Kill()
	select {
	case <-disconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("the client was not disconnected by Kill")
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(srv.URL(), "nats://"), time.Second); err == nil {
		t.Fatal("a killed server's URL accepted a connection")
	}
}

func TestPortAndMemoryStorage(t *testing.T) {
	port := freePort(t)
	srv := pltest.Run(t, pltest.Port(port), pltest.MemoryStorage())
	if want := fmt.Sprintf("nats://127.0.0.1:%d", port); srv.URL() != want {
		t.Fatalf("URL %s, want %s", srv.URL(), want)
	}
	js := pltest.Connect(t, srv.URL())
	ctx := testContext(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FILE", Subjects: []string{"f.>"}, Storage: jetstream.FileStorage}); err == nil {
		if _, err := js.Publish(ctx, "f.a", []byte("x")); err == nil {
			t.Fatal("a memory-only server stored a message in a file stream")
		}
	}
	stream := createStream(ctx, t, js, 1, jetstream.MemoryStorage)
	publish(ctx, t, js, 0, 2)
	expectMessages(ctx, t, stream, 2)
}

func TestClusterR3StreamSurvivesLosingOneNode(t *testing.T) {
	for _, stop := range []string{"Stop", "Kill"} {
		t.Run(stop, func(t *testing.T) {
			c := pltest.RunCluster(t, 3)
			if c.Leader() == nil {
				t.Fatalf("no meta leader")
			}
			js := pltest.Connect(t, c.URLs())
			ctx := testContext(t)

			stream := createStream(ctx, t, js, 3, jetstream.FileStorage)
			publish(ctx, t, js, 0, 3)

			old := c.StreamLeader("EVENTS")
			if stop == "Stop" {
				old.Stop()
			} else {
				old.Kill()
			}
			if now := c.StreamLeader("EVENTS"); now == old {
				t.Fatalf("stopped server %s still leads the stream", old.Name())
			}
			publish(ctx, t, js, 3, 2)
			expectMessages(ctx, t, stream, 5)

			old.Start()
			c.WaitReady()
			expectMessages(ctx, t, stream, 5)
		})
	}
}

// reconnected waits until nc has reconnected and a round trip to the
// server succeeds. (A request published within milliseconds of a
// reconnect is sometimes never answered, with or without pltest's relay
// in between; a test that restarts a server should not depend on it.)
func reconnected(t testing.TB, nc *nats.Conn) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for nc.FlushTimeout(500*time.Millisecond) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not reconnected after 30 s: %v", nc.Status())
		}
	}
}

// disconnects returns a channel that receives when nc is disconnected.
func disconnects(nc *nats.Conn) <-chan struct{} {
	c := make(chan struct{}, 1)
	nc.SetDisconnectErrHandler(func(*nats.Conn, error) {
		select {
		case c <- struct{}{}:
		default:
		}
	})
	return c
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func mustStream(ctx context.Context, t testing.TB, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	s, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testContext returns a context that ends with the test or after 30 s.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func createStream(ctx context.Context, t testing.TB, js jetstream.JetStream, replicas int, storage jetstream.StorageType) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "EVENTS",
		Subjects: []string{"ev", "ev.>"},
		Storage:  storage,
		Replicas: replicas,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	return s
}

// publish publishes n messages "m<i>" for i from first, each acknowledged.
func publish(ctx context.Context, t testing.TB, js jetstream.JetStream, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		if _, err := js.Publish(ctx, "ev.a", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatalf("publish m%d: %v", i, err)
		}
	}
}

// expectMessages checks that the stream holds exactly m0..m(n-1) in order.
func expectMessages(ctx context.Context, t testing.TB, s jetstream.Stream, n int) {
	t.Helper()
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	if info.State.Msgs != uint64(n) {
		t.Fatalf("stream has %d messages, want %d", info.State.Msgs, n)
	}
	for i := range n {
		msg, err := s.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatalf("get message %d: %v", i+1, err)
		}
		if want := fmt.Sprintf("m%d", i); string(msg.Data) != want {
			t.Fatalf("message %d = %q, want %q", i+1, msg.Data, want)
		}
	}
}
