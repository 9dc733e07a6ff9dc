package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/retry"
)

// Record is one event read from a profile's subject, or, if Err is set, a
// message on the subject that is not a valid event (a foreign or garbage
// message), with its sequence so it can be reported. A message holding
// several events (a group commit) gives one Record per event, in order,
// all with the message's sequence.
type Record struct {
	// Seq is the message's stream sequence.
	Seq uint64
	// Index is the event's position in its message (0 for most).
	Index int
	// Stored is the server's timestamp of the message.
	Stored time.Time
	// Event is the decoded event, with Seq and Stored set; zero if Err != nil.
	Event Event
	// Err says why the message is not an event.
	Err error
	// Link is the message's ChainHeader value: the sequence and hash of
	// the message before it on the subject; "" on a message written
	// before the chain (or by someone else).
	Link string
	// Hash is the message's chain hash (ChainHash of Link and its data).
	Hash [32]byte
	// Signature is the message's SignatureHeader value, "" if unsigned.
	Signature string
}

// Head is the subject's head as of this record's message: its sequence and
// chain hash, the fence an append after it is made on.
func (r Record) Head() Head { return Head{Seq: r.Seq, Hash: r.Hash} }

// readBatch is how many messages one direct-get request asks for, and
// readBatchBytes how many bytes at most (the server sends at least one
// message): a batch of large group-commit messages stays small in memory.
const (
	readBatch      = 512
	readBatchBytes = 1 << 20
)

// Read calls fn for each message on subject with a sequence above after and,
// if upTo > 0, at most upTo, in order. fn's error stops the read and is
// returned.
//
// It reads with batched direct gets on pooled reply subscriptions. Measured
// against an ordered consumer (BenchmarkRead, 2-core machine): 175 µs vs
// 677 µs for a 10-event tail — the common case, since loads replay only the
// events after the newest snapshot — and 12.9 ms vs 8.3 ms for a 1,000-event
// full replay.
func (l *Log) Read(ctx context.Context, subject string, after, upTo uint64, fn func(Record) error) error {
	return l.readRaw(ctx, subject, after, upTo, func(m *nats.Msg, seq uint64, stored time.Time) error {
		for _, rec := range records(m, seq, stored) {
			if err := fn(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// RawMessage is a stored message as ReadRaw gives it.
type RawMessage struct {
	Seq    uint64
	Stored time.Time
	Header nats.Header
	Data   []byte
}

// ReadRaw is Read for messages that are not events (a profile's inbox):
// fn gets each message on subject after sequence after (and, if upTo > 0,
// at most upTo), in order, as it is stored.
func (l *Log) ReadRaw(ctx context.Context, subject string, after, upTo uint64, fn func(RawMessage) error) error {
	return l.readRaw(ctx, subject, after, upTo, func(m *nats.Msg, seq uint64, stored time.Time) error {
		return fn(RawMessage{Seq: seq, Stored: stored, Header: m.Header, Data: m.Data})
	})
}

func (l *Log) readRaw(ctx context.Context, subject string, after, upTo uint64, fn func(*nats.Msg, uint64, time.Time) error) error {
	sub, err := l.subs.get(l.nc)
	if err != nil {
		return fmt.Errorf("ledger: read %s: %w", subject, err)
	}
	clean := false // the reply stream ended (EOB or 404): the inbox may be reused
	defer func() { l.subs.put(sub, clean) }()
	next := after + 1
	for {
		b, err := l.readBatch(ctx, sub, subject, next, upTo, fn)
		clean = b.ended
		if err != nil || b.done {
			return err
		}
		next = b.last + 1
	}
}

// batchResult says how one direct-get batch ended.
type batchResult struct {
	last  uint64 // sequence of the last message read
	ended bool   // the reply stream ended: nothing more will arrive on the inbox
	done  bool   // the read is complete
}

// readBatch asks for up to readBatch messages of subject from sequence next
// and hands them to fn. Without a deadline on ctx, the wait for the batch
// (not the whole read) is bounded by DefaultTimeout.
func (l *Log) readBatch(ctx context.Context, sub *replySub, subject string, next, upTo uint64, fn func(*nats.Msg, uint64, time.Time) error) (batchResult, error) {
	ctx, cancel := retry.WithDefaultTimeout(ctx, DefaultTimeout)
	defer cancel()
	req, _ := json.Marshal(struct {
		Seq      uint64 `json:"seq"`
		NextFor  string `json:"next_by_subj"`
		Batch    int    `json:"batch"`
		MaxBytes int    `json:"max_bytes"`
		UpToSeq  uint64 `json:"up_to_seq,omitempty"`
	}{next, subject, readBatch, readBatchBytes, upTo})
	if err := l.nc.PublishRequest(l.api+"DIRECT.GET."+l.name, sub.sub.Subject, req); err != nil {
		return batchResult{}, fmt.Errorf("ledger: read %s: %w", subject, err)
	}
	var b batchResult
	for {
		var m *nats.Msg
		select {
		case m = <-sub.ch:
		case <-ctx.Done():
			return b, fmt.Errorf("ledger: read %s from %d: %w", subject, next, ctx.Err())
		}
		switch m.Header.Get("Status") {
		case "":
		case "404": // nothing (more) on the subject
			return batchResult{last: b.last, ended: true, done: true}, nil
		case "204": // end of batch
			pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			b.ended = true
			b.done = pending == 0 || b.last == 0 || (upTo > 0 && b.last >= upTo)
			return b, nil
		case "503": // no responders: on a replicated stream, no leader yet
			return b, fmt.Errorf("ledger: read %s: status 503 %s: %w", subject, m.Header.Get("Description"), nats.ErrNoResponders)
		default:
			return b, fmt.Errorf("ledger: read %s: status %s %s", subject, m.Header.Get("Status"), m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return b, fmt.Errorf("ledger: read %s: direct get reply without a sequence: %w", subject, err)
		}
		stored, _ := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
		b.last = seq
		if upTo > 0 && b.last > upTo {
			b.done = true
			return b, nil // the rest of the batch may still arrive: not ended
		}
		if err := fn(m, seq, stored); err != nil {
			return b, err
		}
	}
}

func records(m *nats.Msg, seq uint64, stored time.Time) []Record {
	link := m.Header.Get(ChainHeader)
	hash := ChainHash(link, m.Data)
	sig := m.Header.Get(SignatureHeader)
	events, err := DecodeMessage(m.Data)
	if err != nil {
		return []Record{{Seq: seq, Stored: stored, Err: err, Link: link, Hash: hash, Signature: sig}}
	}
	recs := make([]Record, len(events))
	for i, ev := range events {
		ev.Seq, ev.Stored = seq, stored
		recs[i] = Record{Seq: seq, Index: i, Stored: stored, Event: ev, Link: link, Hash: hash, Signature: sig}
	}
	return recs
}

// Last returns the sequence of the last message on subject, 0 if none.
func (l *Log) Last(ctx context.Context, subject string) (uint64, error) {
	ctx, cancel := retry.WithDefaultTimeout(ctx, DefaultTimeout)
	defer cancel()
	m, err := l.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ledger: last of %s: %w", subject, err)
	}
	return m.Sequence, nil
}

// subPool keeps reply subscriptions for reuse: a read subscribes once, not
// once per call. A subscription goes back only after its reply stream ended,
// so no late reply of one read can reach the next.
type subPool struct {
	mu     sync.Mutex
	free   []*replySub
	closed bool // a read in flight at Close unsubscribes when it is done
}

// replySub is a reply inbox whose channel holds one whole batch (and its
// end marker): the next request goes out only after the last reply was
// taken, so it never fills — unlike SubscribeSync's 64k-slot (512 KiB)
// channel, which a pool of them would pay for in memory.
type replySub struct {
	sub *nats.Subscription
	ch  chan *nats.Msg
}

const maxPooledSubs = 64

func (p *subPool) get(nc *nats.Conn) (*replySub, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		rs := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return rs, nil
	}
	p.mu.Unlock()
	rs := &replySub{ch: make(chan *nats.Msg, readBatch+8)}
	sub, err := nc.ChanSubscribe(nc.NewInbox(), rs.ch)
	if err != nil {
		return nil, err
	}
	rs.sub = sub
	return rs, nil
}

func (p *subPool) put(rs *replySub, clean bool) {
	p.mu.Lock()
	if clean && !p.closed && rs.sub.IsValid() && len(p.free) < maxPooledSubs {
		p.free = append(p.free, rs)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	rs.sub.Unsubscribe()
}

func (p *subPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rs := range p.free {
		rs.sub.Unsubscribe()
	}
	p.free, p.closed = nil, true
}

// LastFromLeader returns the sequence of the last message on subject, 0 if
// none, as the stream's leader knows it: unlike a direct get, which any
// replica may answer, this cannot be behind an acknowledged append.
func (l *Log) LastFromLeader(ctx context.Context, subject string) (uint64, error) {
	ctx, cancel := retry.WithDefaultTimeout(ctx, DefaultTimeout)
	defer cancel()
	req, _ := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{subject})
	m, err := l.nc.RequestWithContext(ctx, l.api+"STREAM.MSG.GET."+l.name, req)
	if err != nil {
		return 0, fmt.Errorf("ledger: last of %s: %w", subject, err)
	}
	var resp struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return 0, fmt.Errorf("ledger: last of %s: %w", subject, err)
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return 0, nil
		}
		return 0, fmt.Errorf("ledger: last of %s: %w", subject, resp.Error)
	}
	if resp.Message == nil {
		return 0, fmt.Errorf("ledger: last of %s: empty answer", subject)
	}
	return resp.Message.Seq, nil
}

// ReadThrough reads like Read but does not stop before sequence through: a
// replica that answers direct gets may be behind the leader for a moment,
// and a caller that knows the last sequence (LastFromLeader) must see it.
// It retries until it has read through it or ctx ends.
func (l *Log) ReadThrough(ctx context.Context, subject string, after, through uint64, fn func(Record) error) error {
	for attempt := 0; ; attempt++ {
		err := l.Read(ctx, subject, after, through, func(r Record) error {
			after = r.Seq
			return fn(r)
		})
		if err != nil || after >= through {
			return err
		}
		if !retry.Sleep(ctx, retry.Backoff(attempt+1, time.Millisecond, 100*time.Millisecond)) {
			return fmt.Errorf("ledger: read %s: a replica stayed behind sequence %d: %w", subject, through, ctx.Err())
		}
	}
}

// Subjects calls fn with every subject of the stream that matches filter
// and holds at least one message, a page of the server's answers at a time
// (sorted within a page), so that a store of any size is listed without
// holding every subject at once. fn's error stops the listing and is
// returned.
func (l *Log) Subjects(ctx context.Context, filter string, fn func(subject string) error) error {
	ctx, cancel := retry.WithDefaultTimeout(ctx, DefaultTimeout)
	defer cancel()
	offset := 0
	for {
		req, _ := json.Marshal(struct {
			Filter string `json:"subjects_filter"`
			Offset int    `json:"offset,omitempty"`
		}{filter, offset})
		m, err := l.nc.RequestWithContext(ctx, l.api+"STREAM.INFO."+l.name, req)
		if err != nil {
			return fmt.Errorf("ledger: list subjects %s: %w", filter, err)
		}
		var resp struct {
			Total int `json:"total"`
			State struct {
				Subjects map[string]uint64 `json:"subjects"`
			} `json:"state"`
			Error *jetstream.APIError `json:"error"`
		}
		if err := json.Unmarshal(m.Data, &resp); err != nil {
			return fmt.Errorf("ledger: list subjects %s: %w", filter, err)
		}
		if resp.Error != nil {
			return fmt.Errorf("ledger: list subjects %s: %w", filter, resp.Error)
		}
		page := slices.Sorted(maps.Keys(resp.State.Subjects))
		for _, subject := range page {
			if err := fn(subject); err != nil {
				return err
			}
		}
		offset += len(page)
		if len(page) == 0 || offset >= resp.Total {
			return nil
		}
	}
}
