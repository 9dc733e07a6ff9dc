package profileledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	clone "github.com/huandu/go-clone"
	"github.com/profileledger/profileledger/internal/retry"
	"github.com/profileledger/profileledger/lease"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
	"github.com/profileledger/profileledger/snapshots"
)

// Reasons written into session.ended.
const (
	reasonEnd      = "end"
	reasonHandover = "handover"
	reasonClose    = "close"
)

type sessionState int

const (
	stateStarting sessionState = iota
	stateActive
	stateEnding
	stateDone
)

// Session is one process's exclusive, live ownership of one profile. All its
// methods are safe for concurrent use; concurrent mutations are committed in
// order, several to one atomic append when they arrive together.
type Session[T any] struct {
	st      *Store[T]
	key     string
	token   string
	subject string
	id      string
	erasing bool          // Erase's session: it appends the tombstone and nothing else
	started chan struct{} // closed when StartSession has finished, either way
	done    chan struct{} // closed when the session is over

	mu          sync.Mutex
	idle        *sync.Cond // broadcast when committing turns false
	state       sessionState
	err         error
	epoch       uint64
	data        T      // committed data; replaced, never changed in place
	doc         any    // the folded document: the JSON form of data, plus members T does not know (projector.Overlay); never changed in place
	logDoc      any    // the document as the log holds it at version: doc less the unflushed deferred mutations
	version     uint64 // last event of the profile in the log
	fence       head   // last message on the subject this session has read, and its chain hash
	lazyDoc     bool   // doc and logDoc are data's JSON form, not kept until needed (materializeLocked)
	lease       lease.Lease
	life        *life // the store's heartbeat incarnation the lease names
	sinceSnap   int
	queue       []*request[T]
	committing  bool
	claimers    int // trades waiting in claim
	resync      bool
	unflushed   []pending       // deferred mode: applied in memory, not yet in the log, in order
	inflight    int             // deferred mode: the first inflight unflushed events are one message whose outcome is unknown...
	inflightAt  head            // ...sent at this fence: it is sent again byte for byte, or found in the log
	uncertain   map[string]bool // ids of events whose append's outcome is unknown (durable mode, trades)
	gen         uint64          // bumped when readPast replaces doc under a deferred session's feet
	flushMu     sync.Mutex      // one flush at a time: two would race for one fence
	flushDue    bool            // deferred mode: a timed flush is scheduled (Store.scheduleFlush)
	report      LoadReport
	ps          profileState            // the profile's state beside data: what the fold keeps of library events
	logPS       profileState            // ps as the log holds it at version (deferred mode: less the unflushed)
	startLost   error                   // set by lose while starting: StartSession must not return the session
	handler     func(*T, Message) error // HandleMessages's fn
	delivering  bool                    // a delivery runs (messages.go)
	cued        bool                    // the inbox may hold something new: deliver reads it
	rawCue      bool                    // ...and the cue was the inbox subject itself
	refusals    int                     // the handler's refusals in a row (the pause grows); deliver's own
	looks       int                     // reads after a raw cue that found nothing yet; deliver's own
	purged      uint64                  // the inbox is purged through here; deliver's own
	pendingSeen int64                   // messages the delivery loop last reported pending (metrics)
	doneOnce    sync.Once               // done is closed once, by finish or a failed start
}

type request[T any] struct {
	ctx    context.Context
	typ    string
	fn     func(*T) error
	ops    []ledger.Op
	target any               // Rollback: the document to turn the data into
	msgSeq uint64            // a handled inbox message: its sequence
	always bool              // an event even if nothing changes (a handled message, a user id)
	lib    bool              // the library's own request: typ and meta are set and checked
	meta   map[string]string // the event's metadata: the caller's, and the library's
	done   chan error
}

// StartSession makes this process the one live holder of the profile key
// and returns once its fence (a session.started event with a new epoch) is
// in the log, with the profile's data folded from the newest snapshot and
// the events after it.
//
// If another session holds the profile, StartSession by default asks it to
// hand over (it flushes, ends and releases within milliseconds) and, if it
// does not answer, waits for its lease to expire; with Steal it takes over
// at once; with NoWait it fails with ErrLocked. ctx bounds the whole start,
// including the wait: cancel it to give up (the error wraps ErrLocked and
// the context's error). The session itself lives until End, Store.Close,
// a hand-over or a loss, not until ctx ends.
//
// Errors: ErrInvalidKey, ErrLocked, ErrClosed, ErrBadEvent (the log holds an
// event that does not fold), ErrSessionLost (the lease was taken or could
// not be renewed while starting), or a NATS error if ctx ended while NATS
// was unreachable.
func (st *Store[T]) StartSession(ctx context.Context, key string, opts ...SessionOption) (*Session[T], error) {
	var sc sessionConfig
	for _, o := range opts {
		o(&sc)
	}
	sc.erase = false
	return st.startSession(ctx, key, sc)
}

func (st *Store[T]) startSession(ctx context.Context, key string, sc sessionConfig) (*Session[T], error) {
	t0 := time.Now()
	token, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	if st.isClosed() {
		return nil, ErrClosed
	}
	s := &Session[T]{
		st: st, key: key, token: token, subject: st.names.Events(token), erasing: sc.erase,
		id:      uuid.NewString(),
		started: make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.idle = sync.NewCond(&s.mu)
	// While it contends, the session answers hand-over requests (once it
	// has started) and steal notices addressed to its id.
	st.mu.Lock()
	st.starting[s.id] = s
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		delete(st.starting, s.id)
		st.mu.Unlock()
	}()
	// Read the profile while contending for its lease: an uncontended start
	// then costs the lease's round trips and the fence's, not the load's
	// too. A read that turns out stale is caught by the fence.
	pf := st.prefetch(ctx, key, token)
	defer pf.wait()
	for attempt := 0; ; attempt++ {
		lf, err := st.currentLife(ctx)
		if err != nil {
			return nil, err
		}
		rec := lease.Record{Session: s.id, Node: st.cfg.node, Control: st.names.Control(st.id, token), Holder: lf.hb.ID()}
		l, free, err := st.acquire(ctx, token, rec, sc)
		if err != nil {
			return nil, err
		}
		var pre *loaded
		if free && attempt == 0 {
			// Nobody held it when we took it: what we read is its last state
			// unless a zombie appends, which the fence rejects.
			pre = pf.result()
		}
		s.mu.Lock()
		s.lease, s.life = l, lf
		s.mu.Unlock()
		if err := st.register(token, s); err != nil {
			st.releaseQuietly(l)
			if errors.Is(err, errLapsed) {
				if attempt < 5 {
					continue // the lease named a heartbeat that lapsed meanwhile: again, under the new one
				}
				err = fmt.Errorf("%w: %w", ErrSessionLost, err)
			}
			return nil, err
		}
		err = s.begin(ctx, pre)
		if err == nil {
			s.mu.Lock()
			if err = s.startLost; err == nil {
				s.state = stateActive
				st.obs.started(t0)
			}
			s.mu.Unlock()
			if err == nil {
				close(s.started)
				if st.isClosed() {
					// Close ran while this session started: it must not
					// come back live from a closed store. (A Close that
					// starts after this look ends it, or abandons it.)
					s.end(ctx, reasonClose)
					return nil, ErrClosed
				}
				return s, nil
			}
			// Lost while starting (its lease was taken, or could not be
			// renewed): the fence is in the log, but this start failed.
			err = fmt.Errorf("%w: %w", ErrSessionLost, err)
		}
		st.unregister(token, s)
		s.mu.Lock()
		s.startLost = nil
		s.mu.Unlock()
		if !errors.Is(err, ledger.ErrFenced) || sc.noWait || attempt >= 5 || ctx.Err() != nil {
			// Not worth another round: give the lease back and report.
			st.releaseQuietly(l)
			s.mu.Lock()
			s.state, s.err = stateDone, err
			s.mu.Unlock()
			close(s.started)
			s.doneOnce.Do(func() { close(s.done) })
			if errors.Is(err, ledger.ErrFenced) {
				return nil, fmt.Errorf("%w: %q was taken by a newer session while starting: %w", ErrLocked, key, err)
			}
			return nil, err
		}
		// A newer session fenced us between our lease and our fence (a
		// steal): contend again.
	}
}

// leaseAttemptTimeout bounds one lease read or write while starting.
const leaseAttemptTimeout = 2 * time.Second

// acquire gets the lease of token, by create, hand-over, expiry or steal.
// free says that nobody held it: it was created at the first look.
//
// A held lease is live while the heartbeat it names is: a dead holder's
// lease is taken over as soon as its heartbeat is gone (or silent for a
// TTL by this process's clock), a stale record (its node answers that it
// holds no such session) at once. Each take-over is a compare-and-set on
// the revision seen; the log's fence decides the rest.
func (st *Store[T]) acquire(ctx context.Context, token string, rec lease.Record, sc sessionConfig) (l lease.Lease, free bool, err error) {
	poll := min(max(st.leases.TTL()/10, 20*time.Millisecond), 250*time.Millisecond)
	for attempt := 0; ; attempt++ {
		// One attempt must not wait for a reply that was lost until the
		// caller's deadline: bound it, and try again.
		actx, cancel := context.WithTimeout(ctx, leaseAttemptTimeout)
		l, err := st.leases.Acquire(actx, token, rec)
		cancel()
		if err == nil {
			return l, attempt == 0, nil
		}
		var held *lease.HeldError
		if !errors.As(err, &held) {
			// NATS unreachable or slow: keep trying until ctx ends.
			if ctx.Err() != nil {
				return lease.Lease{}, false, fmt.Errorf("profileledger: start session: %w", err)
			}
			st.log.Warn("lease not reachable; retrying", logKey, token, logErr, err)
			st.obs.leaseUnreachable(token, err)
			if !retry.Sleep(ctx, retry.Backoff(attempt+1, 10*time.Millisecond, time.Second)) {
				return lease.Lease{}, false, fmt.Errorf("profileledger: start session: %w (last error: %v)", ctx.Err(), err)
			}
			continue
		}
		cur := held.Current
		seen := time.Now()
		if sc.noWait {
			// A dead holder holds nothing: take it over; a live one's
			// profile is locked.
			actx, cancel := context.WithTimeout(ctx, leaseAttemptTimeout)
			live, err := st.leases.Live(actx, cur)
			cancel()
			if err == nil && live {
				// A live node: does it hold the session, or is the record
				// one its session left behind?
				pctx, cancel := context.WithTimeout(ctx, min(st.cfg.handoverTimeout, leaseAttemptTimeout))
				live, err = lease.ProbeHolder(pctx, st.nc, cur, st.cfg.node)
				cancel()
			}
			if err != nil || live {
				return lease.Lease{}, false, fmt.Errorf("%w: %w", ErrLocked, held)
			}
			sc.steal = true
		}
		if sc.steal {
			if l, done, err := st.takeOver(ctx, token, cur, rec); done {
				if err == nil {
					st.obs.stole()
					lease.NotifyStolen(st.nc, cur, st.cfg.node)
				}
				return l, false, err
			}
			continue // it changed under us, or the reply was lost: look again
		}
		reply, dead, err := st.askHolder(ctx, cur, poll)
		st.obs.handover(seen, err == nil && reply.Released)
		if dead {
			st.obs.waited(lease.Expired)
			st.log.Info("taking over a dead holder's profile", logKey, token, "holder", cur.Record.Node)
			if l, done, err := st.takeOver(ctx, token, cur, rec); done {
				return l, false, err
			}
			continue
		}
		switch {
		case err == nil && reply.Released:
			continue
		case err == nil && reply.NotHeld:
			if l, done, err := st.takeOver(ctx, token, cur, rec); done {
				return l, false, err
			}
			continue
		case ctx.Err() != nil:
			return lease.Lease{}, false, fmt.Errorf("%w: gave up waiting for %s: %w", ErrLocked, cur.Record.Node, ctx.Err())
		}
		// No answer: wait for the lease to go or change, or for its
		// holder's heartbeat to lapse; and after two TTLs ask again (a
		// live node whose session is gone answers "not held").
		wctx, cancel := context.WithTimeout(ctx, 2*st.leases.TTL())
		wl, res, err := st.leases.WaitHolder(wctx, cur, seen, poll)
		cancel()
		if err != nil && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return lease.Lease{}, false, fmt.Errorf("%w: gave up waiting for %s: %w", ErrLocked, cur.Record.Node, err)
		}
		st.obs.waited(res)
		if res == lease.Expired {
			st.log.Info("taking over a dead holder's profile", logKey, token, "holder", wl.Record.Node)
			if l, done, err := st.takeOver(ctx, token, wl, rec); done {
				return l, false, err
			}
		}
	}
}

// askHolder sends the holder of cur a hand-over request and, while it
// waits for the reply, watches the holder's heartbeat: a holder that died
// just before (a request to it can be dropped without a "no responders"
// answer, on a cluster whose member has not yet seen its connection close)
// is taken over once its heartbeat is gone, not after the request's
// timeout. dead says so; reply and err are the request's otherwise.
func (st *Store[T]) askHolder(ctx context.Context, cur lease.Lease, poll time.Duration) (reply lease.HandoverReply, dead bool, err error) {
	hctx, cancel := context.WithTimeout(ctx, st.cfg.handoverTimeout)
	defer cancel()
	type answer struct {
		r   lease.HandoverReply
		err error
	}
	ans := make(chan answer, 1)
	go func() {
		r, err := lease.RequestHandover(hctx, st.nc, cur, st.cfg.node)
		ans <- answer{r, err}
	}()
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case a := <-ans:
			return a.r, false, a.err
		case <-t.C:
			if cur.Record.Holder == "" {
				continue // an older writer's record: its own TTL decides, later
			}
			if live, err := st.leases.Live(hctx, cur); err == nil && !live {
				cancel()
				<-ans
				return lease.HandoverReply{}, true, nil
			}
		}
	}
}

// takeOver replaces the lease cur with rec (a compare-and-set on cur's
// revision). done says the start has its answer: the lease (err nil), or
// an error to return; otherwise the lease changed under us (or the reply
// was lost, or NATS is unreachable with time left): look again.
func (st *Store[T]) takeOver(ctx context.Context, token string, cur lease.Lease, rec lease.Record) (l lease.Lease, done bool, err error) {
	actx, cancel := context.WithTimeout(ctx, leaseAttemptTimeout)
	defer cancel()
	l, err = st.leases.Steal(actx, token, cur.Revision, rec)
	if err == nil {
		return l, true, nil
	}
	again := errors.Is(err, lease.ErrLost) || ctx.Err() == nil
	return lease.Lease{}, !again, err
}

// releaseLater gives back, in the background, a lease whose release failed
// with err: a few tries, until it is released or another's. (Until then a
// contender is answered "not held" by this node, or finds it dead.)
func (st *Store[T]) releaseLater(l lease.Lease, err error) {
	if errors.Is(err, lease.ErrLost) {
		return
	}
	st.goBackground(func() {
		for attempt := 1; attempt <= 5; attempt++ {
			if !retry.Sleep(st.ctx, retry.Backoff(attempt, 100*time.Millisecond, 2*time.Second)) {
				return
			}
			ctx, cancel := context.WithTimeout(st.ctx, leaseAttemptTimeout)
			err := st.leases.Release(ctx, l)
			cancel()
			if err == nil || errors.Is(err, lease.ErrLost) {
				return
			}
		}
	})
}

func (st *Store[T]) releaseQuietly(l lease.Lease) {
	ctx, cancel := context.WithTimeout(st.ctx, st.leases.TTL())
	defer cancel()
	if err := st.leases.Release(ctx, l); err != nil {
		st.log.Debug("lease not released", logKey, l.Key, logErr, err)
	}
}

// begin loads the profile, reconciles it with the template and appends the
// session.started fence. A stale read (someone appended after our load,
// without a newer epoch) is re-read a few times; a newer epoch is returned
// as ErrFenced.
//
// After a steal the old holder may go on appending until it learns it was
// stolen; the fence keeps failing until then, so begin keeps trying until
// ctx ends.
func (s *Session[T]) begin(ctx context.Context, pre *loaded) error {
	st := s.st
	loads := 0
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !retry.Sleep(ctx, retry.Backoff(attempt, time.Millisecond, 50*time.Millisecond)) {
			return fmt.Errorf("profileledger: start session of %q: the log kept moving under the load: %w", s.key, ctx.Err())
		}
		var l loaded
		if pre != nil {
			l, pre = *pre, nil
		} else {
			lctx, cancel := context.WithTimeout(ctx, loadAttempt(loads))
			var err error
			l, err = st.load(lctx, s.key, s.token, 0, time.Time{})
			cancel()
			loads++
			if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				continue // unanswered (a leader election?): again
			}
			if err != nil {
				return err
			}
		}
		if err := st.checkMigrated(s.key, l.ps.migrated, l.ps.migration); err != nil && !s.erasing {
			return err
		}
		// Migrations the profile has not had run now, each one event in
		// the fence's message; a new profile is the template, already in
		// the current shape.
		steps := st.cfg.migrations
		migrated, doc := l.ps.migrated, l.doc
		var migrations []ledger.Event
		if l.version == 0 || l.doc == nil { // new, or erased
			migrated = len(steps)
		} else if migrated < len(steps) && !s.erasing {
			var err error
			if doc, migrations, err = st.migrationEvents(s.key, doc, migrated); err != nil {
				return err
			}
			migrated = len(steps)
		}
		var data T
		var ops []ledger.Op
		exact := false
		if !s.erasing { // an erasure needs the fence only: its data is about to go
			var err error
			if data, doc, ops, exact, err = st.reconcile(doc); err != nil {
				return fmt.Errorf("profileledger: profile %q: %w", s.key, err)
			}
		}
		epoch := l.epoch + 1
		now := time.Now().UTC()
		ev := ledger.Event{
			ID: uuid.NewString(), Type: ledger.TypeSessionStarted, Session: s.id, Epoch: epoch, Time: now,
			Meta: map[string]string{ledger.MetaNode: st.cfg.node, ledger.MetaPrevious: fmt.Sprint(l.epoch)},
		}
		migration := l.ps.migration
		if migrated > 0 && !s.erasing {
			migration = steps[migrated-1].Name
			ev.Meta[ledger.MetaMigrated], ev.Meta[ledger.MetaMigration] = fmt.Sprint(migrated), migration
		}
		// Reconcile ops go with the last event of the message: the fence,
		// or the last migration step (they apply to the migrated shape).
		last := &ev
		for i := range migrations {
			migrations[i].ID, migrations[i].Session, migrations[i].Epoch, migrations[i].Time = uuid.NewString(), s.id, epoch, now
			last = &migrations[i]
		}
		if len(ops) > 0 {
			last.Ops = append(last.Ops, ops...)
			last.Meta[ledger.MetaReconcile] = "true"
		}
		events := append([]ledger.Event{ev}, migrations...)
		ps := l.ps
		for _, e := range events {
			ps = foldState(ps, e, time.Time{})
		}
		seq, err := st.ledger.Append(ctx, s.subject, l.fence, events...)
		st.obs.appended(s.key, len(events), err)
		if errors.Is(err, ledger.ErrStale) {
			continue
		}
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.epoch, s.data, s.doc, s.logDoc = epoch, data, doc, doc
		if exact && len(migrations) == 0 {
			// The document is exactly data's JSON form: an idle session
			// need not hold it twice (materializeLocked).
			s.doc, s.logDoc, s.lazyDoc = nil, nil, true
		}
		s.ps, s.logPS = ps, ps
		s.version, s.fence = seq.Seq, seq
		s.report = l.report
		s.sinceSnap = l.report.Replayed + 1
		s.mu.Unlock()
		if s.sinceSnap >= st.cfg.snapshotEvery && !s.erasing {
			s.mu.Lock()
			s.snapshotLocked()
			s.mu.Unlock()
		}
		return nil
	}
}

// prefetched is a load started before the lease was won.
type prefetched struct {
	done chan struct{}
	l    loaded
	err  error
}

func (st *Store[T]) prefetch(ctx context.Context, key, token string) *prefetched {
	pf := &prefetched{done: make(chan struct{})}
	go func() {
		defer close(pf.done)
		ctx, cancel := context.WithTimeout(ctx, loadAttempt(0))
		defer cancel()
		pf.l, pf.err = st.load(ctx, key, token, 0, time.Time{})
	}()
	return pf
}

// loadAttempt bounds the n-th load of a start: a read sent while the
// stream elects a leader is never answered, and a start must not wait its
// whole context for it. Each bound is twice the last (5 s, 10 s, 20 s,
// then 40 s), so that a long replay still gets its time.
func loadAttempt(n int) time.Duration { return 5 * time.Second << min(n, 3) }

// wait waits for the prefetch to finish (it is bounded by the start's ctx).
func (pf *prefetched) wait() { <-pf.done }

// result returns the prefetched load, or nil if it failed.
func (pf *prefetched) result() *loaded {
	pf.wait()
	if pf.err != nil {
		return nil
	}
	l := pf.l
	return &l
}

// materializeLocked builds doc and logDoc from data if begin left them out
// (lazyDoc). Every path that reads either calls it first.
func (s *Session[T]) materializeLocked() {
	if !s.lazyDoc {
		return
	}
	s.lazyDoc = false
	raw, err := json.Marshal(s.data)
	if err == nil {
		var doc any
		if doc, err = projector.Decode(raw); err == nil {
			s.doc, s.logDoc = doc, doc
			return
		}
	}
	// data encoded once already (begin); it cannot fail now.
	panic(fmt.Sprintf("profileledger: re-encoding the data of %q: %v", s.key, err))
}

// reconcile decodes doc over a copy of the template and returns the typed
// data, its document (its JSON form laid over doc, so that members T does
// not know are kept: projector.Overlay), the ops that turn doc into it, and
// whether the document is exactly data's JSON form (no member T does not
// know).
func (st *Store[T]) reconcile(doc any) (data T, newDoc any, ops []ledger.Op, exact bool, err error) {
	if err := json.Unmarshal(st.template, &data); err != nil {
		return data, nil, nil, false, fmt.Errorf("decode template: %w", err)
	}
	if doc != nil {
		stored, err := projector.Encode(doc)
		if err != nil {
			return data, nil, nil, false, err
		}
		if err := json.Unmarshal(stored, &data); err != nil {
			return data, nil, nil, false, fmt.Errorf("%w: stored data does not fit the profile's type: %v", ErrBadEvent, err)
		}
	}
	compact(reflect.ValueOf(&data).Elem())
	raw, err := json.Marshal(data)
	if err != nil {
		return data, nil, nil, false, err
	}
	if newDoc, err = projector.Decode(raw); err != nil {
		return data, nil, nil, false, err
	}
	// Members of the stored document that T does not know (a newer server
	// wrote them) stay: reconcile fills in, it never deletes.
	pure := newDoc
	newDoc = projector.Overlay(doc, newDoc)
	return data, newDoc, projector.Diff(doc, newDoc), len(projector.Diff(pure, newDoc)) == 0, nil
}

// Key returns the profile's key.
func (s *Session[T]) Key() string { return s.key }

// ID returns the session's id, as written in its events.
func (s *Session[T]) ID() string { return s.id }

// Epoch returns the session's epoch.
func (s *Session[T]) Epoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// LoadReport says how StartSession rebuilt the profile.
//
// Messages skipped later, when the session read past messages that are not
// its own (foreign or garbage ones), are added to it, within the same bound.
func (s *Session[T]) LoadReport() LoadReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.report.clone()
}

// Data returns a deep copy of the profile's data: changing it changes
// nothing. Use Mutate or Apply to change the profile.
//
// Data reads memory, not the log: after another server stole the profile,
// this session learns it from the stealer's notice, from the write of its
// lease (the store watches its lease bucket), after a reconnect (the store
// checks the leases of its sessions), or at its next append — and until
// then Data still returns its last data. Decide
// nothing irreversible on Data alone; a Mutate (or Test op) is checked
// against the log.
func (s *Session[T]) Data() T {
	s.mu.Lock()
	d := s.data
	s.mu.Unlock()
	return clone.Clone(d).(T)
}

// View calls fn with the profile's current data, without copying it. fn
// must not change it nor keep it after returning: the data is shared.
func (s *Session[T]) View(fn func(*T)) {
	s.mu.Lock()
	d := s.data
	s.mu.Unlock()
	fn(&d)
}

// Version returns the stream sequence of the profile's latest durable event.
func (s *Session[T]) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Done is closed when the session is over: ended, handed over, or lost.
func (s *Session[T]) Done() <-chan struct{} { return s.done }

// Err returns nil while the session is live, and why it is over after Done
// is closed: ErrSessionEnded (End or Store.Close), ErrHandedOver (which
// matches ErrSessionEnded too), or an error matching ErrSessionLost.
func (s *Session[T]) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateDone {
		return nil
	}
	return s.err
}

// End flushes pending mutations, appends session.ended, writes a snapshot
// and releases the lease. Calling End again returns nil. If the session was
// lost, End returns the error matching ErrSessionLost.
//
// ctx bounds End. If it ends before the session could end cleanly (an
// append in flight that NATS does not answer), the session is abandoned: it
// ends as lost, End returns that error (it also matches the context's
// error), and its lease expires instead of being released.
func (s *Session[T]) End(ctx context.Context) error {
	err := s.end(ctx, reasonEnd)
	if errors.Is(err, ErrSessionEnded) {
		return nil
	}
	return err
}

func (s *Session[T]) end(ctx context.Context, reason string) error {
	select {
	case <-s.started: // a started session ends (or is abandoned) even if ctx is over
	default:
		select {
		case <-s.started:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	switch s.state {
	case stateDone:
		err := s.err
		s.mu.Unlock()
		return err
	case stateEnding:
		s.mu.Unlock()
		select {
		case <-s.done:
			return s.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.state = stateEnding // no new mutations from here
	// Queued mutations finish (each bounded by its deadline), unless ctx
	// ends first: then the session cannot end cleanly in time, and is
	// abandoned as lost (the append in flight still gets its outcome).
	if !s.waitIdleLocked(ctx) {
		s.mu.Unlock()
		s.lose(fmt.Errorf("ending: the context ended while an append was in flight: %w", ctx.Err()))
		return s.Err()
	}
	if s.state == stateDone {
		err := s.err
		s.mu.Unlock()
		return err
	}
	resync := s.resync
	s.mu.Unlock()

	if resync {
		// An earlier append's outcome is unknown: fold it in if it landed,
		// so session.ended is fenced on the log as it is.
		s.flushMu.Lock()
		err := s.readPast(ctx)
		s.flushMu.Unlock()
		if err != nil {
			s.lose(fmt.Errorf("could not read back an unknown outcome before ending: %w", err))
			return s.Err()
		}
	}
	if err := s.flush(ctx, s.newEvent(ledger.TypeSessionEnded, nil, map[string]string{ledger.MetaReason: reason})); err != nil {
		s.lose(fmt.Errorf("could not append session.ended: %w", err))
		return s.Err()
	}
	// Snapshot before the lease goes, so the next holder starts from it.
	s.mu.Lock()
	pending := s.snapshotValueLocked()
	s.mu.Unlock()
	snap, err := pending.encode()
	if err == nil {
		err = s.st.snaps.Save(ctx, snap)
	}
	if err != nil {
		s.st.log.Warn("snapshot not saved at session end", logKey, s.key, logErr, err)
		s.st.obs.fail(opSnapshot, s.key, err)
	}
	s.mu.Lock()
	l := s.lease
	s.mu.Unlock()
	if err = s.st.leases.Release(ctx, l); err != nil {
		// The session's end is in the log; the lease is given back later.
		s.st.log.Warn("lease not released; trying again in the background", logKey, s.key, logErr, err)
		s.st.releaseLater(l, err)
	}
	final := ErrSessionEnded
	if reason == reasonHandover {
		final = ErrHandedOver
	}
	s.mu.Lock()
	if s.state == stateDone { // lost meanwhile: that is what it is
		err := s.err
		s.mu.Unlock()
		return err
	}
	s.state, s.err = stateDone, final
	s.mu.Unlock()
	s.finish()
	return final
}

// ending reports whether End (or a hand-over, or Close) is under way.
func (s *Session[T]) ending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == stateEnding
}

// lose ends the session as lost because of cause.
func (s *Session[T]) lose(cause error) { s.loseUnless(cause, stateDone) }

// takenOver ends the session as lost because another session of its store
// took its profile, unless it is already on its way out (ending: it will
// finish by itself, and its end is fenced by the newer session anyway).
func (s *Session[T]) takenOver(cause error) { s.loseUnless(cause, stateEnding) }

func (s *Session[T]) loseUnless(cause error, over sessionState) {
	s.mu.Lock()
	switch s.state {
	case stateDone, over:
		s.mu.Unlock()
		return
	case stateStarting:
		// StartSession owns a starting session's end: tell it.
		if s.startLost == nil {
			s.startLost = cause
		}
		s.mu.Unlock()
		return
	}
	s.state, s.err = stateDone, fmt.Errorf("%w: %w", ErrSessionLost, cause)
	l := s.lease
	s.mu.Unlock()
	s.st.log.Warn("session lost", logKey, s.key, logSession, s.id, logErr, cause)
	s.finish()
	// The lease outlives the session only while this node lives, so give
	// it back (a compare-and-set: a lease already taken over is left).
	// A write of this session still in flight is stopped by the next
	// holder's fence, as a zombie's is.
	s.st.goBackground(func() { s.st.releaseQuietly(l) })
}

// finish runs once, after state became stateDone.
func (s *Session[T]) finish() {
	s.st.unregister(s.token, s)
	s.st.obs.over(s.Err())
	s.mu.Lock()
	for _, r := range s.queue {
		r.done <- s.err
	}
	s.queue = nil
	s.idle.Broadcast()
	s.mu.Unlock()
	s.doneOnce.Do(func() { close(s.done) })
}

func (s *Session[T]) newEvent(typ string, ops []ledger.Op, meta map[string]string) ledger.Event {
	return ledger.Event{
		V: ledger.FormatVersion, ID: uuid.NewString(), Type: typ, Session: s.id, Epoch: s.epoch,
		Time: time.Now().UTC(), Ops: ops, Meta: meta,
	}
}

// readPast reads the subject after the session's fence and settles what
// the session does not know. A newer epoch ends the session as lost. This
// session's own events are folded in if their append's outcome was unknown
// (a lost acknowledgement: the uncertain set, or the deferred message in
// flight); any other event of its own means the log and memory disagree,
// which ends the session. Other messages (foreign, garbage, a zombie's) are
// skipped and reported, as a load skips them.
func (s *Session[T]) readPast(ctx context.Context) error {
	s.mu.Lock()
	s.materializeLocked()
	l := loaded{doc: s.logDoc, version: s.version, fence: s.fence, epoch: s.epoch, session: s.id, ps: s.logPS}
	from := s.fence
	expected := make(map[string]bool, len(s.uncertain)+s.inflight)
	for id := range s.uncertain {
		expected[id] = true
	}
	for _, p := range s.unflushed[:s.inflight] {
		expected[p.ev.ID] = true
	}
	inflight, inflightAt := s.inflight, s.inflightAt
	s.mu.Unlock()
	var newer *ledger.Event
	var stranger *ledger.Event
	found, foreignToMemory := 0, false // events of the message in flight; events memory lacks
	err := s.st.ledger.Read(ctx, s.subject, l.fence.Seq, 0, func(r ledger.Record) error {
		if r.Err == nil && r.Event.Epoch > l.epoch {
			newer = &r.Event
			return errStopRead
		}
		if r.Err == nil && r.Event.Epoch == l.epoch && r.Event.Session == s.id {
			if !expected[r.Event.ID] {
				stranger = &r.Event
				return errStopRead
			}
			if s.uncertain[r.Event.ID] {
				foreignToMemory = true
			} else {
				found++
			}
		}
		return s.st.fold(&l, s.key, r)
	})
	switch {
	case newer != nil:
		s.lose(fmt.Errorf("%w: epoch %d (session %s) appended at sequence %d", ledger.ErrFenced, newer.Epoch, newer.Session, newer.Seq))
		return s.Err()
	case stranger != nil:
		s.lose(fmt.Errorf("the log holds event %s of this session at sequence %d, which its memory does not", stranger.ID, stranger.Seq))
		return s.Err()
	case err != nil && !errors.Is(err, errStopRead):
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.unflushed) > 0 {
		// Deferred mode: memory is ahead of the log by the unflushed
		// events; what was folded here was either skipped or is the
		// message in flight, already in memory. Only the log's side moves.
		if inflight > 0 {
			switch {
			case found == inflight:
				s.unflushed = slices.Delete(s.unflushed, 0, inflight)
				s.inflight = 0
			case found > 0:
				err := fmt.Errorf("the log holds %d of the %d events of this session's message in flight", found, inflight)
				s.mu.Unlock()
				s.lose(err)
				s.mu.Lock()
				return s.err
			case l.fence.Seq > inflightAt.Seq:
				// Something else follows its fence: it can never land.
				s.inflight = 0
			}
		}
		s.logDoc, s.logPS = l.doc, l.ps
		if foreignToMemory {
			// An event memory lacks (a trade in doubt) landed: memory is
			// the log's document with the unflushed events on top again.
			if err := s.rebuildLocked(); err != nil {
				s.mu.Unlock()
				s.lose(err)
				s.mu.Lock()
				return s.err
			}
		}
	} else {
		raw, err := projector.Encode(l.doc)
		if err != nil {
			return err
		}
		var data T
		if err := json.Unmarshal(raw, &data); err != nil {
			err = fmt.Errorf("%w: the log's document no longer fits the profile's type: %v", ErrBadEvent, err)
			s.mu.Unlock()
			s.lose(err)
			s.mu.Lock()
			return s.err
		}
		s.doc, s.data, s.logDoc = l.doc, data, l.doc
		s.ps, s.logPS = l.ps, l.ps
	}
	s.version, s.fence = max(s.version, l.version), l.fence
	if l.fence.Seq > from.Seq {
		// A message sent at an older fence can no longer land.
		s.uncertain = nil
	}
	for _, m := range l.report.SkippedMessages {
		s.report.addSkipped(m)
	}
	s.report.SkippedTotal += l.report.SkippedTotal - len(l.report.SkippedMessages)
	s.resync = false
	return nil
}

// rebuildLocked recomputes a deferred session's memory as the log's
// document with the unflushed events applied on top, in order.
func (s *Session[T]) rebuildLocked() error {
	s.materializeLocked()
	doc, ps := s.logDoc, s.logPS
	for i := range s.unflushed {
		next, err := projector.Apply(doc, s.unflushed[i].ev.Ops)
		if err != nil {
			return fmt.Errorf("%w: deferred event %s no longer applies on top of the log: %w", ErrBadEvent, s.unflushed[i].ev.ID, err)
		}
		ps = foldState(ps, s.unflushed[i].ev, time.Time{})
		doc, s.unflushed[i].doc, s.unflushed[i].ps = next, next, ps
	}
	raw, err := projector.Encode(doc)
	if err != nil {
		return err
	}
	var data T
	if err := json.Unmarshal(raw, &data); err != nil {
		return fmt.Errorf("%w: the log's document no longer fits the profile's type: %v", ErrBadEvent, err)
	}
	s.doc, s.data, s.ps = doc, data, ps
	s.gen++
	return nil
}

// noteUncertainLocked remembers events whose append's outcome is unknown,
// so that the next read of the log folds them if they landed.
func (s *Session[T]) noteUncertainLocked(events []ledger.Event) {
	if s.uncertain == nil {
		s.uncertain = make(map[string]bool, len(events))
	}
	for _, ev := range events {
		s.uncertain[ev.ID] = true
	}
	s.resync = true
}

// snapshotValueLocked returns the session's state for a snapshot: the
// document itself, encoded later, outside the session's lock.
func (s *Session[T]) snapshotValueLocked() pendingSnapshot {
	s.sinceSnap = 0
	// The log's document at the last event folded: in deferred mode the
	// in-memory one is ahead of the log, and a snapshot is always the fold
	// of the log up to its version.
	s.materializeLocked()
	return pendingSnapshot{key: s.key, version: s.version, epoch: s.epoch, session: s.id, doc: s.logDoc, meta: s.logPS.snapshotMeta()}
}

// pendingSnapshot is a snapshot not yet encoded. Its document is never
// changed in place (projector.Apply copies on write), so it may be encoded
// while the session goes on.
type pendingSnapshot struct {
	key, session   string
	version, epoch uint64
	doc            any
	meta           map[string]string
}

func (p pendingSnapshot) encode() (snapshots.Snapshot, error) {
	state, err := projector.Encode(p.doc)
	if err != nil {
		return snapshots.Snapshot{}, err
	}
	return snapshots.Snapshot{Key: p.key, Version: p.version, Epoch: p.epoch, Session: p.session, State: state, Meta: p.meta}, nil
}

// snapshotLocked saves a snapshot in the background.
func (s *Session[T]) snapshotLocked() {
	s.st.saveSnapshot(s.snapshotValueLocked())
}
