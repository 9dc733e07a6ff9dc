package natstest

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// readyTimeout bounds the wait for a server's listeners.
	readyTimeout = 10 * time.Second
	// healthyTimeout bounds the wait for JetStream to be healthy after a
	// (re)start: meta group current, streams and consumers recovered.
	healthyTimeout = 30 * time.Second
	// pollInterval is how often waits re-check the servers.
	pollInterval = 10 * time.Millisecond
)

// Option changes how Run and RunCluster configure their servers.
type Option func(*config)

type config struct {
	syncAlways bool
}

func newConfig(opts []Option) *config {
	cfg := &config{}
	for _, o := range opts {
		o(cfg)
	}
	return cfg
}

// SyncAlways makes JetStream fsync every write before acknowledging it
// (sync_interval: always), as a production server should for durability.
// Without it a server uses the default interval of two minutes.
func SyncAlways() Option {
	return func(c *config) { c.syncAlways = true }
}

// Server is one embedded nats-server with JetStream, listening for clients
// on 127.0.0.1 with a port chosen at its first start and kept across
// restarts, its store in a t.TempDir. Its methods are safe for concurrent
// use.
type Server struct {
	name string
	logs *logBuffer

	mu   sync.Mutex
	opts *server.Options // template for every start; ports pinned after the first
	ns   *server.Server  // nil while stopped
}

// Run starts a single server with JetStream and registers a t.Cleanup that
// shuts it down. It returns once JetStream is ready; it fails t if the
// server does not start.
func Run(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := newConfig(opts)
	s := newServer(t, "natstest", cfg, nil)
	s.start(t)
	s.waitHealthy(t)
	return s
}

// newServer prepares a server; cluster, if not nil, is applied before the
// caller's Configure functions.
func newServer(t testing.TB, name string, cfg *config, cluster func(*server.Options)) *Server {
	t.Helper()
	o := &server.Options{
		ServerName:         name,
		Host:               "127.0.0.1",
		Port:               server.RANDOM_PORT,
		NoLog:              true,
		NoSigs:             true,
		JetStream:          true,
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  4 << 30,
		StoreDir:           t.TempDir(),
		SyncAlways:         cfg.syncAlways,
	}
	if cluster != nil {
		cluster(o)
	}
	s := &Server{name: name, logs: &logBuffer{name: name}, opts: o}
	t.Cleanup(func() {
		s.Shutdown()
		if t.Failed() {
			s.logs.dump(t)
		}
	})
	return s
}

// start starts the server and waits for its listeners, then pins the
// client port so that a restart listens on the same one.
func (s *Server) start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns != nil {
		t.Fatalf("natstest: server %s is already running", s.name)
	}
	ns, err := server.NewServer(s.opts.Clone())
	if err != nil {
		t.Fatalf("natstest: server %s: %v", s.name, err)
	}
	ns.SetLogger(s.logs, false, false)
	ns.Start()
	if !ns.ReadyForConnections(readyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		t.Fatalf("natstest: server %s not ready for connections after %v; last log lines:\n%s",
			s.name, readyTimeout, s.logs.tail(20))
	}
	s.opts.Port = ns.Addr().(*net.TCPAddr).Port
	s.ns = ns
}

// waitHealthy waits until the server reports healthy: JetStream enabled,
// meta group current, every assigned stream and consumer current.
func (s *Server) waitHealthy(t testing.TB) {
	t.Helper()
	ns := s.NATSServer()
	if ns == nil {
		t.Fatalf("natstest: server %s is not running", s.name)
	}
	deadline := time.Now().Add(healthyTimeout)
	var last string
	for time.Now().Before(deadline) {
		h := ns.Healthz(nil)
		if h.Status == "ok" && h.Error == "" {
			return
		}
		last = h.Error
		time.Sleep(pollInterval)
	}
	t.Fatalf("natstest: server %s not healthy after %v: %s", s.name, healthyTimeout, last)
}

// Name returns the server's name (unique within a cluster).
func (s *Server) Name() string { return s.name }

// URL returns the client URL, e.g. "nats://127.0.0.1:41234". It stays the
// same across Restart and is valid while the server is stopped, so clients
// can reconnect.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "nats://" + net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port))
}

// StoreDir returns the JetStream store directory. It stays the same across
// Restart.
func (s *Server) StoreDir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.StoreDir
}

// NATSServer returns the running nats-server, or nil while the server is
// stopped. It changes at every Restart.
func (s *Server) NATSServer() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ns
}

// Running reports whether the server is started and not shut down.
func (s *Server) Running() bool {
	ns := s.NATSServer()
	return ns != nil && ns.Running()
}

// Shutdown stops the server and waits until it has stopped. Clients are
// disconnected (and will try to reconnect). It is idempotent.
func (s *Server) Shutdown() {
	s.mu.Lock()
	ns := s.ns
	s.ns = nil
	s.mu.Unlock()
	if ns == nil {
		return
	}
	ns.Shutdown()
	ns.WaitForShutdown()
}

// Restart stops the server if it is running and starts it again with the
// same options, port and store directory. It returns once JetStream is
// healthy: streams recovered and, in a cluster, caught up with the meta
// leader.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Shutdown()
	s.start(t)
	s.waitHealthy(t)
}

// Connect connects to url (one URL or a comma-separated list) and returns
// the connection and its JetStream context; a t.Cleanup closes the
// connection. By default the connection is named after the test and
// reconnects forever every 50 ms, so it survives Server.Restart; opts are
// applied after these defaults.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	all := append([]nats.Option{
		nats.Name(t.Name()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
	}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		t.Fatalf("natstest: connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}
