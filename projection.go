package profileledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/internal/retry"
	"github.com/profileledger/profileledger/ledger"
)

// Projection folds a store's events, as they are appended, into whatever
// its handler keeps: balances by account, an item-owner index, a ledger of
// trades, or the store's own snapshots (Snapshotter). It is the equivalent
// of EventStoreDB's persistent subscriptions and Marten's async daemon, on
// JetStream.
//
// A projection reads the store's event subjects (pl.<store>.ev.>) through
// one durable pull consumer, PL_<store>_PROJ_<name>, and folds every
// profile with exactly the rules of a load (Get, StartSession): the epoch
// and session filter, zombie writes and foreign messages skipped, the
// profile state (migrations, handled messages, user ids); the typed data
// a handler reads (Change.Before, Change.After) is migrated and reconciled
// with the template as Get's is.
//
// Guarantees:
//
//   - At-least-once delivery. The consumer's acknowledgement is the
//     checkpoint: a message is acknowledged after its handler returned nil
//     for each of its events. After a crash, the messages that were not
//     acknowledged are delivered again (after the consumer's ack wait);
//     nothing is missed. A handler that sees an event again is told so
//     (Change.Delivered > 1) and gets the event's stream sequence
//     (Change.Event.Seq), so that an idempotent or sequence-checked handler
//     (keep, with each profile's effect, the sequence it reflects; ignore
//     an older one) has an exactly-once effect.
//   - Order: events reach the handler in the log's order, one message at a
//     time, on one goroutine, except that a message delivered again after
//     a crash or a fail-over may come after later ones. Before and After
//     are always the fold of the profile's log before and after the event,
//     whatever the order of delivery.
//   - One active instance. Every instance of one projection (same store,
//     same name, in any process) pulls in the consumer's pinned priority
//     group (JetStream's pinned_client policy): the server delivers to one
//     of them, the others wait. When the active one stops (Run returns,
//     it unpins itself) or dies (it stops pulling: the server unpins it
//     after the pin TTL), another is pinned and takes over where the
//     acknowledgements stand.
//
// Memory: the projection keeps each recently seen profile's fold in a
// least-recently-used cache (ProjectCache, default 10,000 profiles); a
// profile not in it is loaded again from its newest snapshot and the log
// up to the event's predecessor. Whether a cached fold is the event's
// predecessor is checked against the message's stored
// Nats-Expected-Last-Subject-Sequence header (the fence the server
// verified when it stored the message), so a gap is never folded over.
//
// A handler's error (or panic) is retried, with backoff, on the same event
// until it succeeds or Run's context ends: events are never skipped. An event that
// does not apply to its profile stops Run with ErrBadEvent, as a load
// would fail (unless the store skips bad events: WithSkipBadEvents).
type Projection[T any] struct {
	st       *Store[T]
	name     string
	consumer string
	handler  Handler[T]
	afterMsg func(ctx context.Context, e *foldEntry) // the snapshotter's hook
	cfg      projectionConfig
	cache    *foldCache
	stats    projectionStats

	mu      sync.Mutex
	running bool
	pinID   string // the pin id the server gave this instance ("" none)
}

// Handler is a projection's per-event function. It is called once per
// folded event (skipped messages are not events of the profile) with the
// profile's key, the event, and the profile's data before and after it. It
// must return nil once the event's side effects are done: the event is
// then checkpointed. ctx is Run's.
type Handler[T any] func(ctx context.Context, c *Change[T]) error

// Change is one event a projection folded, with the profile before and
// after it.
type Change[T any] struct {
	// Key is the profile's key.
	Key string
	// Event is the event, with its stream sequence (Event.Seq: the
	// profile's version after it) and its index within its message.
	Event Event
	// Delivered is how many times JetStream delivered the event's message
	// to the projection: more than 1 means a handler may have seen this
	// event before (a crash or a fail-over before its acknowledgement).
	Delivered int
	// LastInMessage is true for the last event of its message (a group
	// commit holds several events under one sequence).
	LastInMessage bool
	// BeforeDoc and AfterDoc are the profile's JSON documents before and
	// after the event, as the projector package builds them (nil: none).
	// They are shared: never change them in place.
	BeforeDoc, AfterDoc any

	st                  *Store[T]
	migBefore, migAfter int
	before, after       *T
}

// Redelivered reports whether the event's message was delivered before:
// the handler may already have applied it.
func (c *Change[T]) Redelivered() bool { return c.Delivered > 1 }

// Before returns the profile's data before the event, decoded as Get
// decodes it (over the template, migrated in memory). Decoded once.
func (c *Change[T]) Before() (T, error) {
	if c.before == nil {
		d, err := c.st.dataOf(c.Key, c.BeforeDoc, c.migBefore)
		if err != nil {
			return d, err
		}
		c.before = &d
	}
	return *c.before, nil
}

// After returns the profile's data after the event, decoded as Before.
func (c *Change[T]) After() (T, error) {
	if c.after == nil {
		d, err := c.st.dataOf(c.Key, c.AfterDoc, c.migAfter)
		if err != nil {
			return d, err
		}
		c.after = &d
	}
	return *c.after, nil
}

// ProjectionOption configures a projection.
type ProjectionOption func(*projectionConfig)

type startPolicy int

const (
	startResume    startPolicy = iota // resume; a new consumer starts at the first event
	startFromStart                    // rebuild: a new consumer at the first event
	startFromNow                      // resume; a new consumer starts at the next event
)

type projectionConfig struct {
	start     startPolicy
	cacheSize int
	pinTTL    time.Duration
	ackWait   time.Duration
	batch     int
}

// ProjectFromStart makes Run rebuild the projection: it deletes the
// projection's consumer (its checkpoint) if there is one and folds every
// event from the first. Run one instance so, then start the others
// without it. The handler's own state is the caller's to reset.
func ProjectFromStart() ProjectionOption {
	return func(c *projectionConfig) { c.start = startFromStart }
}

// ProjectFromNow makes a projection that has no consumer yet start at the
// next event appended; one that has resumes from its checkpoint. Without
// it (and without ProjectFromStart) a new projection starts at the first
// event and an existing one resumes.
func ProjectFromNow() ProjectionOption {
	return func(c *projectionConfig) { c.start = startFromNow }
}

// ProjectCache sets how many profiles' folds the projection keeps in
// memory (default 10,000). A profile not in it costs a load (snapshot and
// log tail) when its next event arrives.
func ProjectCache(n int) ProjectionOption {
	return func(c *projectionConfig) { c.cacheSize = n }
}

// ProjectPinTTL sets how long the server keeps a silent instance pinned
// before it pins another (default 5 s): the fail-over time when the active
// instance dies. It applies when the consumer is created or updated.
func ProjectPinTTL(d time.Duration) ProjectionOption {
	return func(c *projectionConfig) { c.pinTTL = d }
}

// ProjectAckWait sets how long the server waits for an event's
// acknowledgement before it delivers it again (default 30 s): after a
// crash, the delay before the unacknowledged events are seen again.
func ProjectAckWait(d time.Duration) ProjectionOption {
	return func(c *projectionConfig) { c.ackWait = d }
}

// Project returns the store's projection called name (1 to 64 characters
// of A-Z a-z 0-9 _ -), which calls h for every event. Nothing runs until
// Run. Errors: ErrInvalidInput (a bad name, no handler, a bad option).
func (st *Store[T]) Project(name string, h Handler[T], opts ...ProjectionOption) (*Projection[T], error) {
	if h == nil {
		return nil, fmt.Errorf("%w: projection %q has no handler", ErrInvalidInput, name)
	}
	return st.newProjection(name, h, opts)
}

func (st *Store[T]) newProjection(name string, h Handler[T], opts []ProjectionOption) (*Projection[T], error) {
	consumer, err := st.names.Projection(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	// A small batch: the server renews an instance's pin when it pulls, and
	// the iterator pulls when half its buffer is used, so a slow handler
	// with a big buffer would lose the pin while it works through it.
	cfg := projectionConfig{cacheSize: 10_000, pinTTL: 5 * time.Second, ackWait: 30 * time.Second, batch: 64}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case cfg.cacheSize < 1:
		return nil, fmt.Errorf("%w: projection cache of %d profiles must hold at least 1", ErrInvalidInput, cfg.cacheSize)
	case cfg.pinTTL < time.Second:
		return nil, fmt.Errorf("%w: projection pin TTL %v must be at least 1s", ErrInvalidInput, cfg.pinTTL)
	case cfg.ackWait < time.Second:
		return nil, fmt.Errorf("%w: projection ack wait %v must be at least 1s", ErrInvalidInput, cfg.ackWait)
	}
	p := &Projection[T]{st: st, name: name, consumer: consumer, handler: h, cfg: cfg, cache: newFoldCache(cfg.cacheSize)}
	p.stats.init(st.names.Store, name)
	return p, nil
}

// Name returns the projection's name.
func (p *Projection[T]) Name() string { return p.name }

// Run folds events until ctx ends (then it returns nil, after unpinning
// this instance so that a waiting one takes over at once) or a fatal
// error: the consumer could not be made or was deleted, or an event does
// not apply (ErrBadEvent). While another instance is active, Run waits.
// A Projection runs once at a time; Run may be called again after it
// returned.
func (p *Projection[T]) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		return fmt.Errorf("%w: projection %q is already running", ErrInvalidInput, p.name)
	}
	p.running = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running, p.pinID = false, ""
		p.mu.Unlock()
	}()
	cons, err := p.openConsumer(ctx)
	if err != nil {
		return err
	}
	open := func() (jetstream.MessagesContext, error) {
		it, err := cons.Messages(jetstream.PullPriorityGroup(names.ProjectionGroup), jetstream.PullMaxMessages(p.cfg.batch))
		if err != nil {
			return nil, fmt.Errorf("profileledger: projection %q: %w", p.name, err)
		}
		return it, nil
	}
	it, err := open()
	if err != nil {
		return err
	}
	defer p.unpin()
	defer func() { it.Stop() }()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return fmt.Errorf("profileledger: projection %q: %w", p.name, err)
		case errors.Is(err, jetstream.ErrPinIDMismatch):
			// Another instance is pinned now: the messages this one still
			// buffers are not its to handle (unacknowledged, they go to
			// the pinned one after the ack wait). Drop them and wait.
			p.mu.Lock()
			p.pinID = ""
			p.mu.Unlock()
			it.Stop()
			if it, err = open(); err != nil {
				return err
			}
			continue
		case err != nil:
			// Transient: a pin moved, heartbeats missed, a reconnect. The
			// iterator pulls again by itself.
			p.st.log.Debug("projection pull", "projection", p.name, logErr, err)
			continue
		}
		if id := m.Headers().Get("Nats-Pin-Id"); id != "" {
			p.mu.Lock()
			p.pinID = id
			p.mu.Unlock()
		}
		if err := p.handle(ctx, m); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// unpin hands the pin over at once when this instance stops (a dead one
// loses it after the pin TTL).
func (p *Projection[T]) unpin() {
	p.mu.Lock()
	id := p.pinID
	p.mu.Unlock()
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	stream, err := p.st.js.Stream(ctx, p.st.names.Stream)
	var info *jetstream.ConsumerInfo
	if err == nil {
		var cons jetstream.Consumer
		if cons, err = stream.Consumer(ctx, p.consumer); err == nil {
			info, err = cons.Info(ctx)
		}
	}
	if err == nil {
		// Only our own pin: an instance that lost it must not unpin the
		// one that has it now.
		ours := false
		for _, g := range info.PriorityGroups {
			ours = ours || (g.Group == names.ProjectionGroup && g.PinnedClientID == id)
		}
		if !ours {
			return
		}
		err = stream.UnpinConsumer(ctx, p.consumer, names.ProjectionGroup)
	}
	if err != nil {
		p.st.log.Debug("projection unpin", "projection", p.name, logErr, err)
	}
}

// openConsumer makes or finds the projection's durable consumer.
func (p *Projection[T]) openConsumer(ctx context.Context) (jetstream.Consumer, error) {
	ctx, cancel := retry.WithDefaultTimeout(ctx, ledger.DefaultTimeout)
	defer cancel()
	stream, err := p.st.js.Stream(ctx, p.st.names.Stream)
	if err != nil {
		return nil, fmt.Errorf("profileledger: projection %q: %w", p.name, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        p.consumer,
		Description:    fmt.Sprintf("profileledger projection %q of store %s", p.name, p.st.names.Store),
		FilterSubject:  p.st.names.ProjectionFilter(),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        p.cfg.ackWait,
		MaxAckPending:  4 * p.cfg.batch,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{names.ProjectionGroup},
		PinnedTTL:      p.cfg.pinTTL,
		Replicas:       p.st.cfg.replicas,
		MemoryStorage:  p.st.cfg.storage == jetstream.MemoryStorage,
	}
	switch p.cfg.start {
	case startFromStart:
		if err := stream.DeleteConsumer(ctx, p.consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("profileledger: projection %q: delete its checkpoint: %w", p.name, err)
		}
		p.cache.clear()
	case startFromNow:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	if existing, err := stream.Consumer(ctx, p.consumer); err == nil {
		// Resume: the delivery policy of an existing consumer cannot change
		// (and must not: its checkpoint stands); the rest may.
		cfg.DeliverPolicy = existing.CachedInfo().Config.DeliverPolicy
		cfg.OptStartSeq, cfg.OptStartTime = existing.CachedInfo().Config.OptStartSeq, existing.CachedInfo().Config.OptStartTime
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("profileledger: projection %q: %w", p.name, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("profileledger: projection %q: %w", p.name, err)
	}
	return cons, nil
}

// handle folds one message and calls the handler for each of its events;
// then it acknowledges the message.
func (p *Projection[T]) handle(ctx context.Context, m jetstream.Msg) error {
	st := p.st
	meta, err := m.Metadata()
	if err != nil {
		m.Term()
		return nil // not a JetStream delivery: nothing to fold
	}
	seq := meta.Sequence.Stream
	p.stats.delivered(meta)
	token, ok := st.names.Token(m.Subject())
	key, kerr := keys.Decode(token)
	if !ok || kerr != nil {
		st.log.Warn("projection: message on a subject that names no profile", "projection", p.name, logSeq, seq, "subject", m.Subject())
		return p.ack(m)
	}
	e, err := p.predecessor(ctx, key, token, seq, m)
	if errors.Is(err, errPredecessorGone) {
		p.stats.skipped.Add(1)
		st.log.Info("projection: skipped a message whose predecessor is no longer in the log (erased?)", "projection", p.name, logKey, key, logSeq, seq)
		return p.ack(m)
	}
	if err != nil {
		return err
	}
	// Fold the message's events, each with the rules of a load.
	var changes []*Change[T]
	folded := 0
	l := e.l
	for _, r := range recordsOf(m.Data(), seq, meta.Timestamp) {
		before := l
		if err := st.fold(&l, key, r); err != nil {
			return fmt.Errorf("profileledger: projection %q: %w", p.name, err)
		}
		if l.report.Replayed == before.report.Replayed {
			p.stats.skipped.Add(1)
			continue // skipped: not an event of the profile
		}
		folded++
		if p.handler != nil {
			changes = append(changes, &Change[T]{
				Key: key, Event: publicEvent(r.Event, r.Index), Delivered: int(meta.NumDelivered),
				BeforeDoc: before.doc, AfterDoc: l.doc, st: st, migBefore: before.ps.migrated, migAfter: l.ps.migrated,
			})
		}
	}
	if n := len(changes); n > 0 {
		changes[n-1].LastInMessage = true
	}
	for _, c := range changes {
		if err := p.call(ctx, m, c); err != nil {
			return err
		}
	}
	l.report = LoadReport{Replayed: l.report.Replayed}
	next := &foldEntry{key: key, token: token, l: l, sinceSnap: e.sinceSnap + folded}
	if p.afterMsg != nil && folded > 0 {
		p.afterMsg(ctx, next)
	}
	p.cache.put(next)
	p.stats.events.Add(uint64(folded))
	return p.ack(m)
}

// predecessor returns the profile's fold just before the message at seq:
// the cached one if it is exactly that, or a load up to seq-1.
func (p *Projection[T]) predecessor(ctx context.Context, key, token string, seq uint64, m jetstream.Msg) (*foldEntry, error) {
	prev, err := strconv.ParseUint(m.Headers().Get(jetstream.ExpectedLastSubjSeqHeader), 10, 64)
	hasPrev := err == nil
	if e := p.cache.get(token); e != nil && hasPrev && e.l.fence.Seq == prev && prev < seq {
		return e, nil
	}
	if hasPrev && prev == 0 || seq <= 1 {
		return &foldEntry{key: key, token: token}, nil // the profile's first message
	}
	p.stats.loads.Add(1)
	for attempt := 0; ; attempt++ {
		l, err := p.st.load(ctx, key, token, seq-1, time.Time{})
		if err == nil && hasPrev && l.fence.Seq < prev {
			// The message's predecessor is no longer in the log: an
			// erasure purged it (the message itself is gone too, delivered
			// before the purge), or someone deleted it. Nothing to fold onto.
			return nil, errPredecessorGone
		}
		if err == nil {
			return &foldEntry{key: key, token: token, l: l, sinceSnap: l.report.Replayed}, nil
		}
		if errors.Is(err, ErrBadEvent) || ctx.Err() != nil {
			return nil, fmt.Errorf("profileledger: projection %q: load %q: %w", p.name, key, err)
		}
		p.st.log.Warn("projection: load failed; retrying", "projection", p.name, logKey, key, logErr, err)
		if !retry.Sleep(ctx, retry.Backoff(attempt+1, 10*time.Millisecond, time.Second)) {
			return nil, ctx.Err()
		}
	}
}

// errPredecessorGone: a delivered message's predecessor on its subject is
// no longer in the log (see predecessor).
var errPredecessorGone = errors.New("profileledger: the message's predecessor is no longer in the log")

// call runs the handler on c until it succeeds or ctx ends.
func (p *Projection[T]) call(ctx context.Context, m jetstream.Msg, c *Change[T]) error {
	for attempt := 0; ; attempt++ {
		err := p.runHandler(ctx, c)
		if err == nil {
			return nil
		}
		p.stats.handlerErrors.Add(1)
		p.st.log.Warn("projection handler failed; retrying", "projection", p.name, logKey, c.Key, logSeq, c.Event.Seq, logErr, err)
		m.InProgress() // keep the message ours while we retry
		if !retry.Sleep(ctx, retry.Backoff(attempt+1, 10*time.Millisecond, time.Second)) {
			return ctx.Err()
		}
	}
}

// runHandler calls the handler once; a panic is its error (and is retried
// like one), not the process's end.
func (p *Projection[T]) runHandler(ctx context.Context, c *Change[T]) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return p.handler(ctx, c)
}

func (p *Projection[T]) ack(m jetstream.Msg) error {
	if err := m.Ack(); err != nil {
		// Not acknowledged: it comes again, and the handler is told.
		p.st.log.Warn("projection ack failed", "projection", p.name, logErr, err)
	}
	return nil
}

// recordsOf splits a consumed message into its events, as a read does.
func recordsOf(data []byte, seq uint64, stored time.Time) []ledger.Record {
	events, err := ledger.DecodeMessage(data)
	if err != nil {
		return []ledger.Record{{Seq: seq, Stored: stored, Err: err}}
	}
	recs := make([]ledger.Record, len(events))
	for i, ev := range events {
		ev.Seq, ev.Stored = seq, stored
		recs[i] = ledger.Record{Seq: seq, Index: i, Stored: stored, Event: ev}
	}
	return recs
}

// projectionStats are a projection's counters, for Status and Collector.
type projectionStats struct {
	events, skipped, loads, handlerErrors, redelivered atomic.Uint64
	snapshots, snapshotErrors                          atomic.Uint64
	pending                                            atomic.Uint64 // events not yet delivered, as of the last one
	lastSeq                                            atomic.Uint64 // stream sequence of the last message delivered
	lagNanos                                           atomic.Int64  // age of the last message delivered when it was
	deliveredAt                                        atomic.Int64  // when the last message was delivered, Unix nanoseconds
	desc                                               projectionDescs
}

func (s *projectionStats) delivered(meta *jetstream.MsgMetadata) {
	if meta.NumDelivered > 1 {
		s.redelivered.Add(1)
	}
	s.pending.Store(meta.NumPending)
	if meta.Sequence.Stream > s.lastSeq.Load() {
		s.lastSeq.Store(meta.Sequence.Stream)
	}
	s.lagNanos.Store(int64(time.Since(meta.Timestamp)))
	s.deliveredAt.Store(time.Now().UnixNano())
}
