package pltest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// clusterName is the name of every cluster pltest starts. Clusters of
// concurrent tests never meet: their route ports differ.
const clusterName = "pltest"

// Cluster is n clustered servers with JetStream in one process. Each member
// is a *Server: stop one with Stop or Kill and bring it back with Start or
// Restart.
type Cluster struct {
	t       testing.TB
	servers []*Server

	mu     sync.Mutex
	routes map[string]map[*link]struct{} // dialer's server id -> route links it dialed
	dead   map[string]bool               // server ids of killed members
}

// RunCluster starts n servers (3 for R3 streams) with JetStream on
// 127.0.0.1, routed to one another, and registers a t.Cleanup that shuts
// them down. It returns once the JetStream meta group has a leader and all
// n peers are current. opts apply to every member (Port is ignored).
//
// Every member's routes pass through a relay of pltest's, as its clients
// do, so that Kill can cut a member off from its peers at once.
func RunCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("pltest: cluster of %d servers", n)
	}
	cfg := newConfig(opts)
	cfg.port = 0
	c := &Cluster{t: t, routes: map[string]map[*link]struct{}{}, dead: map[string]bool{}}
	// Each member's client front door and route relay listen from now on,
	// on ports the kernel picks: members advertise them to clients and to
	// one another. Until a member runs, they reset whoever connects.
	routes := make([]*url.URL, n)
	for i := range n {
		s := newServer(t, fmt.Sprintf("S-%d", i+1), cfg)
		s.route = newRelay("", c.routePipe)
		s.cluster = c
		for _, r := range []*relay{s.door, s.route} {
			if err := r.listen("127.0.0.1:0"); err != nil {
				t.Fatalf("pltest: cluster: %v", err)
			}
		}
		routes[i] = &url.URL{Scheme: "nats-route", Host: s.route.address()}
		c.servers = append(c.servers, s)
	}
	for i, s := range c.servers {
		o := s.opts
		o.ClientAdvertise = s.door.address()
		o.Cluster.Name = clusterName
		o.Cluster.Host = "127.0.0.1"
		o.Cluster.Port = server.RANDOM_PORT
		o.Cluster.Advertise = routes[i].Host
		o.Cluster.Compression.Mode = server.CompressionOff // the relays read each route's CONNECT
		// Every member lists every route, itself included (the server
		// skips it): the count sets the expected meta group size.
		o.Routes = routes
	}
	for _, s := range c.servers {
		s.start()
	}
	c.WaitReady()
	return c
}

// routePipe carries one route connection. The dialing server's first line
// is its CONNECT, which names it by server id: the link is filed under that
// id, so that killing the dialer cuts it — it is not in the dialer's own
// relay, but in the one of the member it dialed.
func (c *Cluster) routePipe(l *link) {
	l.client.SetReadDeadline(time.Now().Add(readyTimeout))
	r := bufio.NewReader(l.client)
	line, err := r.ReadSlice('\n')
	if err != nil {
		return
	}
	l.client.SetReadDeadline(time.Time{})
	id := connectName(line)
	c.mu.Lock()
	if c.dead[id] {
		c.mu.Unlock()
		l.end(true)
		return
	}
	if c.routes[id] == nil {
		c.routes[id] = map[*link]struct{}{}
	}
	c.routes[id][l] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.routes[id], l)
		c.mu.Unlock()
	}()
	if _, err := l.server.Write(line); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		io.Copy(l.server, r)
		l.end(false)
	})
	io.Copy(l.client, l.server)
	l.end(false)
	wg.Wait()
}

// connectName returns the "name" of a CONNECT line, "" if it is not one.
func connectName(line []byte) string {
	rest, ok := strings.CutPrefix(string(line), "CONNECT ")
	if !ok {
		return ""
	}
	var info struct {
		Name string `json:"name"`
	}
	if json.Unmarshal([]byte(strings.TrimSpace(rest)), &info) != nil {
		return ""
	}
	return info.Name
}

// cutRoutesOf resets every route the server with this id dialed, and
// refuses those it dials from now on.
func (c *Cluster) cutRoutesOf(id string) {
	c.mu.Lock()
	c.dead[id] = true
	links := c.routes[id]
	delete(c.routes, id)
	c.mu.Unlock()
	for l := range links {
		l.end(true)
	}
}

// Servers returns the members, named "S-1", "S-2", ...
func (c *Cluster) Servers() []*Server {
	return append([]*Server(nil), c.servers...)
}

// URLs returns the client URLs of all members, comma separated, for
// nats.Connect or Connect.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.servers))
	for i, s := range c.servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// Leader waits until a running member is the JetStream meta leader and
// returns it. It fails the test after 30 s.
func (c *Cluster) Leader() *Server {
	c.t.Helper()
	return c.waitFor("a meta leader", func(ns *server.Server) bool { return ns.JetStreamIsLeader() })
}

// StreamLeader waits until a running member leads the stream and returns
// it. It fails the test after 30 s. (Streams are in the default account,
// the one clients of these servers use.)
func (c *Cluster) StreamLeader(stream string) *Server {
	c.t.Helper()
	return c.waitFor("a leader of stream "+stream, func(ns *server.Server) bool {
		return ns.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream)
	})
}

// WaitReady waits until there is a meta leader that counts every member as
// a peer and every running member is current with the meta group. It fails
// the test after 30 s.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	c.waitFor("a ready cluster", func(ns *server.Server) bool {
		if !ns.JetStreamIsLeader() || len(ns.JetStreamClusterPeers()) != len(c.servers) {
			return false
		}
		for _, s := range c.servers {
			if m := s.NATSServer(); m != nil && m.Running() && !m.JetStreamIsCurrent() {
				return false
			}
		}
		return true
	})
}

// waitFor polls the running members until ok holds for one, and returns it.
func (c *Cluster) waitFor(what string, ok func(*server.Server) bool) *Server {
	c.t.Helper()
	deadline := time.Now().Add(healthyTimeout)
	for time.Now().Before(deadline) {
		for _, s := range c.servers {
			if ns := s.NATSServer(); ns != nil && ns.Running() && ok(ns) {
				return s
			}
		}
		time.Sleep(pollInterval)
	}
	var logs strings.Builder
	for _, s := range c.servers {
		fmt.Fprintf(&logs, "--- %s (running: %v)\n%s\n", s.name, s.Running(), s.logs.tail(10))
	}
	c.t.Fatalf("pltest: no %s after %v; last log lines:\n%s", what, healthyTimeout, logs.String())
	return nil
}
