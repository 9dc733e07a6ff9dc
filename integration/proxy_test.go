package integration_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Two proxies sit between a node and its NATS server in the fault tests.
//
// toxiProxy is toxiproxy (github.com/Shopify/toxiproxy/v2) embedded
// in-process, used for the faults it injects while the connection stays up:
// latency, and a freeze (a latency toxic far longer than the test, both
// ways, removed to wake the holder: everything sent meanwhile is delivered
// then, in order, as after a long GC pause or a stalled link).
//
// faultProxy is our own, for the faults toxiproxy cannot inject here:
//   - Cutting or resetting connections with data in flight. toxiproxy
//     v2.5.0 leaks goroutines whenever a connection closes while bytes are
//     in transit (a ToxicStub stays blocked on a channel send once its
//     link's writer has returned on a write error; reproduced with its
//     Proxy.Stop and its reset_peer toxic under NATS traffic), and goleak
//     runs in this package's TestMain.
//   - Dropping exactly one reply: toxiproxy's toxics see bytes, not NATS
//     messages. faultProxy parses the NATS protocol both ways and drops the
//     server's delivery of the reply to one chosen publish.

// toxiProxy is an embedded toxiproxy in front of one NATS server.
type toxiProxy struct {
	t     testing.TB
	proxy *toxiproxy.Proxy
	url   string
}

// newToxiProxy starts a toxiproxy on a random loopback port in front of the
// server at natsURL. It is stopped at cleanup, after the connections made
// through it later are closed (cleanups run last-in first-out).
func newToxiProxy(t testing.TB, natsURL string) *toxiProxy {
	t.Helper()
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(api, "nats", "127.0.0.1:0", strings.TrimPrefix(natsURL, "nats://"))
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	tp := &toxiProxy{t: t, proxy: p, url: "nats://" + p.Listen}
	t.Cleanup(func() {
		p.Toxics.ResetToxics(context.Background())
		p.Stop()
	})
	return tp
}

// URL is the address clients connect to instead of the server's.
func (tp *toxiProxy) URL() string { return tp.url }

// add adds a toxic on stream "upstream" (client to server) or "downstream".
func (tp *toxiProxy) add(name, typ, stream string, attrs map[string]any) {
	tp.t.Helper()
	body, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs})
	if err != nil {
		tp.t.Fatal(err)
	}
	if _, err := tp.proxy.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
		tp.t.Fatalf("toxiproxy: add %s: %v", name, err)
	}
}

// remove removes a toxic; data it held back is delivered.
func (tp *toxiProxy) remove(name string) {
	tp.t.Helper()
	if err := tp.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		tp.t.Fatalf("toxiproxy: remove %s: %v", name, err)
	}
}

// latency delays every byte by ms milliseconds (± jitter) both ways.
func (tp *toxiProxy) latency(ms, jitter int) {
	tp.add("latency_up", "latency", "upstream", map[string]any{"latency": ms, "jitter": jitter})
	tp.add("latency_down", "latency", "downstream", map[string]any{"latency": ms, "jitter": jitter})
}

func (tp *toxiProxy) noLatency() {
	tp.remove("latency_up")
	tp.remove("latency_down")
}

// freeze holds every byte both ways until thaw; the connection stays open.
func (tp *toxiProxy) freeze() {
	const hour = 3600 * 1000
	tp.add("freeze_up", "latency", "upstream", map[string]any{"latency": hour})
	tp.add("freeze_down", "latency", "downstream", map[string]any{"latency": hour})
}

// thaw delivers what freeze held back, in order, and lets traffic flow.
func (tp *toxiProxy) thaw() {
	tp.remove("freeze_up")
	tp.remove("freeze_down")
}

// faultProxy is a TCP proxy in front of one NATS server that can cut,
// reset, and drop single replies (see the comment at the top of the file).
type faultProxy struct {
	t        testing.TB
	upstream string
	addr     string // the listen address, kept across Cut and Heal

	mu      sync.Mutex
	ln      net.Listener // nil while cut
	conns   map[*proxiedConn]struct{}
	rule    *dropRule            // armed, waiting for a matching publish
	pending map[string]*dropRule // reply subject -> rule whose reply to drop
	closed  bool
	wg      sync.WaitGroup
}

type proxiedConn struct{ client, server *net.TCPConn }

// dropRule drops the reply to the first client publish whose subject
// matches.
type dropRule struct {
	match   func(subject string) bool
	dropped chan struct{} // closed once the reply was dropped
}

// newFaultProxy starts a faultProxy on a random loopback port in front of
// the server at natsURL; it is closed at cleanup.
func newFaultProxy(t testing.TB, natsURL string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{
		t: t, upstream: strings.TrimPrefix(natsURL, "nats://"), addr: ln.Addr().String(),
		conns: map[*proxiedConn]struct{}{}, pending: map[string]*dropRule{},
	}
	p.serve(ln)
	t.Cleanup(p.close)
	return p
}

// URL is the address clients connect to instead of the server's.
func (p *faultProxy) URL() string { return "nats://" + p.addr }

func (p *faultProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by Cut or close
			}
			s, err := net.Dial("tcp", p.upstream)
			if err != nil {
				c.Close()
				continue
			}
			pc := &proxiedConn{client: c.(*net.TCPConn), server: s.(*net.TCPConn)}
			p.mu.Lock()
			if p.closed || p.ln != ln {
				p.mu.Unlock()
				c.Close()
				s.Close()
				return
			}
			p.conns[pc] = struct{}{}
			p.mu.Unlock()
			p.wg.Go(func() { p.pump(pc, pc.server, pc.client, true) })
			p.wg.Go(func() { p.pump(pc, pc.client, pc.server, false) })
		}
	})
}

// Cut closes every connection and refuses new ones until Heal: the
// holder's host drops off the network.
func (p *faultProxy) Cut() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	conns := p.takeConnsLocked()
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, pc := range conns {
		pc.client.Close()
		pc.server.Close()
	}
}

// Heal accepts connections again, on the same address.
func (p *faultProxy) Heal() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("faultProxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// Reset aborts every connection with a TCP RST both ways (SO_LINGER 0),
// dropping whatever was in flight; new connections are accepted at once.
func (p *faultProxy) Reset() int {
	p.mu.Lock()
	conns := p.takeConnsLocked()
	p.mu.Unlock()
	for _, pc := range conns {
		pc.client.SetLinger(0)
		pc.server.SetLinger(0)
		pc.client.Close()
		pc.server.Close()
	}
	return len(conns)
}

func (p *faultProxy) takeConnsLocked() []*proxiedConn {
	out := make([]*proxiedConn, 0, len(p.conns))
	for pc := range p.conns {
		out = append(out, pc)
	}
	clear(p.conns)
	return out
}

// DropReply arms the proxy: the next publish from a client whose subject
// matches, and which asks for a reply, is delivered to the server, but the
// server's reply to it is not delivered to the client. The returned
// channel is closed when the reply has been dropped.
func (p *faultProxy) DropReply(match func(subject string) bool) <-chan struct{} {
	r := &dropRule{match: match, dropped: make(chan struct{})}
	p.mu.Lock()
	p.rule = r
	p.mu.Unlock()
	return r.dropped
}

func (p *faultProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
}

// pump copies NATS protocol operations from src to dst, one at a time.
// upstream is true for client-to-server traffic. Client operations are
// PUB/HPUB with a payload, or lines (CONNECT, SUB, UNSUB, PING, PONG);
// server operations are MSG/HMSG with a payload, or lines (INFO, PING,
// PONG, +OK, -ERR).
func (p *faultProxy) pump(pc *proxiedConn, dst, src *net.TCPConn, upstream bool) {
	defer func() {
		// Either side gone: the whole connection goes, as TCP would.
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
		pc.client.Close()
		pc.server.Close()
	}()
	r := bufio.NewReaderSize(src, 64<<10)
	w := bufio.NewWriterSize(dst, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		f := strings.Fields(string(line))
		var payload []byte
		drop := false
		if len(f) > 0 {
			op := strings.ToUpper(f[0])
			n, ok, err := payloadSize(op, f)
			if err != nil {
				return // not NATS as we know it: drop the connection
			}
			if ok {
				payload = make([]byte, n+2) // payload and its CRLF
				if _, err := io.ReadFull(r, payload); err != nil {
					return
				}
				if upstream {
					p.notePublish(op, f)
				} else {
					drop = p.dropDelivery(f)
				}
			}
		}
		if !drop {
			if _, err := w.Write(line); err != nil {
				return
			}
			if _, err := w.Write(payload); err != nil {
				return
			}
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// payloadSize returns the payload size of an operation that has one.
func payloadSize(op string, f []string) (int, bool, error) {
	switch op {
	case "PUB", "HPUB", "MSG", "HMSG":
	default:
		return 0, false, nil
	}
	n, err := strconv.Atoi(f[len(f)-1])
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("faultProxy: bad %s line %q", op, strings.Join(f, " "))
	}
	return n, true, nil
}

// notePublish records the reply subject of a client publish matching the
// armed rule: PUB <subject> [reply] <n>, HPUB <subject> [reply] <h> <n>.
func (p *faultProxy) notePublish(op string, f []string) {
	withReply := (op == "PUB" && len(f) == 4) || (op == "HPUB" && len(f) == 5)
	if !withReply {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rule != nil && p.rule.match(f[1]) {
		p.pending[f[2]] = p.rule
		p.rule = nil
	}
}

// dropDelivery reports whether a server delivery (MSG <subject> <sid>
// [reply] <n>, HMSG <subject> <sid> [reply] <h> <n>) is a reply to drop.
func (p *faultProxy) dropDelivery(f []string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.pending[f[1]]
	if !ok {
		return false
	}
	delete(p.pending, f[1])
	close(r.dropped)
	return true
}
