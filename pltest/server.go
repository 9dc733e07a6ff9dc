package pltest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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
	memory     bool
	port       int
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
// Without it a server uses JetStream's default interval of two minutes.
func SyncAlways() Option {
	return func(c *config) { c.syncAlways = true }
}

// MemoryStorage gives the server no file storage (its file store limit is
// zero bytes): only memory streams can be created — open stores with
// profileledger.WithMemoryStorage — and nothing a test writes to a stream
// reaches the disk. Restart and Kill lose every stream, as they would on a
// real server. Without it (the default) streams may use either storage, and
// file streams live in the server's t.TempDir and survive Restart and Kill.
func MemoryStorage() Option {
	return func(c *config) { c.memory = true }
}

// Port makes Run listen for clients on 127.0.0.1:port instead of a port
// the kernel picks; the test fails if the port is taken. RunCluster
// ignores it.
func Port(port int) Option {
	return func(c *config) { c.port = port }
}

// Server is one embedded nats-server with JetStream in this process. Its
// URL stays the same across Stop, Kill, Start and Restart, and so does its
// store directory (a t.TempDir). Its methods are safe for concurrent use;
// those that can fail (Start, Restart) fail the test that started the
// server with t.Fatal, so call them from that test's goroutine.
//
// Clients reach the server through a front door of pltest's own, a TCP
// relay on the URL's port: that is what lets Kill reset every connection at
// one instant, as the kernel does for a process that dies.
type Server struct {
	t    testing.TB
	name string
	logs *logBuffer
	door *relay // the client port: URL()

	// In a cluster: the relay in front of this member's route port, and the
	// cluster, which knows the routes this member dialed.
	route   *relay
	cluster *Cluster

	mu   sync.Mutex
	opts *server.Options // template for every start; ports pinned after the first
	ns   *server.Server  // nil while stopped
}

// Run starts a single server with JetStream on 127.0.0.1 and registers a
// t.Cleanup that shuts it down. Its store is in a t.TempDir. It returns
// once JetStream is ready; it fails t if the server does not start.
func Run(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := newConfig(opts)
	s := newServer(t, "pltest", cfg)
	s.door.addr = "127.0.0.1:" + strconv.Itoa(cfg.port)
	s.Start()
	return s
}

// newServer prepares a server; the caller sets cluster options on s.opts
// before the first start.
func newServer(t testing.TB, name string, cfg *config) *Server {
	t.Helper()
	dir := t.TempDir()
	o := &server.Options{}
	if cfg.memory {
		// A file store limit of zero is "no limit" unless it comes from a
		// configuration file.
		conf := filepath.Join(t.TempDir(), "memory.conf")
		if err := os.WriteFile(conf, []byte("jetstream { max_file_store: 0 }\n"), 0o600); err != nil {
			t.Fatalf("pltest: %v", err)
		}
		var err error
		if o, err = server.ProcessConfigFile(conf); err != nil {
			t.Fatalf("pltest: %v", err)
		}
	} else {
		o.JetStreamMaxStore = 4 << 30
	}
	o.ServerName = name
	o.Host = "127.0.0.1"
	o.Port = server.RANDOM_PORT
	o.NoLog = true
	o.NoSigs = true
	o.JetStream = true
	o.JetStreamMaxMemory = 256 << 20
	o.StoreDir = dir
	o.SyncAlways = cfg.syncAlways
	s := &Server{t: t, name: name, logs: &logBuffer{name: name}, opts: o}
	s.door = newRelay("", copyPipe)
	s.door.addr = "127.0.0.1:0"
	t.Cleanup(func() {
		s.Stop()
		s.door.close()
		if s.route != nil {
			s.route.close()
		}
		if t.Failed() {
			s.logs.dump(t)
		}
	})
	return s
}

// Start starts the server if it is stopped — after Stop or Kill — with the
// same options, port and store directory, and returns once JetStream is
// healthy: streams recovered and, in a cluster, caught up with the meta
// leader. It does nothing if the server is running.
func (s *Server) Start() {
	s.t.Helper()
	if s.start() {
		s.waitHealthy()
		s.openDoor()
	}
}

// openDoor lets clients in. It is opened only once the server is healthy:
// a client let in earlier could send requests that a server still
// recovering its streams does not answer.
func (s *Server) openDoor() {
	s.t.Helper()
	if err := s.door.listen(""); err != nil {
		s.t.Fatalf("pltest: server %s: %v", s.name, err)
	}
}

// start starts the nats-server and, in a cluster, opens the relay in
// front of its routes; it reports false if the server was running
// already.
func (s *Server) start() bool {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns != nil {
		return false
	}
	ns, err := server.NewServer(s.opts.Clone())
	if err != nil {
		s.t.Fatalf("pltest: server %s: %v", s.name, err)
	}
	ns.SetLogger(s.logs, false, false)
	ns.Start()
	if !ns.ReadyForConnections(readyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		s.t.Fatalf("pltest: server %s not ready for connections after %v; last log lines:\n%s",
			s.name, readyTimeout, s.logs.tail(20))
	}
	s.opts.Port = ns.Addr().(*net.TCPAddr).Port
	s.door.setUpstream(net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port)))
	s.ns = ns
	if s.route != nil {
		s.opts.Cluster.Port = ns.ClusterAddr().Port
		s.route.setUpstream(net.JoinHostPort(s.opts.Cluster.Host, strconv.Itoa(s.opts.Cluster.Port)))
		if err := s.route.listen(""); err != nil {
			s.t.Fatalf("pltest: server %s: route: %v", s.name, err)
		}
	}
	return true
}

// waitHealthy waits until the server reports healthy: JetStream enabled,
// meta group current, every assigned stream and consumer current.
func (s *Server) waitHealthy() {
	s.t.Helper()
	ns := s.NATSServer()
	if ns == nil {
		s.t.Fatalf("pltest: server %s is not running", s.name)
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
	s.t.Fatalf("pltest: server %s not healthy after %v: %s", s.name, healthyTimeout, last)
}

// Name returns the server's name (unique within a cluster).
func (s *Server) Name() string { return s.name }

// URL returns the client URL, e.g. "nats://127.0.0.1:41234". It stays the
// same across Stop, Kill, Start and Restart and is valid while the server
// is stopped (connections are refused), so clients can reconnect.
func (s *Server) URL() string {
	return "nats://" + s.door.address()
}

// StoreDir returns the JetStream store directory. It stays the same
// across restarts.
func (s *Server) StoreDir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.StoreDir
}

// NATSServer returns the running nats-server, or nil while the server is
// stopped. It changes at every start. Clients should connect to URL, not
// to its ClientURL, or Kill cannot reach them.
func (s *Server) NATSServer() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ns
}

// Running reports whether the server is started and not stopped.
func (s *Server) Running() bool {
	ns := s.NATSServer()
	return ns != nil && ns.Running()
}

// take marks the server stopped and returns the nats-server that was
// running, or nil.
func (s *Server) take() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := s.ns
	s.ns = nil
	return ns
}

// Stop shuts the server down cleanly and waits until it has stopped:
// clients are disconnected (and try to reconnect; the URL refuses them
// until Start), a cluster member's raft groups step down first, and
// JetStream writes its final state. It is idempotent.
func (s *Server) Stop() {
	ns := s.take()
	if ns == nil {
		return
	}
	// Clients first: a client that reconnected to a server in the middle
	// of its shutdown could be left on a connection nobody serves.
	s.door.refuse()
	s.door.drop(false)
	ns.Shutdown()
	ns.WaitForShutdown()
	if s.route != nil {
		s.route.refuse()
		s.route.drop(false)
	}
}

// Kill stops the server as near to a crash (SIGKILL) as one process
// allows, and returns once it is down. In this order:
//
//  1. Every connection is reset at the same instant, as the kernel does
//     for a process that dies: its clients' connections get a TCP reset
//     and new ones are refused; in a cluster its routes to and from every
//     peer are reset too, so the peers hear nothing more from it — no
//     raft step-down, no goodbye. Requests in flight get no reply.
//  2. The files in its store directory are copied, as they are at that
//     moment.
//  3. The nats-server is shut down in process (nothing can hear it now).
//  4. The store directory is put back to the copy of step 2: the state a
//     clean shutdown writes (stream index files, consumer state, raft
//     state) is undone, and files it created are removed.
//
// So the next Start recovers from what a killed process leaves on disk:
// every write the server made before the kill (it writes a message to its
// file before acknowledging it), nothing after. What one process cannot
// do is lose what the kernel had not yet written to the disk (a power loss
// or kernel crash); for that, run a cluster. Memory streams are lost, as
// in any stop. Kill is idempotent; the server stays down until Start or
// Restart.
func (s *Server) Kill() {
	s.t.Helper()
	s.mu.Lock()
	ns := s.ns
	s.mu.Unlock()
	if ns == nil {
		return
	}
	s.door.refuse()
	s.door.drop(true)
	if s.route != nil {
		s.cluster.cutRoutesOf(ns.ID())
		s.route.refuse()
		s.route.drop(true)
	}
	dir := s.StoreDir()
	files, err := copyDir(dir)
	if err != nil {
		s.t.Errorf("pltest: kill %s: copy the store: %v", s.name, err)
	}
	s.take()
	ns.Shutdown()
	ns.WaitForShutdown()
	if err == nil {
		if err := restoreDir(dir, files); err != nil {
			s.t.Errorf("pltest: kill %s: restore the store: %v", s.name, err)
		}
	}
}

// Restart stops the server cleanly if it is running (Stop), and starts it
// again (Start): same port, same store directory; data in file streams
// survives.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// String returns the server's name and URL, for messages.
func (s *Server) String() string { return fmt.Sprintf("%s (%s)", s.name, s.URL()) }
