package profileledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/internal/retry"
	"github.com/profileledger/profileledger/lease"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/snapshots"
)

// Log keys.
const (
	logStore   = "store"
	logKey     = "key"
	logSession = "session"
	logSeq     = "seq"
	logReason  = "reason"
	logErr     = "err"
)

// Store is a named collection of profiles of one Go type T. Open it once per
// process and share it; it is safe for concurrent use. T must round-trip
// through encoding/json: the log holds the profile's JSON form.
type Store[T any] struct {
	cfg        config
	names      names.Names
	nc         *nats.Conn
	js         jetstream.JetStream
	ledger     *ledger.Log
	leases     *lease.Bucket
	snaps      snapshots.Store
	users      *userIndex
	template   []byte // JSON of the template
	validate   func(*T) error
	log        *slog.Logger
	obs        *observer
	id         string // this Store instance's id: its control subjects
	ctlSub     *nats.Subscription
	watchOnce  sync.Once            // watchInboxes
	leaseWatch sync.Once            // watchLeases
	cueSubs    []*nats.Subscription // the inbox cues, once a session handles messages

	ctx    context.Context // background work; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// purgeDenied is set once the server refused this connection a purge
	// (holder rights): handled messages are no longer purged.
	purgeDenied atomic.Bool

	mu           sync.Mutex
	sessions     map[string]*Session[T] // by token
	starting     map[string]*Session[T] // by session id: sessions contending for their lease
	life         *life                  // the heartbeat new leases name; nil until a session starts, and after it lapses
	lifeStarting bool                   // a StartSession is starting one
	lifeReady    chan struct{}          // closed (and replaced) when a start of life is over
	closed       bool
}

// Open opens the store called name on js, creating its stream and buckets if
// they are missing and checking them if they exist (an incompatible existing
// configuration is an error; nothing is changed). Two processes may open the
// same store at once. template is a new profile's data; stored profiles are
// decoded over a copy of it, so fields added to T later get their template
// values (and that change is recorded as an event at the next session).
//
// A user with holder rights (package roles) cannot create streams: Open
// on a store that does not exist then fails with ErrStoreMissing, which
// names the admin step, "profileledger create <store>" (Create).
//
// The store's first session starts its heartbeat: its liveness, shared by
// every session it holds (one message every third of the lease TTL, however
// many). A store that only reads or sends messages has none.
//
// ctx bounds Open only; the store's background work (the heartbeat,
// hand-over replies, snapshots, deferred flushes) runs until Close.
func Open[T any](ctx context.Context, js jetstream.JetStream, name string, template T, opts ...Option) (*Store[T], error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	n, err := names.New(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	if cfg.node == "" {
		cfg.node, _ = os.Hostname()
	}
	tmpl, err := json.Marshal(template)
	if err != nil {
		return nil, fmt.Errorf("%w: template does not encode as JSON: %v", ErrInvalidInput, err)
	}
	if ctx == nil || js == nil {
		return nil, fmt.Errorf("%w: Open needs a context and a JetStream handle", ErrInvalidInput)
	}
	var validate func(*T) error
	if cfg.validate != nil {
		v, ok := cfg.validate.(func(*T) error)
		if !ok {
			return nil, fmt.Errorf("%w: WithValidate's function is a %T; the store's is a func(*%T) error", ErrInvalidInput, cfg.validate, template)
		}
		validate = v
	}
	if err := checkMigrations(cfg.migrations); err != nil {
		return nil, err
	}
	ctx, cancel := retry.WithDefaultTimeout(ctx, ledger.DefaultTimeout)
	defer cancel()
	parts, err := openNATS(ctx, js, n, cfg)
	if err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	st := &Store[T]{
		cfg: cfg, names: n, nc: js.Conn(), js: js,
		ledger:   ledger.NewLog(js, parts.stream, cfg.maxEventSize),
		leases:   parts.leases,
		snaps:    parts.snaps,
		users:    parts.users,
		template: tmpl,
		validate: validate,
		log:      cfg.logger.With(logStore, name),
		id:       uuid.NewString(),
		ctx:      bg, cancel: cancel,
		sessions:  make(map[string]*Session[T]),
		starting:  make(map[string]*Session[T]),
		lifeReady: make(chan struct{}),
	}
	st.obs = newObserver(name, st.nc, cfg.health)
	st.ctlSub, err = st.nc.Subscribe(n.ControlAll(st.id), st.onControl)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("profileledger: subscribe to hand-over requests: %w", err)
	}
	// The subscription must be known to the server before any lease names it.
	if err := st.nc.FlushWithContext(ctx); err != nil {
		st.ctlSub.Unsubscribe()
		cancel()
		return nil, fmt.Errorf("profileledger: subscribe to hand-over requests: %w", err)
	}
	st.obs.start(st.ctx, &st.wg)
	st.wg.Add(1)
	go st.reconnectLoop()
	return st, nil
}

// Name returns the store's name.
func (st *Store[T]) Name() string { return st.names.Store }

// closeWorkers is how many sessions Close ends at once.
const closeWorkers = 64

// Close ends every session of this store as End does (flush, append
// session.ended, snapshot, release the lease), stops the store's background
// work and waits for it. ctx bounds the ending of sessions; sessions that
// could not end cleanly by then are abandoned: they end as lost (Done is
// closed, Err matches ErrSessionLost and ErrClosed) and their leases
// expire. No session of the store is live after Close. Close is the
// equivalent of ProfileStore's BindToClose. It does not close the NATS
// connection. Calling it twice is safe.
func (st *Store[T]) Close(ctx context.Context) error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	open := make([]*Session[T], 0, len(st.sessions))
	for _, s := range st.sessions {
		open = append(open, s)
	}
	st.mu.Unlock()

	// Sessions end side by side, closeWorkers at a time: enough to keep
	// NATS busy, few enough that the store's heartbeat (on the same
	// connection) is not queued behind 100,000 ends and lapses.
	errs := make([]error, len(open))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(closeWorkers, len(open)) {
		wg.Go(func() {
			for i := range next {
				s := open[i]
				if err := s.end(ctx, reasonClose); err != nil && !errors.Is(err, ErrSessionEnded) {
					errs[i] = fmt.Errorf("end session of %q: %w", s.key, err)
				}
			}
		})
	}
	for i := range open {
		next <- i
	}
	close(next)
	wg.Wait()
	// Sessions that could not end by ctx (or that a StartSession racing
	// Close registered meanwhile) are abandoned: lost, their leases left to
	// expire. None outlives its store.
	st.mu.Lock()
	left := make([]*Session[T], 0, len(st.sessions))
	for _, s := range st.sessions {
		left = append(left, s)
	}
	st.mu.Unlock()
	for _, s := range left {
		s.lose(fmt.Errorf("%w: the store closed before the session could end (%v)", ErrClosed, ctx.Err()))
	}
	st.mu.Lock()
	subs := append([]*nats.Subscription{st.ctlSub}, st.cueSubs...)
	st.mu.Unlock()
	var err error
	for _, sub := range subs {
		if uerr := sub.Unsubscribe(); uerr != nil && !errors.Is(uerr, nats.ErrConnectionClosed) && !errors.Is(uerr, nats.ErrBadSubscription) {
			err = errors.Join(err, uerr)
		}
	}
	st.mu.Lock() // no background work is added after this
	st.cancel()
	st.mu.Unlock()
	st.wg.Wait()
	st.stopLife()
	st.ledger.Close()
	return errors.Join(append(errs, err)...)
}

// register makes s the store's session of token. A live session of the
// same profile that this store holds (a Steal, or a take-over, by the store
// that holds it) is taken over: it ends as lost at once, instead of living
// on unrenewed and unknown to Close.
func (st *Store[T]) register(token string, s *Session[T]) error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return ErrClosed
	}
	if s.life.dead {
		st.mu.Unlock()
		return errLapsed
	}
	old := st.sessions[token]
	st.sessions[token] = s
	st.mu.Unlock()
	if old != nil && old != s {
		// As if fenced: a session still starting contends again (the
		// newer one then hands it over), a live one is lost.
		old.takenOver(fmt.Errorf("%w: session %s of the same store took the profile over", ledger.ErrFenced, s.id))
	}
	return nil
}

// goBackground runs fn on a goroutine the store owns (Close waits for it),
// unless the store is closing; it reports whether fn runs.
func (st *Store[T]) goBackground(fn func()) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ctx.Err() != nil {
		return false
	}
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		fn()
	}()
	return true
}

func (st *Store[T]) unregister(token string, s *Session[T]) {
	st.mu.Lock()
	if st.sessions[token] == s {
		delete(st.sessions, token)
	}
	st.mu.Unlock()
}

func (st *Store[T]) isClosed() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.closed
}

// onControl answers a hand-over request, or takes a steal's notice. It
// runs the hand-over on its own goroutine (owned by the store) so that one
// slow hand-over does not hold up the others.
func (st *Store[T]) onControl(m *nats.Msg) {
	var req lease.HandoverRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		return
	}
	st.mu.Lock()
	s := st.sessions[req.Key]
	if s == nil || s.id != req.Session {
		s = st.starting[req.Session] // still contending: it hands over once started
	}
	switch {
	case st.closed:
		st.mu.Unlock()
		return // its sessions are ending; the leases go with them
	case req.Probe:
		st.mu.Unlock()
		data, _ := json.Marshal(lease.HandoverReply{NotHeld: s == nil})
		m.Respond(data)
		return
	case req.Stolen:
		if s == nil {
			st.mu.Unlock()
			return
		}
		st.wg.Add(1)
		st.mu.Unlock()
		go func() {
			defer st.wg.Done()
			st.confirmStolen(s, req.From)
		}()
		return
	case s == nil:
		st.mu.Unlock()
		// The lease names a session this store does not hold (it ended or
		// was lost without deleting its lease): say so, and the contender
		// takes it over at the revision it saw.
		data, _ := json.Marshal(lease.HandoverReply{NotHeld: true})
		m.Respond(data)
		return
	case s.erasing:
		st.mu.Unlock()
		return // an erasure finishes first; the contender waits for the lease
	}
	st.wg.Add(1)
	st.mu.Unlock()
	go func() {
		defer st.wg.Done()
		ctx, cancel := context.WithTimeout(st.ctx, st.cfg.handoverTimeout)
		defer cancel()
		// A session still starting hands over as soon as it has started.
		select {
		case <-s.started:
		case <-ctx.Done():
			return
		}
		var reply lease.HandoverReply
		if err := s.end(ctx, reasonHandover); err != nil && !errors.Is(err, ErrSessionEnded) {
			reply.Error = err.Error()
		} else {
			reply.Released, reply.Version = true, s.Version()
		}
		data, _ := json.Marshal(reply)
		m.Respond(data)
	}()
}

// confirmStolen reads the lease of s after a steal's notice and, if
// another session holds it now, ends s as lost at once. (Anyone may send a
// notice; only the lease decides. Without a notice, s finds out at its next
// fenced append.)
func (st *Store[T]) confirmStolen(s *Session[T], by string) {
	select {
	case <-s.started:
	case <-st.ctx.Done():
		return
	}
	ctx, cancel := context.WithTimeout(st.ctx, leaseAttemptTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		cur, held, err := st.leases.Get(ctx, s.token)
		switch {
		case err == nil && held && cur.Record.Session == s.id:
			return
		case err == nil:
			s.takenOver(fmt.Errorf("lease taken over by %s", by))
			return
		case attempt >= 3 || !retry.Sleep(ctx, retry.Backoff(attempt+1, 50*time.Millisecond, time.Second)):
			return // the fence tells it at its next append
		}
	}
}

// scheduleFlush flushes s's deferred mutations one interval from now, on a
// timer of s's own: a session costs nothing while it has nothing to flush,
// and one slow or stuck flush delays no other session's. s.mu is held.
func (st *Store[T]) scheduleFlush(s *Session[T]) {
	time.AfterFunc(st.cfg.deferred, func() {
		st.goBackground(func() { st.timedFlush(s) })
	})
}

// timedFlush runs a flush that scheduleFlush set up; a failed one is
// tried again an interval later.
func (st *Store[T]) timedFlush(s *Session[T]) {
	s.mu.Lock()
	s.flushDue = false // mutations from here on schedule the next one
	active := s.state == stateActive
	s.mu.Unlock()
	if !active {
		return // End (or a loss) settles the backlog
	}
	ctx, cancel := context.WithTimeout(st.ctx, ledger.DefaultTimeout)
	defer cancel()
	err := s.Flush(ctx)
	if err == nil || errors.Is(err, ErrSessionEnded) || errors.Is(err, ErrSessionLost) || st.ctx.Err() != nil {
		return
	}
	st.log.Warn("deferred flush failed; will retry", logKey, s.key, logErr, err)
	st.obs.fail(opFlush, s.key, err)
	s.mu.Lock()
	if !s.flushDue && s.state == stateActive {
		s.flushDue = true
		st.scheduleFlush(s)
	}
	s.mu.Unlock()
}

// saveSnapshot writes a snapshot in the background (snapshots are derived
// data: a failure is logged, never fatal).
func (st *Store[T]) saveSnapshot(p pendingSnapshot) {
	st.mu.Lock()
	if st.ctx.Err() != nil {
		st.mu.Unlock()
		return
	}
	st.wg.Add(1)
	st.mu.Unlock()
	go func() {
		defer st.wg.Done()
		ctx, cancel := context.WithTimeout(st.ctx, ledger.DefaultTimeout)
		defer cancel()
		snap, err := p.encode()
		if err == nil {
			err = st.snaps.Save(ctx, snap)
		}
		if err != nil {
			st.log.Warn("snapshot not saved", logKey, p.key, logSeq, p.version, logErr, err)
			st.obs.fail(opSnapshot, p.key, err)
		}
	}()
}

func encodeKey(key string) (string, error) {
	tok, err := keys.Encode(key)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return tok, nil
}
