package pltest_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/pltest"
)

// proxied starts a server and a proxy in front of it, and returns the
// proxy, a JetStream connection through it, and a stream to publish to.
func proxied(t *testing.T) (*pltest.FaultProxy, jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	srv := pltest.Run(t)
	p := pltest.Proxy(t, srv.URL())
	js := pltest.Connect(t, p.URL())
	stream := createStream(testContext(t), t, js, 1, jetstream.MemoryStorage)
	return p, js, stream
}

func TestFreezeHoldsTrafficUntilThaw(t *testing.T) {
	p, js, stream := proxied(t)
	ctx := testContext(t)
	p.Freeze()
	acked := make(chan error, 1)
	go func() {
		_, err := js.Publish(ctx, "ev.a", []byte("m0"))
		acked <- err
	}()
	// Sequencing only: give the publish time to reach the frozen proxy.
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-acked:
		t.Fatalf("a publish through a frozen proxy returned: %v", err)
	default:
	}
	p.Thaw()
	if err := <-acked; err != nil {
		t.Fatalf("the held publish after Thaw: %v", err)
	}
	expectMessages(ctx, t, stream, 1)
}

func TestCutClosesConnectionsAndRefusesNewOnesUntilHeal(t *testing.T) {
	p, js, stream := proxied(t)
	ctx := testContext(t)
	nc := js.Conn()
	disconnected := disconnects(nc)
	p.Cut()
	<-disconnected
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(p.URL(), "nats://"), time.Second); err == nil {
		c.Close()
		t.Fatal("a cut proxy accepted a connection")
	}
	p.Heal()
	reconnected(t, nc)
	publish(ctx, t, js, 0, 1)
	expectMessages(ctx, t, stream, 1)
}

func TestResetAbortsConnectionsAndAcceptsNewOnes(t *testing.T) {
	p, js, stream := proxied(t)
	ctx := testContext(t)
	if n := p.Reset(); n != 1 {
		t.Fatalf("Reset aborted %d connections, want 1", n)
	}
	reconnected(t, js.Conn())
	publish(ctx, t, js, 0, 1)
	expectMessages(ctx, t, stream, 1)
}

// TestLatencyDelaysBothWays checks a lower bound only: a round trip
// through a proxy with latency d each way cannot take less than 2d.
func TestLatencyDelaysBothWays(t *testing.T) {
	p, js, _ := proxied(t)
	const d = 50 * time.Millisecond
	p.Latency(d, 10*time.Millisecond)
	nc := js.Conn()
	for range 3 {
		t0 := time.Now()
		if err := nc.FlushTimeout(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		if rtt := time.Since(t0); rtt < 2*(d-10*time.Millisecond) {
			t.Fatalf("round trip %v through %v ± 10 ms each way", rtt, d)
		}
	}
	p.Latency(0, 0)
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestDropNextReplyLosesOneAcknowledgement(t *testing.T) {
	p, js, stream := proxied(t)
	ctx := testContext(t)
	publish(ctx, t, js, 0, 1)
	dropped := p.DropNextReply("ev.*")
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err := js.Publish(pctx, "ev.a", []byte("m1"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish whose ack was dropped = %v, want a timeout", err)
	}
	select {
	case <-dropped:
	default:
		t.Fatal("the dropped channel is open after the drop")
	}
	// The server acted on it: the message is stored, once.
	publish(ctx, t, js, 2, 1)
	expectMessages(ctx, t, stream, 3)
}

func TestDropNextReplyMatchesSubjects(t *testing.T) {
	p, js, _ := proxied(t)
	ctx := testContext(t)
	dropped := p.DropNextReplyFunc(func(s string) bool { return s == "ev.b" })
	publish(ctx, t, js, 0, 1) // ev.a: not matched, acknowledged
	select {
	case <-dropped:
		t.Fatal("a publish to ev.a dropped the reply armed for ev.b")
	default:
	}
	for _, tc := range []struct {
		pattern, subject string
		match            bool
	}{
		{"ev.a", "ev.a", true},
		{"ev.*", "ev.a", true},
		{"ev.>", "ev.a.b", true},
		{"ev.>", "ev", false},
		{"ev.*", "ev.a.b", false},
		{"*.a", "ev.a", true},
		{"ev.a", "ev.b", false},
	} {
		dropped := p.DropNextReply(tc.pattern)
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := js.Publish(pctx, tc.subject, []byte("x"))
		cancel()
		if got := err != nil; got != tc.match {
			t.Errorf("pattern %q, subject %q: reply dropped %v, want %v (%v)", tc.pattern, tc.subject, got, tc.match, err)
		}
		if !tc.match {
			p.DropNextReplyFunc(func(string) bool { return false }) // disarm
		} else {
			<-dropped
		}
	}
}
