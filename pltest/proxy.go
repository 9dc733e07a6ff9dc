package pltest

import (
	"bufio"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// FaultProxy is a TCP proxy on a loopback port in front of one NATS server
// (or cluster member): a client that connects to its URL instead of the
// server's can be frozen, cut off, slowed down, or have one reply lost on
// the way back — the faults a game server meets between itself and NATS.
// Start one with Proxy. Its methods are safe for concurrent use and may be
// called from any goroutine.
//
// It reads the NATS client protocol both ways (it needs to, to drop one
// reply), one operation at a time, and forwards each as it came. It is
// pltest's own rather than toxiproxy: toxiproxy sees bytes, not NATS
// messages, so it cannot lose one reply; and toxiproxy v2.5.0 leaks
// goroutines whenever a connection closes with bytes in flight, which a
// cut or a reset always does, while every goroutine a FaultProxy starts
// has ended when its test's cleanup returns (goleak finds none).
//
// The proxy also removes the list of cluster members (connect_urls) from
// the server's INFO, so that a client connected through it learns no
// other member and stays behind the proxy.
type FaultProxy struct {
	t testing.TB
	r *relay

	mu      sync.Mutex
	thaw    chan struct{} // nil unless frozen; closed by Thaw
	latency time.Duration
	jitter  time.Duration
	rng     *rand.Rand
	rule    *dropRule            // armed, waiting for a matching publish
	pending map[string]*dropRule // reply subject -> rule whose reply to drop
}

// dropRule drops the reply to the first client publish that matches.
type dropRule struct {
	match   func(subject string) bool
	dropped chan struct{} // closed once the reply was dropped
}

// maxQueued bounds the operations a proxy holds per direction of a
// connection (frozen, or delayed by latency); past it, it stops reading
// and TCP's own flow control holds the sender, as on a stalled link.
const maxQueued = 4096

// Proxy starts a FaultProxy in front of the NATS server at url ("nats://
// host:port" or "host:port"); connect to its URL instead. A t.Cleanup
// closes it — after the connections made through it later have closed —
// and waits for all its goroutines.
func Proxy(t testing.TB, url string) *FaultProxy {
	t.Helper()
	p := &FaultProxy{t: t, rng: rand.New(rand.NewPCG(1, 2)), pending: map[string]*dropRule{}}
	p.r = newRelay(strings.TrimPrefix(url, "nats://"), p.pipe)
	if err := p.r.listen("127.0.0.1:0"); err != nil {
		t.Fatalf("pltest: proxy: %v", err)
	}
	t.Cleanup(func() {
		p.Thaw()
		p.r.close()
	})
	return p
}

// URL is the address clients connect to instead of the server's. It stays
// the same across Cut and Heal.
func (p *FaultProxy) URL() string { return "nats://" + p.r.address() }

// Freeze holds all traffic through the proxy, both ways, until Thaw; the
// connections stay open. It is a process stopped by a long GC pause or a
// frozen VM, or a stalled link: the client's requests wait in the proxy,
// unanswered, and its lease renewals do not reach NATS. Freezing a frozen
// proxy does nothing.
func (p *FaultProxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.thaw == nil {
		p.thaw = make(chan struct{})
	}
}

// Thaw delivers everything Freeze held back, in order, and lets traffic
// flow again: what the frozen client sent reaches the server only now.
// Thawing a proxy that is not frozen does nothing.
func (p *FaultProxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.thaw != nil {
		close(p.thaw)
		p.thaw = nil
	}
}

// Cut closes every connection through the proxy and refuses new ones until
// Heal: the client's host drops off the network. What was in flight is
// lost.
func (p *FaultProxy) Cut() {
	p.r.refuse()
	p.r.drop(false)
}

// Heal accepts connections again, on the same address. If another
// process took the port meanwhile, the test fails (t.Error).
func (p *FaultProxy) Heal() {
	if err := p.r.listen(""); err != nil {
		p.t.Errorf("pltest: proxy: heal: %v", err)
	}
}

// Reset aborts every connection through the proxy with a TCP reset both
// ways, dropping whatever was in flight, and returns how many it aborted.
// New connections are accepted at once: a connection reset, not a cut.
func (p *FaultProxy) Reset() int {
	return p.r.drop(true)
}

// Latency delays every operation through the proxy by d, plus or minus a
// random jitter of up to jitter, each way (so a request and its reply take
// about 2d more). Order is kept, as TCP keeps it. Latency(0, 0) removes
// it. It applies to what the proxy reads from now on.
func (p *FaultProxy) Latency(d, jitter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency, p.jitter = d, jitter
}

// DropNextReply arms the proxy to lose one acknowledgement in flight: the
// next publish from a client whose subject matches subjectPattern (a NATS
// subject, where "*" matches one token and ">" the rest) and which asks for
// a reply — a JetStream publish, a KV update, a request — is delivered to
// the server, which acts on it; but the server's reply to it is not
// delivered to the client. The returned channel is closed once the reply
// has been dropped. Arming again replaces a rule that has not matched yet.
//
// It works by reading the NATS protocol: it notes the reply subject of the
// matching PUB or HPUB as it forwards it to the server, and discards the
// server's MSG or HMSG to that subject instead of forwarding it. So the
// publish and its reply must both pass through this proxy.
func (p *FaultProxy) DropNextReply(subjectPattern string) <-chan struct{} {
	return p.DropNextReplyFunc(func(subject string) bool { return subjectMatches(subjectPattern, subject) })
}

// DropNextReplyFunc is DropNextReply for the first publish whose subject
// match accepts.
func (p *FaultProxy) DropNextReplyFunc(match func(subject string) bool) <-chan struct{} {
	r := &dropRule{match: match, dropped: make(chan struct{})}
	p.mu.Lock()
	p.rule = r
	p.mu.Unlock()
	return r.dropped
}

// subjectMatches reports whether subject matches the NATS subject pattern.
func subjectMatches(pattern, subject string) bool {
	pt, st := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range pt {
		switch {
		case tok == ">":
			return len(st) > i
		case i >= len(st):
			return false
		case tok != "*" && tok != st[i]:
			return false
		}
	}
	return len(pt) == len(st)
}

// op is one NATS protocol operation in flight through the proxy.
type op struct {
	due   time.Time
	line  []byte   // the control line, with its CRLF
	f     []string // its fields
	data  []byte   // the payload and its CRLF, if it has one
	isPub bool     // PUB or HPUB (client to server)
	isMsg bool     // MSG or HMSG (server to client)
}

// pipe runs both directions of one connection.
func (p *FaultProxy) pipe(l *link) {
	var wg sync.WaitGroup
	for _, upstream := range []bool{true, false} {
		src, dst := l.server, l.client
		if upstream {
			src, dst = l.client, l.server
		}
		q := make(chan op, maxQueued)
		wg.Go(func() {
			p.read(l, src, q, upstream)
			l.end(false)
		})
		wg.Go(func() {
			p.write(l, dst, q, upstream)
			l.end(false)
		})
	}
	wg.Wait()
}

// read reads operations from src into q until src fails or the link
// ends.
func (p *FaultProxy) read(l *link, src io.Reader, q chan<- op, upstream bool) {
	defer close(q)
	r := bufio.NewReaderSize(src, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		o := op{line: line, f: strings.Fields(string(line))}
		if len(o.f) > 0 {
			name := strings.ToUpper(o.f[0])
			n, ok, err := payloadSize(name, o.f)
			if err != nil {
				return // not NATS as we know it: drop the connection
			}
			if ok {
				o.data = make([]byte, n+2) // payload and its CRLF
				if _, err := io.ReadFull(r, o.data); err != nil {
					return
				}
				o.isPub = upstream && (name == "PUB" || name == "HPUB")
				o.isMsg = !upstream && (name == "MSG" || name == "HMSG")
			} else if !upstream && name == "INFO" {
				o.line = withoutConnectURLs(line)
			}
		}
		p.mu.Lock()
		o.due = time.Now().Add(p.delayLocked())
		p.mu.Unlock()
		select {
		case q <- o:
		case <-l.done:
			return
		}
	}
}

// delayLocked returns one operation's latency.
func (p *FaultProxy) delayLocked() time.Duration {
	d := p.latency
	if p.jitter > 0 {
		d += time.Duration(p.rng.Int64N(int64(2*p.jitter)+1)) - p.jitter
	}
	return max(d, 0)
}

// write forwards the operations of q to dst, each when it is due and the
// proxy is not frozen, until q is closed or the link ends.
func (p *FaultProxy) write(l *link, dst io.Writer, q <-chan op, upstream bool) {
	w := bufio.NewWriterSize(dst, 64<<10)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var o op
		var ok bool
		select {
		case o, ok = <-q:
		default:
			// Nothing queued: send what is buffered before waiting.
			if w.Flush() != nil {
				return
			}
			select {
			case o, ok = <-q:
			case <-l.done:
				return
			}
		}
		if !ok {
			w.Flush()
			return
		}
		for {
			p.mu.Lock()
			thaw := p.thaw
			p.mu.Unlock()
			wait := time.Until(o.due)
			if thaw == nil && wait <= 0 {
				break
			}
			if w.Flush() != nil {
				return
			}
			if thaw != nil {
				select {
				case <-thaw:
				case <-l.done:
					return
				}
				continue
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-l.done:
				return
			}
		}
		if upstream && o.isPub {
			p.notePublish(o.f)
		}
		if !upstream && o.isMsg && p.dropDelivery(o.f) {
			continue
		}
		if _, err := w.Write(o.line); err != nil {
			return
		}
		if _, err := w.Write(o.data); err != nil {
			return
		}
	}
}

// notePublish records the reply subject of a client publish matching the
// armed rule: PUB <subject> [reply] <n>, HPUB <subject> [reply] <h> <n>.
func (p *FaultProxy) notePublish(f []string) {
	name := strings.ToUpper(f[0])
	withReply := (name == "PUB" && len(f) == 4) || (name == "HPUB" && len(f) == 5)
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
func (p *FaultProxy) dropDelivery(f []string) bool {
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
