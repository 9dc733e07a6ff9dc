package pltest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// dialTimeout bounds a relay's dial of its upstream.
const dialTimeout = 5 * time.Second

// relay accepts TCP connections on one loopback address and joins each to
// a new connection to its upstream. It can refuse new connections (its
// listener closed: a dial is refused), end the open ones, with a FIN or a
// reset, and listen again on the same address. A Server's front door and
// its cluster routes are relays that copy bytes; a Proxy is a relay whose
// pipe reads the NATS protocol.
//
// Every goroutine a relay starts is counted in wg; close ends them all and
// waits.
type relay struct {
	// pipe carries the connection's bytes both ways and returns when both
	// directions are done. It must return soon after either side is closed.
	pipe func(c *link)

	mu       sync.Mutex
	upstream string       // host:port to dial
	addr     string       // the listen address, fixed at the first listen
	ln       net.Listener // nil while refusing
	links    map[*link]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// link is one client connection and its connection to the upstream.
type link struct {
	client, server *net.TCPConn
	once           sync.Once
	done           chan struct{} // closed by end
}

// end closes both sides, with a TCP reset (SO_LINGER 0) if reset, which
// drops whatever either side had not yet read. It is idempotent.
func (l *link) end(reset bool) {
	l.once.Do(func() {
		if reset {
			l.client.SetLinger(0)
			l.server.SetLinger(0)
		}
		l.client.Close()
		l.server.Close()
		close(l.done)
	})
}

func newRelay(upstream string, pipe func(*link)) *relay {
	return &relay{upstream: upstream, pipe: pipe, links: map[*link]struct{}{}}
}

// copyPipe copies bytes both ways until either side ends, then ends both.
func copyPipe(l *link) {
	var wg sync.WaitGroup
	wg.Go(func() {
		io.Copy(l.server, l.client)
		l.end(false)
	})
	io.Copy(l.client, l.server)
	l.end(false)
	wg.Wait()
}

// listen starts accepting on addr ("127.0.0.1:0" picks a port) or, once a
// first listen picked one, on the same address again. It does nothing if
// the relay is listening already.
func (r *relay) listen(addr string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("relay closed")
	}
	if r.ln != nil {
		return nil
	}
	if r.addr != "" {
		addr = r.addr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	r.ln, r.addr = ln, ln.Addr().String()
	r.wg.Go(func() { r.accept(ln) })
	return nil
}

// setUpstream sets the address new connections are joined to.
func (r *relay) setUpstream(addr string) {
	r.mu.Lock()
	r.upstream = addr
	r.mu.Unlock()
}

// address returns the listen address ("" before the first listen).
func (r *relay) address() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addr
}

func (r *relay) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed by refuse or close
		}
		r.mu.Lock()
		upstream := r.upstream
		r.mu.Unlock()
		s, err := net.DialTimeout("tcp", upstream, dialTimeout)
		if err != nil {
			// The upstream is down: the client sees its connection closed
			// at once, as near to a refusal as an accepted one can be.
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			continue
		}
		l := &link{client: c.(*net.TCPConn), server: s.(*net.TCPConn), done: make(chan struct{})}
		r.mu.Lock()
		if r.ln != ln {
			r.mu.Unlock()
			l.end(true)
			return
		}
		r.links[l] = struct{}{}
		r.wg.Go(func() {
			r.pipe(l)
			l.end(false)
			r.mu.Lock()
			delete(r.links, l)
			r.mu.Unlock()
		})
		r.mu.Unlock()
	}
}

// refuse closes the listener: new connections are refused until listen.
// Open connections are left as they are.
func (r *relay) refuse() {
	r.mu.Lock()
	ln := r.ln
	r.ln = nil
	r.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
}

// drop ends every open connection, with a reset if reset, and returns how
// many it ended.
func (r *relay) drop(reset bool) int {
	r.mu.Lock()
	links := make([]*link, 0, len(r.links))
	for l := range r.links {
		links = append(links, l)
	}
	clear(r.links)
	r.mu.Unlock()
	for _, l := range links {
		l.end(reset)
	}
	return len(links)
}

// close refuses new connections, ends the open ones and waits for every
// goroutine of the relay. It is idempotent.
func (r *relay) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.refuse()
	r.drop(false)
	r.wg.Wait()
}
