package profileledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
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
	cfg      config
	names    names.Names
	nc       *nats.Conn
	js       jetstream.JetStream
	ledger   *ledger.Log
	leases   *lease.Bucket
	snaps    snapshots.Store
	users    *userIndex
	template []byte // JSON of the template
	validate func(*T) error
	log      *slog.Logger
	obs      *observer
	id       string // this Store instance's id: its control subjects
	ctlSub   *nats.Subscription

	ctx    context.Context // background work; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*Session[T] // by token
	closed   bool
}

// Open opens the store called name on js, creating its stream and buckets if
// they are missing and checking them if they exist (an incompatible existing
// configuration is an error; nothing is changed). Two processes may open the
// same store at once. template is a new profile's data; stored profiles are
// decoded over a copy of it, so fields added to T later get their template
// values (and that change is recorded as an event at the next session).
//
// ctx bounds Open only; the store's background work (lease renewal,
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
	switch {
	case cfg.leaseTTL <= 0:
		return nil, fmt.Errorf("%w: lease TTL %v must be positive", ErrInvalidInput, cfg.leaseTTL)
	case cfg.snapshotEvery <= 0:
		return nil, fmt.Errorf("%w: snapshot interval %d must be positive", ErrInvalidInput, cfg.snapshotEvery)
	case cfg.replicas < 1 || cfg.replicas > 5:
		return nil, fmt.Errorf("%w: replicas %d must be 1 to 5", ErrInvalidInput, cfg.replicas)
	case cfg.maxEventSize < 1024:
		return nil, fmt.Errorf("%w: max event size %d must be at least 1024", ErrInvalidInput, cfg.maxEventSize)
	case cfg.inboxLimit < 1:
		return nil, fmt.Errorf("%w: inbox limit %d must be at least 1", ErrInvalidInput, cfg.inboxLimit)
	case cfg.deferred < 0:
		return nil, fmt.Errorf("%w: deferred interval %v must not be negative", ErrInvalidInput, cfg.deferred)
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
	stream, err := ledger.OpenStream(ctx, js, ledger.StreamConfig{
		Name: n.Stream, Subjects: n.Subjects(), Replicas: cfg.replicas, Storage: cfg.storage,
		MaxMsgSize: int32(cfg.maxEventSize + 4096), Immutable: cfg.immutableLog,
	})
	if err != nil {
		return nil, fmt.Errorf("profileledger: open store %s: %w", name, err)
	}
	leases, err := lease.OpenBucket(ctx, js, lease.Config{Bucket: n.Leases, TTL: cfg.leaseTTL, Replicas: cfg.replicas, Storage: cfg.storage})
	if err != nil {
		return nil, fmt.Errorf("profileledger: open store %s: %w", name, err)
	}
	snaps, err := snapshots.OpenKV(ctx, js, snapshots.KVConfig{Bucket: n.Snapshots, Replicas: cfg.replicas, History: cfg.snapshotHistory, Storage: cfg.storage})
	if err != nil {
		return nil, fmt.Errorf("profileledger: open store %s: %w", name, err)
	}
	users, err := openUserIndex(ctx, js, n.Users, cfg.replicas, cfg.storage)
	if err != nil {
		return nil, fmt.Errorf("profileledger: open store %s: %w", name, err)
	}
	bg, cancel := context.WithCancel(context.Background())
	st := &Store[T]{
		cfg: cfg, names: n, nc: js.Conn(), js: js,
		ledger:   ledger.NewLog(js, stream, cfg.maxEventSize),
		leases:   leases,
		snaps:    snaps,
		users:    users,
		template: tmpl,
		validate: validate,
		log:      cfg.logger.With(logStore, name),
		id:       uuid.NewString(),
		ctx:      bg, cancel: cancel,
		sessions: make(map[string]*Session[T]),
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
	st.wg.Add(1)
	go st.renewLoop()
	st.obs.start(st.ctx, &st.wg)
	if cfg.deferred > 0 {
		st.wg.Add(1)
		go st.flushLoop()
	}
	return st, nil
}

// Name returns the store's name.
func (st *Store[T]) Name() string { return st.names.Store }

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

	errs := make([]error, len(open))
	var wg sync.WaitGroup
	for i, s := range open {
		wg.Go(func() {
			if err := s.end(ctx, reasonClose); err != nil && !errors.Is(err, ErrSessionEnded) {
				errs[i] = fmt.Errorf("end session of %q: %w", s.key, err)
			}
		})
	}
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
	err := st.ctlSub.Unsubscribe()
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
		err = nil
	}
	st.mu.Lock() // no background work is added after this
	st.cancel()
	st.mu.Unlock()
	st.wg.Wait()
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

// onControl answers a hand-over request. It runs the hand-over on its own
// goroutine (owned by the store) so that one slow hand-over does not hold up
// the others.
func (st *Store[T]) onControl(m *nats.Msg) {
	var req lease.HandoverRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		return
	}
	st.mu.Lock()
	s := st.sessions[req.Key]
	if s == nil || s.id != req.Session || st.closed || s.erasing {
		st.mu.Unlock()
		return // not ours (any more): no reply; the contender waits for the lease
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

// renewLoop renews every session's lease every third of the TTL. A session
// whose lease was taken is lost; one whose lease could not be renewed for a
// whole TTL (NATS unreachable) is lost too, because it can no longer know.
func (st *Store[T]) renewLoop() {
	defer st.wg.Done()
	every := st.leases.TTL() / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-st.ctx.Done():
			return
		case <-t.C:
		}
		st.mu.Lock()
		live := make([]*Session[T], 0, len(st.sessions))
		for _, s := range st.sessions {
			live = append(live, s)
		}
		st.mu.Unlock()
		sem := make(chan struct{}, 32)
		var wg sync.WaitGroup
		for _, s := range live {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				s.renew(st.ctx)
			})
		}
		wg.Wait()
	}
}

// flushLoop appends deferred mutations every interval.
func (st *Store[T]) flushLoop() {
	defer st.wg.Done()
	t := time.NewTicker(st.cfg.deferred)
	defer t.Stop()
	for {
		select {
		case <-st.ctx.Done():
			return
		case <-t.C:
		}
		st.mu.Lock()
		live := make([]*Session[T], 0, len(st.sessions))
		for _, s := range st.sessions {
			live = append(live, s)
		}
		st.mu.Unlock()
		// Sessions flush side by side: one whose NATS requests hang must
		// not hold up the others' flushes.
		sem := make(chan struct{}, 32)
		var wg sync.WaitGroup
		for _, s := range live {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(st.ctx, ledger.DefaultTimeout)
				defer cancel()
				if err := s.Flush(ctx); err != nil && !errors.Is(err, ErrSessionEnded) && !errors.Is(err, ErrSessionLost) {
					st.log.Warn("deferred flush failed; will retry", logKey, s.key, logErr, err)
					st.obs.fail(opFlush, s.key, err)
				}
			})
		}
		wg.Wait()
	}
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
