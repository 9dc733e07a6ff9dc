package natstest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/natstest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRestartKeepsStreamData(t *testing.T) {
	srv := natstest.Run(t, natstest.SyncAlways())
	url, dir := srv.URL(), srv.StoreDir()
	_, js := natstest.Connect(t, url)
	ctx := testContext(t)

	stream := createStream(ctx, t, js, 1)
	publish(ctx, t, js, 0, 3)

	srv.Restart(t)
	if srv.URL() != url || srv.StoreDir() != dir {
		t.Fatalf("after Restart: URL %s, StoreDir %s; want %s, %s", srv.URL(), srv.StoreDir(), url, dir)
	}
	expectMessages(ctx, t, stream, 3)
}

func TestShutdownIsIdempotent(t *testing.T) {
	srv := natstest.Run(t)
	srv.Shutdown()
	srv.Shutdown()
	if srv.Running() || srv.NATSServer() != nil {
		t.Fatalf("server still running after Shutdown")
	}
	srv.Restart(t)
	if !srv.Running() {
		t.Fatalf("server not running after Restart")
	}
}

func TestClusterR3StreamSurvivesLosingOneNode(t *testing.T) {
	c := natstest.RunCluster(t, 3)
	if c.Leader(t) == nil {
		t.Fatalf("no meta leader")
	}
	_, js := natstest.Connect(t, c.URLs())
	ctx := testContext(t)

	stream := createStream(ctx, t, js, 3)
	publish(ctx, t, js, 0, 3)

	old := c.StreamLeader(t, "", "EVENTS")
	old.Shutdown()
	if now := c.StreamLeader(t, "", "EVENTS"); now == old {
		t.Fatalf("stopped server %s still leads the stream", old.Name())
	}
	publish(ctx, t, js, 3, 2)
	expectMessages(ctx, t, stream, 5)

	old.Restart(t)
	c.WaitReady(t)
	expectMessages(ctx, t, stream, 5)
}

// testContext returns a context that ends with the test or after 30 s.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func createStream(ctx context.Context, t testing.TB, js jetstream.JetStream, replicas int) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "EVENTS",
		Subjects: []string{"ev.>"},
		Storage:  jetstream.FileStorage,
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
