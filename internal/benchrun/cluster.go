package benchrun

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/profileledger/profileledger/internal/embedded"
)

// clusterSize is the members of bench -cluster's cluster: R3 streams.
const clusterSize = 3

// benchCluster is clusterSize embedded nats-servers with JetStream in this
// process (file storage in a temporary directory), routed to one another
// over loopback. Every member's route port sits behind a relay of the
// bench's, so that kill can cut a member off from its peers at once, as a
// crash does, before it shuts the server down: a server that shuts down
// cleanly first hands its raft leaderships over, which a crashed one
// cannot. (pltest's Cluster does the same for tests; it needs a
// testing.TB.)
type benchCluster struct {
	dir     string
	members []*clusterMember
	log     io.Writer

	mu    sync.Mutex
	links map[*routeLink]struct{}
	dead  map[string]bool // server ids of killed members
	wg    sync.WaitGroup  // relays' goroutines
}

// clusterMember is one member: its server while it runs, and the relay in
// front of its routes, which outlives restarts.
type clusterMember struct {
	index     int
	name      string
	dir       string
	routePort int          // the server's own route port, the same after a restart
	relay     net.Listener // what the other members dial
	up        bool         // the relay joins connections to the server (c.mu)
	ns        *server.Server
}

// routeLink is one route connection through a member's relay.
type routeLink struct {
	owner          int    // index of the member whose relay accepted it
	dialer         string // server id of the member that dialed it
	client, server *net.TCPConn
	once           sync.Once
}

// end closes both sides, with a TCP reset if reset.
func (l *routeLink) end(reset bool) {
	l.once.Do(func() {
		if reset {
			l.client.SetLinger(0)
			l.server.SetLinger(0)
		}
		l.client.Close()
		l.server.Close()
	})
}

// clusterReadyTimeout bounds the wait for a started or restarted cluster.
const clusterReadyTimeout = time.Minute

// startCluster starts the cluster and returns once its JetStream meta
// group has a leader that counts every member and every member is current.
// Server logs go to log (nil for none).
func startCluster(ctx context.Context, log io.Writer) (*benchCluster, error) {
	dir, err := os.MkdirTemp("", "profileledger-bench-cluster-")
	if err != nil {
		return nil, err
	}
	c := &benchCluster{dir: dir, log: log, links: map[*routeLink]struct{}{}, dead: map[string]bool{}}
	for i := range clusterSize {
		m := &clusterMember{index: i, name: fmt.Sprintf("S-%d", i+1), dir: filepath.Join(dir, fmt.Sprintf("s%d", i+1)), up: true}
		c.members = append(c.members, m)
		if m.routePort, err = freePort(); err == nil {
			m.relay, err = net.Listen("tcp", "127.0.0.1:0")
		}
		if err != nil {
			c.close()
			return nil, fmt.Errorf("cluster: %w", err)
		}
		c.wg.Go(func() { c.accept(m) })
	}
	errs := make([]error, clusterSize)
	var wg sync.WaitGroup
	for i, m := range c.members { // all at once: each waits for a majority
		wg.Go(func() { errs[i] = c.startMember(ctx, m) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.close()
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startMember starts m's server and returns once its JetStream is healthy.
func (c *benchCluster) startMember(ctx context.Context, m *clusterMember) error {
	routes := make([]*url.URL, len(c.members))
	for i, o := range c.members {
		// Every member lists every route, its own included (the server
		// skips it): the count sets the expected meta group size.
		routes[i] = &url.URL{Scheme: "nats-route", Host: o.relay.Addr().String()}
	}
	c.mu.Lock()
	m.up = true
	c.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, clusterReadyTimeout)
	defer cancel()
	var logw io.Writer
	if c.log != nil {
		logw = prefixWriter{c.log, m.name + " "}
	}
	ns, err := embedded.StartUntil(sctx, embedded.Config{
		Name: m.name, Host: "127.0.0.1", Port: server.RANDOM_PORT, Dir: m.dir, Log: logw,
		Cluster: &embedded.Cluster{Host: "127.0.0.1", Port: m.routePort, Routes: routes,
			Advertise: m.relay.Addr().String(), NoCompression: true},
	})
	if err != nil {
		return fmt.Errorf("cluster member %s: %w", m.name, err)
	}
	c.mu.Lock()
	m.ns = ns
	c.mu.Unlock()
	return nil
}

// prefixWriter writes each write (one log line) to w after prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

// accept joins each connection to m's relay to m's server's route port,
// until the relay is closed.
func (c *benchCluster) accept(m *clusterMember) {
	for {
		conn, err := m.relay.Accept()
		if err != nil {
			return
		}
		c.wg.Go(func() { c.pipe(m, conn.(*net.TCPConn)) })
	}
}

// pipe carries one route connection to m. The dialing server's first line
// is its CONNECT, which names it by server id: the link is filed under
// that id, so that killing the dialer cuts it too.
func (c *benchCluster) pipe(m *clusterMember, client *net.TCPConn) {
	c.mu.Lock()
	up := m.up
	c.mu.Unlock()
	var srv net.Conn
	var err error
	if up {
		srv, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", m.routePort), 5*time.Second)
	}
	if !up || err != nil {
		client.SetLinger(0)
		client.Close()
		return
	}
	l := &routeLink{owner: m.index, client: client, server: srv.(*net.TCPConn)}
	defer l.end(false)
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(client)
	line, err := r.ReadSlice('\n')
	if err != nil {
		return
	}
	client.SetReadDeadline(time.Time{})
	l.dialer = connectName(line)
	c.mu.Lock()
	if c.dead[l.dialer] || !m.up {
		c.mu.Unlock()
		l.end(true)
		return
	}
	c.links[l] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.links, l)
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

// kill crashes member i: every route to and from it is reset at once,
// new ones are refused, and then its server stops (its clients see their
// connections closed). It stays down until restart.
func (c *benchCluster) kill(i int) {
	m := c.members[i]
	c.mu.Lock()
	ns := m.ns
	m.ns, m.up = nil, false
	var cut []*routeLink
	if ns != nil {
		c.dead[ns.ID()] = true
		for l := range c.links {
			if l.owner == i || l.dialer == ns.ID() {
				cut = append(cut, l)
			}
		}
	}
	c.mu.Unlock()
	for _, l := range cut {
		l.end(true)
	}
	if ns != nil {
		embedded.Stop(ns)
	}
}

// restart starts killed member i again on its store directory (a new
// server id, the same name and route port) and waits until the cluster is
// ready.
func (c *benchCluster) restart(ctx context.Context, i int) error {
	if err := c.startMember(ctx, c.members[i]); err != nil {
		return err
	}
	return c.waitReady(ctx)
}

// running returns the running members' servers.
func (c *benchCluster) running() []*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*server.Server
	for _, m := range c.members {
		if m.ns != nil && m.ns.Running() {
			out = append(out, m.ns)
		}
	}
	return out
}

// url returns the client URL of member i, "" if it is down.
func (c *benchCluster) url(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ns := c.members[i].ns; ns != nil {
		return embedded.URL(ns)
	}
	return ""
}

// urls returns the running members' client URLs, comma separated.
func (c *benchCluster) urls() string {
	var urls []string
	for _, ns := range c.running() {
		urls = append(urls, embedded.URL(ns))
	}
	return strings.Join(urls, ",")
}

// waitReady waits until a meta leader counts every member as a peer and
// every running member is current with the meta group.
func (c *benchCluster) waitReady(ctx context.Context) error {
	_, err := c.waitFor(ctx, "a ready cluster", func(ns *server.Server) bool {
		if !ns.JetStreamIsLeader() || len(ns.JetStreamClusterPeers()) != len(c.members) {
			return false
		}
		for _, o := range c.running() {
			if !o.JetStreamIsCurrent() {
				return false
			}
		}
		return true
	})
	return err
}

// streamLeader waits until a running member leads stream and returns its
// index.
func (c *benchCluster) streamLeader(ctx context.Context, stream string) (int, error) {
	return c.waitFor(ctx, "a leader of stream "+stream, func(ns *server.Server) bool {
		return ns.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream)
	})
}

// waitFor polls the running members until ok holds for one, and returns
// its index; it gives up after clusterReadyTimeout or when ctx ends.
func (c *benchCluster) waitFor(ctx context.Context, what string, ok func(*server.Server) bool) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, clusterReadyTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		c.mu.Lock()
		members := append([]*clusterMember(nil), c.members...)
		c.mu.Unlock()
		for i, m := range members {
			c.mu.Lock()
			ns := m.ns
			c.mu.Unlock()
			if ns != nil && ns.Running() && ok(ns) {
				return i, nil
			}
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("cluster: no %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// close stops every member and relay and removes the store directories.
func (c *benchCluster) close() {
	c.mu.Lock()
	for _, m := range c.members {
		m.up = false
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, ns := range c.running() {
		wg.Go(func() { embedded.Stop(ns) })
	}
	wg.Wait()
	c.mu.Lock()
	for _, m := range c.members {
		m.ns = nil
		if m.relay != nil {
			m.relay.Close()
		}
	}
	links := c.links
	c.links = map[*routeLink]struct{}{}
	c.mu.Unlock()
	for l := range links {
		l.end(false)
	}
	c.wg.Wait()
	os.RemoveAll(c.dir)
}
