package natstest

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// clusterName is the name of every cluster natstest starts. Clusters of
// concurrent tests never meet: their route ports differ.
const clusterName = "natstest"

// Cluster is n clustered servers with JetStream in one process. Stop a member
// with Servers[i].Shutdown and bring it back with Servers[i].Restart.
type Cluster struct {
	// Servers are the members, named "S-1", "S-2", ...
	Servers []*Server
}

// RunCluster starts n servers (3 for R3 streams) with JetStream, routed to
// one another on ports picked at random, and registers a t.Cleanup that shuts
// them down. It returns once the JetStream meta group has a leader and all n
// peers are current.
func RunCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: cluster of %d servers", n)
	}
	cfg := newConfig(opts)
	ports := freePorts(t, n)
	routes := make([]*url.URL, n)
	for i, p := range ports {
		routes[i] = &url.URL{Scheme: "nats-route", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))}
	}
	c := &Cluster{}
	for i := range n {
		port := ports[i]
		s := newServer(t, fmt.Sprintf("S-%d", i+1), cfg, func(o *server.Options) {
			o.Cluster.Name = clusterName
			o.Cluster.Host = "127.0.0.1"
			o.Cluster.Port = port
			// Every member lists every route, itself included (the server
			// skips it): the count sets the expected meta group size.
			o.Routes = routes
		})
		c.Servers = append(c.Servers, s)
	}
	for _, s := range c.Servers {
		s.start(t)
	}
	c.WaitReady(t)
	return c
}

// freePorts returns n distinct ports that were free a moment ago. Holding
// all listeners until the end keeps them distinct; another process may still
// take one before the server binds it, which is rare enough for tests.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	ls := make([]net.Listener, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: pick a free port: %v", err)
		}
		ls[i] = l
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// URLs returns the client URLs of all members, comma separated, for
// nats.Connect or Connect.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// Leader waits until a running member is the JetStream meta leader and
// returns it. It fails t after 30 s.
func (c *Cluster) Leader(t testing.TB) *Server {
	t.Helper()
	return c.waitFor(t, "a meta leader", func(ns *server.Server) bool { return ns.JetStreamIsLeader() })
}

// StreamLeader waits until a running member leads stream in account and
// returns it. An empty account means the default account ("$G"), the one
// clients of these servers use. It fails t after 30 s.
func (c *Cluster) StreamLeader(t testing.TB, account, stream string) *Server {
	t.Helper()
	if account == "" {
		account = server.DEFAULT_GLOBAL_ACCOUNT
	}
	return c.waitFor(t, fmt.Sprintf("a leader of stream %s/%s", account, stream), func(ns *server.Server) bool {
		return ns.JetStreamIsStreamLeader(account, stream)
	})
}

// WaitReady waits until there is a meta leader that counts every member as
// a peer and every running member is current with the meta group. It fails
// t after 30 s.
func (c *Cluster) WaitReady(t testing.TB) {
	t.Helper()
	c.waitFor(t, "a ready cluster", func(ns *server.Server) bool {
		if !ns.JetStreamIsLeader() || len(ns.JetStreamClusterPeers()) != len(c.Servers) {
			return false
		}
		for _, s := range c.Servers {
			if m := s.NATSServer(); m != nil && m.Running() && !m.JetStreamIsCurrent() {
				return false
			}
		}
		return true
	})
}

// waitFor polls the running members until ok holds for one, and returns it.
func (c *Cluster) waitFor(t testing.TB, what string, ok func(*server.Server) bool) *Server {
	t.Helper()
	deadline := time.Now().Add(healthyTimeout)
	for time.Now().Before(deadline) {
		for _, s := range c.Servers {
			if ns := s.NATSServer(); ns != nil && ns.Running() && ok(ns) {
				return s
			}
		}
		time.Sleep(pollInterval)
	}
	var logs strings.Builder
	for _, s := range c.Servers {
		fmt.Fprintf(&logs, "--- %s (running: %v)\n%s\n", s.name, s.Running(), s.logs.tail(10))
	}
	t.Fatalf("natstest: no %s after %v; last log lines:\n%s", what, healthyTimeout, logs.String())
	return nil
}
