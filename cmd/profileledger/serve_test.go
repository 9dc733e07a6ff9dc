package main

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/embedded"
)

func TestServeStartsAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := startServe(t, ctx, "-listen", "127.0.0.1:0", "-data", t.TempDir())

	js := connect(t, srv.url)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	st, err := js.CreateStream(sctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.Publish(sctx, "t.1", []byte("hello")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if info, err := st.Info(sctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream info = %+v, %v; want 1 message", info, err)
	}

	cancel()
	srv.waitExit(t, exitOK)
	if !regexp.MustCompile(`-sync-always`).MatchString(srv.stderr.String()) {
		t.Errorf("no durability warning without -sync-always; stderr:\n%s", srv.stderr.String())
	}
}

// TestServeFormsAClusterOfThree starts three serves with -name, -cluster and
// -routes, waits until each prints its URL (JetStream ready), keeps an R3
// stream on them and stops them.
func TestServeFormsAClusterOfThree(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ports := freePorts(t, 6)
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3+i]))
	}
	var members []*serving
	for i := range 3 {
		members = append(members, startServeAsync(t, ctx,
			"-name", fmt.Sprintf("n%d", i+1),
			"-listen", fmt.Sprintf("127.0.0.1:%d", ports[i]),
			"-data", t.TempDir(),
			"-cluster", fmt.Sprintf("127.0.0.1:%d", ports[3+i]),
			"-routes", strings.Join(routes, ","),
		))
	}
	var urls []string
	for _, m := range members {
		m.waitURL(t)
		urls = append(urls, m.url)
		if !strings.Contains(m.stdout.String(), "waiting for a majority") {
			t.Errorf("a member did not say that it waits for the others:\n%s", m.stdout.String())
		}
	}

	js := connect(t, strings.Join(urls, ","))
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	st, err := js.CreateStream(sctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
	if err != nil {
		t.Fatalf("create R3 stream: %v", err)
	}
	if _, err := js.Publish(sctx, "t.1", []byte("hello")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	info, err := st.Info(sctx)
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream info = %+v, %v; want a leader and two replicas", info, err)
	}
	if info.Cluster.Name != embedded.ClusterName {
		t.Errorf("cluster name %q, want %q", info.Cluster.Name, embedded.ClusterName)
	}

	cancel()
	for _, m := range members {
		m.waitExit(t, exitOK)
	}
}

// TestServeMemberWaitsForAMajorityUntilStopped: a member whose routes
// lead nowhere waits, says so, and exits 0 when it is stopped.
func TestServeMemberWaitsForAMajorityUntilStopped(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ports := freePorts(t, 4)
	s := startServeAsync(t, ctx,
		"-name", "lonely",
		"-listen", fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"-data", t.TempDir(),
		"-cluster", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"-routes", fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", ports[1], ports[2], ports[3]),
	)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(s.stdout.String(), "waiting for a majority"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not say that it waits; stdout:\n%s", s.stdout.String())
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) { // it listens: the wait is JetStream's
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve does not listen: %v", err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	s.waitExit(t, exitOK)
	if out := s.stdout.String(); !strings.Contains(out, "stopped before JetStream was ready") || urlRE.MatchString(out) {
		t.Errorf("a member stopped while waiting should say so and print no URL; stdout:\n%s", out)
	}
}

func TestServeRefusesBadClusterFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"routes without cluster", []string{"-routes", "127.0.0.1:6222"}, "-routes needs -cluster"},
		{"cluster without a port", []string{"-cluster", "127.0.0.1"}, "-cluster"},
		{"cluster on port 0", []string{"-cluster", "127.0.0.1:0"}, "the other members must know the port"},
		{"route without a port", []string{"-cluster", "127.0.0.1:6222", "-routes", "nats-route://127.0.0.1"}, "-routes"},
		{"route of another scheme", []string{"-cluster", "127.0.0.1:6222", "-routes", "http://127.0.0.1:6222"}, "want nats-route://host:port"},
		{"name with a space", []string{"-name", "a b"}, "-name"},
		{"empty name", []string{"-name", ""}, "-name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "-listen", "127.0.0.1:0", "-data", t.TempDir()}, tt.args...)
			code, stdout, stderr := run(t, t.Context(), args...)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, stderr)
			}
			if stdout != "" {
				t.Errorf("usage error wrote to stdout:\n%s", stdout)
			}
		})
	}
}

func TestParseRoutes(t *testing.T) {
	got, err := parseRoutes(" 127.0.0.1:6222, nats-route://127.0.0.1:6223,nats://localhost:6224,")
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, u := range got {
		s = append(s, u.String())
	}
	want := "nats-route://127.0.0.1:6222 nats-route://127.0.0.1:6223 nats://localhost:6224"
	if strings.Join(s, " ") != want {
		t.Errorf("parseRoutes = %q, want %q", s, want)
	}
}

// serving is a serve command running in a goroutine of the test.
type serving struct {
	stdout, stderr syncBuffer
	done           chan int
	url            string
}

// startServe runs serve with args until ctx ends and returns once it
// printed its URL.
func startServe(t *testing.T, ctx context.Context, args ...string) *serving {
	t.Helper()
	s := startServeAsync(t, ctx, args...)
	s.waitURL(t)
	return s
}

// startServeAsync runs serve with args until ctx ends. The test must end ctx
// and wait for the exit (waitExit) before it returns.
func startServeAsync(t *testing.T, ctx context.Context, args ...string) *serving {
	t.Helper()
	s := &serving{done: make(chan int, 1)}
	go func() {
		s.done <- NewMain(&s.stdout, &s.stderr).Run(ctx, append([]string{"serve"}, args...))
	}()
	return s
}

var urlRE = regexp.MustCompile(`NATS with JetStream at (nats://127\.0\.0\.1:\d+)`)

func (s *serving) waitURL(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		select {
		case code := <-s.done:
			s.done <- code
			t.Fatalf("serve exited early with %d; stderr:\n%s", code, s.stderr.String())
		default:
		}
		if m := urlRE.FindStringSubmatch(s.stdout.String()); m != nil {
			s.url = m[1]
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve printed no URL; stdout:\n%s\nstderr:\n%s", s.stdout.String(), s.stderr.String())
		}
	}
}

// waitExit waits for serve to return (its ctx must have ended) and checks
// its exit code.
func (s *serving) waitExit(t *testing.T, want int) {
	t.Helper()
	select {
	case code := <-s.done:
		if code != want {
			t.Fatalf("serve exited with %d, want %d; stderr:\n%s", code, want, s.stderr.String())
		}
		if !strings.Contains(s.stdout.String(), "stopped") {
			t.Errorf("serve did not say it stopped; stdout:\n%s", s.stdout.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context ended")
	}
}

// connect connects to url (one or comma-separated) until the test ends.
func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}
