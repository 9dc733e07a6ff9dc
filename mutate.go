package profileledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	clone "github.com/huandu/go-clone"
	"github.com/profileledger/profileledger/internal/retry"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

// Mutate changes the profile: fn edits a copy of the data; the difference
// is appended to the log as one event of type eventType; only when JetStream
// has acknowledged it does the session's data change and Mutate return nil.
// If fn returns an error (or panics), or the append fails, the data stays as
// it was and nothing is appended. A mutation that changes nothing appends
// nothing and returns nil.
//
// ctx bounds the wait: if it ends before the mutation was sent, Mutate
// returns ctx.Err() and nothing happens; if it ends while the append is in
// flight, Mutate waits for the outcome (bounded by the deadline of the batch
// it is in). fn must not call this session's Mutate or Apply (that would
// wait for itself); Data and View are fine. fn may run more than once (if
// something other than this session wrote to the profile's subject, the
// change is computed again on top of it), so it should do nothing but
// change the copy it is given.
//
// Errors: fn's own error, ErrInvalidInput, ErrTooLarge, ErrUncertain, an
// error matching ErrSessionLost, ErrSessionEnded.
func (s *Session[T]) Mutate(ctx context.Context, eventType string, fn func(*T) error) error {
	if fn == nil {
		return fmt.Errorf("%w: Mutate needs a function", ErrInvalidInput)
	}
	t0 := time.Now()
	err := s.submit(ctx, &request[T]{ctx: ctx, typ: eventType, fn: fn})
	s.st.obs.mutated(t0, err)
	return err
}

// Apply changes the profile with explicit ops (Inc, Set, Add, Remove, Move,
// Copy, Test), appended as one event of type eventType, all or nothing. An op
// on a missing path, inc on a non-number, or a result that does not fit T
// fails with an error matching ErrInvalidInput that names the op and path;
// nothing is appended and the session stays usable. Otherwise as Mutate.
func (s *Session[T]) Apply(ctx context.Context, eventType string, ops ...Op) error {
	lops, err := ledgerOps(ops)
	if err != nil {
		return err
	}
	if len(lops) == 0 {
		return fmt.Errorf("%w: Apply needs at least one op", ErrInvalidInput)
	}
	t0 := time.Now()
	err = s.submit(ctx, &request[T]{ctx: ctx, typ: eventType, ops: lops})
	s.st.obs.mutated(t0, err)
	return err
}

func (s *Session[T]) submit(ctx context.Context, r *request[T]) error {
	if !r.lib {
		if err := ledger.ValidateUserType(r.typ); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidInput, err)
		}
		meta, err := callerMeta(ctx, 0)
		if err != nil {
			return err
		}
		r.meta = meta
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.done = make(chan error, 1)
	s.mu.Lock()
	if s.state != stateActive || s.erasing {
		err := s.closedErrLocked()
		s.mu.Unlock()
		return err
	}
	s.queue = append(s.queue, r)
	if s.committing {
		s.mu.Unlock()
		return s.wait(ctx, r)
	}
	s.committing = true
	s.mu.Unlock()
	s.drain() // this caller leads: it commits batches until the queue is empty
	return <-r.done
}

func (s *Session[T]) closedErrLocked() error {
	if s.state == stateDone {
		return s.err
	}
	return ErrSessionEnded
}

// wait is a follower's wait for its request's outcome.
func (s *Session[T]) wait(ctx context.Context, r *request[T]) error {
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
	}
	s.mu.Lock()
	if i := slices.Index(s.queue, r); i >= 0 {
		s.queue = slices.Delete(s.queue, i, i+1)
		s.mu.Unlock()
		return ctx.Err() // never sent
	}
	s.mu.Unlock()
	return <-r.done // in flight: its outcome is near
}

// drain commits queued requests, a batch at a time, until none are left.
func (s *Session[T]) drain() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 || s.state == stateDone || s.claimers > 0 {
			// Done, or a trade waits to claim the session: it drains the
			// rest of the queue when it is through.
			if s.state == stateDone {
				for _, r := range s.queue {
					r.done <- s.err
				}
				s.queue = nil
			}
			s.committing = false
			s.idle.Broadcast()
			s.mu.Unlock()
			return
		}
		n := min(len(s.queue), s.st.cfg.maxBatch)
		batch := s.queue[:n:n]
		s.queue = slices.Clone(s.queue[n:])
		s.mu.Unlock()
		s.commit(batch)
		if len(batch) > 1 {
			// Followers were answered: let them queue their next requests
			// before the next group is taken, so that it holds them too.
			runtime.Gosched()
		}
	}
}

// requeue puts rs back at the head of the queue, in order.
func (s *Session[T]) requeue(rs []*request[T]) {
	s.mu.Lock()
	s.queue = append(slices.Clone(rs), s.queue...)
	s.mu.Unlock()
}

// staged is a request whose change has been computed, not yet committed.
type staged[T any] struct {
	r    *request[T]
	ev   *ledger.Event // nil: the request changes nothing
	size int           // ev's encoded size
	data T
	doc  any
	ps   profileState
}

// commit runs a batch: each request's change is computed on top of the
// previous one's, then all events go to the log in one append (one publish,
// or one atomic batch), fenced on the session's last-read sequence.
func (s *Session[T]) commit(batch []*request[T]) {
	ctx, cancel := batchContext(s.st.ctx, batch)
	defer cancel()
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		// In deferred mode a commit appends nothing and the flush settles
		// what is in doubt — except while an append's outcome is unknown
		// that memory lacks (a trade): a change computed now, without it,
		// would be replayed on top of it if it landed. Then this batch is
		// read past the doubt and written through, fenced like a durable
		// one: either the doubtful append landed and is folded first, or
		// this append's fence makes sure it never lands.
		deferred := s.st.cfg.deferred > 0 && !(len(s.uncertain) > 0 && len(s.unflushed) == 0)
		resync := s.resync && !deferred
		s.mu.Unlock()
		if resync {
			if err := s.resyncBy(ctx); err != nil {
				s.st.obs.readFailed(s.key, err)
				failAll(batch, err)
				return
			}
		}
		s.mu.Lock()
		s.materializeLocked()
		base := staged[T]{data: s.data, doc: s.doc, ps: s.ps}
		fence, gen := s.fence, s.gen
		s.mu.Unlock()

		var out []staged[T]
		var events []ledger.Event
		cur := base
		size, limit := 2, s.st.ledger.MaxEventSize() // one message: "[" events "]"
		for i, r := range batch {
			if err := r.ctx.Err(); err != nil {
				r.done <- err
				continue
			}
			next, err := s.stage(r, cur)
			if err != nil {
				r.done <- err
				continue
			}
			if next.ev != nil && len(events) > 0 && size+next.size+1 > limit {
				// The group is full: the rest go back to the head of the
				// queue, to be staged again on top of this group.
				s.requeue(batch[i:])
				break
			}
			out = append(out, next)
			if next.ev != nil {
				events = append(events, *next.ev)
				size += next.size + 1
				cur = next
			}
		}
		if len(events) == 0 {
			ackAll(out, nil)
			return
		}
		if deferred {
			s.mu.Lock()
			if s.state == stateDone {
				err := s.err
				s.mu.Unlock()
				ackAll(out, err)
				return
			}
			if s.gen != gen {
				// A concurrent flush folded a change this batch was not
				// computed on (a trade in doubt that landed): again.
				s.mu.Unlock()
				batch = batch[:0:0]
				for _, o := range out {
					batch = append(batch, o.r)
				}
				continue
			}
			s.data, s.doc, s.ps = cur.data, cur.doc, cur.ps
			for _, o := range out {
				if o.ev != nil {
					s.unflushed = append(s.unflushed, pending{ev: *o.ev, doc: o.doc, ps: o.ps})
				}
			}
			if len(s.unflushed) > 0 && !s.flushDue {
				s.flushDue = true
				s.st.scheduleFlush(s)
			}
			s.mu.Unlock()
			ackAll(out, nil)
			return
		}
		last, err := s.st.ledger.Append(ctx, s.subject, fence, events...)
		s.st.obs.appended(s.key, len(events), err)
		switch {
		case err == nil:
			s.mu.Lock()
			s.data, s.doc, s.logDoc = cur.data, cur.doc, cur.doc
			s.ps, s.logPS = cur.ps, cur.ps
			s.version, s.fence = last.Seq, last
			s.uncertain = nil // an older message in doubt can no longer land
			s.sinceSnap += len(events)
			if s.sinceSnap >= s.st.cfg.snapshotEvery {
				s.snapshotLocked()
			}
			s.mu.Unlock()
			ackAll(out, nil)
			return
		case errors.Is(err, ledger.ErrFenced), errors.Is(err, ledger.ErrRewound):
			s.lose(err)
			ackAll(out, s.Err())
			return
		case errors.Is(err, ledger.ErrStale) && attempt < 3:
			// Foreign messages moved the log: read past them and run the
			// batch again on the (unchanged) data.
			// Requests already answered (failed staging) stay answered.
			s.mu.Lock()
			s.resync = true
			s.mu.Unlock()
			batch = batch[:0:0]
			for _, o := range out {
				batch = append(batch, o.r)
			}
			continue
		case errors.Is(err, ledger.ErrStale):
			// Rejected again on the last attempt: a known outcome, nothing
			// was appended. Read past the log before the next append.
			s.markResync()
			ackAll(out, fmt.Errorf("profileledger: profile %q: the log kept moving under this session; nothing was appended: %w", s.key, err))
			return
		case errors.Is(err, ledger.ErrTooLarge):
			ackAll(out, fmt.Errorf("%w: %w", ErrTooLarge, err))
			return
		default:
			// The outcome is unknown: read the log before the next append,
			// and fold these events then if they landed.
			s.mu.Lock()
			s.noteUncertainLocked(events)
			s.mu.Unlock()
			ackAll(out, fmt.Errorf("%w: profile %q: %w", ErrUncertain, s.key, err))
			return
		}
	}
}

// resyncBy reads past what the log holds beyond the session's fence, under
// ctx or, if it has no deadline, the ledger's default timeout.
func (s *Session[T]) resyncBy(ctx context.Context) error {
	ctx, cancel := retry.WithDefaultTimeout(ctx, ledger.DefaultTimeout)
	defer cancel()
	s.flushMu.Lock() // a deferred session's flush must not read past at the same time
	defer s.flushMu.Unlock()
	return s.readPast(ctx)
}

func ackAll[T any](out []staged[T], err error) {
	for _, o := range out {
		o.r.done <- err
	}
}

func failAll[T any](batch []*request[T], err error) {
	for _, r := range batch {
		r.done <- err
	}
}

// batchContext bounds a batch's append by the latest deadline among its
// requests, independent of any one caller's cancellation once the append is
// in flight. If one of them has no deadline, the batch has none: the ledger
// then bounds it by its default timeout, and the context costs nothing
// (ctx.Done() is nil, which spares the ledger a context per attempt).
func batchContext[T any](base context.Context, batch []*request[T]) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, r := range batch {
		d, ok := r.ctx.Deadline()
		if !ok {
			return context.WithoutCancel(base), func() {}
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(base, latest)
}

// stage computes r's change on top of cur.
func (s *Session[T]) stage(r *request[T], cur staged[T]) (next staged[T], err error) {
	next.r, next.ps = r, cur.ps
	if id := r.meta[ledger.MetaUserID]; id != "" && r.lib {
		// A user id added that the profile has, or removed that it has
		// not: nothing to record.
		has := slices.Contains(cur.ps.userIDs, id)
		if has == (r.typ == ledger.TypeUserIDAdded) {
			next.data, next.doc = cur.data, cur.doc
			return next, nil
		}
		if !has && len(cur.ps.userIDs) >= MaxUserIDs {
			return next, fmt.Errorf("%w: profile %q has %d user ids, the limit", ErrInvalidInput, s.key, MaxUserIDs)
		}
	}
	if r.msgSeq > 0 && r.msgSeq <= cur.ps.inbox {
		// Handled already (a retry after an unknown outcome that landed):
		// never twice.
		next.data, next.doc = cur.data, cur.doc
		return next, nil
	}
	var ops []ledger.Op
	if r.fn != nil {
		// fn works on a deep copy: whatever it does to maps and slices
		// cannot reach the committed data behind the log's back.
		w := clone.Clone(cur.data).(T)
		if err := callSafely(r.fn, &w); err != nil {
			return next, err
		}
		if next, ops, err = s.settle(cur, w); err != nil {
			return next, err
		}
		next.r = r
	} else {
		rops := r.ops
		if r.target != nil {
			// Rollback: whatever the data is now, into the data then.
			rops = projector.Diff(cur.doc, r.target)
		}
		doc, err := projector.Apply(cur.doc, rops)
		if err != nil {
			return next, fmt.Errorf("%w: profile %q: %w", ErrInvalidInput, s.key, err)
		}
		raw, err := projector.Encode(doc)
		if err != nil {
			return next, fmt.Errorf("profileledger: encode profile %q: %w", s.key, err)
		}
		var w T
		if err := json.Unmarshal(raw, &w); err != nil {
			return next, fmt.Errorf("%w: profile %q: the result does not fit the profile's type: %v", ErrInvalidInput, s.key, err)
		}
		// Keep the document's known part the JSON form of the typed data
		// (the typed diff of later mutations relies on it): if the ops left
		// something T does not hold the same way (a removed field T still
		// has, a number T rounds), the same event records the difference.
		// Members T does not know stay as the ops left them.
		norm, err := json.Marshal(w)
		if err != nil {
			return next, fmt.Errorf("%w: profile %q no longer encodes as JSON: %v", ErrInvalidInput, s.key, err)
		}
		ndoc, err := projector.Decode(norm)
		if err != nil {
			return next, fmt.Errorf("profileledger: decode profile %q: %w", s.key, err)
		}
		ndoc = projector.Overlay(doc, ndoc)
		ops = append(slices.Clip(rops), projector.Diff(doc, ndoc)...)
		next.data, next.doc = w, ndoc
	}
	if len(ops) == 0 && !r.always {
		return next, nil
	}
	if v := s.st.validate; v != nil {
		if err := callValidate(v, &next.data); err != nil {
			return next, fmt.Errorf("%w: profile %q: %w", ErrInvalidInput, s.key, err)
		}
	}
	ev := s.newEvent(r.typ, ops, r.meta)
	size, err := ev.Prepare()
	if err != nil {
		return next, fmt.Errorf("profileledger: encode event: %w", err)
	}
	if max := s.st.ledger.MaxEventSize(); size > max {
		return next, fmt.Errorf("%w: %q event on %q is %d bytes, over the limit of %d", ErrTooLarge, r.typ, s.key, size, max)
	}
	next.ev, next.size = &ev, size
	next.ps = foldState(cur.ps, ev, time.Time{})
	return next, nil
}

// settle turns w, the data after a change, into the ops from cur and the
// new document. The ops come from walking the two typed values
// (projector.DiffValues), so a small change to a large profile does not pay
// for encoding and diffing the whole document. cur.doc is the JSON form of
// cur.data plus members T does not know, so the ops apply to it and leave
// those members as they are (an array element's stay with it: DiffValues
// aligns the unchanged ends of a sequence whose length changed).
func (s *Session[T]) settle(cur staged[T], w T) (next staged[T], ops []ledger.Op, err error) {
	ops, err = projector.DiffValues(cur.data, w)
	if err != nil {
		return next, nil, fmt.Errorf("%w: profile %q no longer encodes as JSON: %v", ErrInvalidInput, s.key, err)
	}
	doc, err := projector.Apply(cur.doc, ops)
	if err != nil {
		return next, nil, fmt.Errorf("profileledger: profile %q: the document and the data disagree: %w", s.key, err)
	}
	next.data, next.doc, next.ps = w, doc, cur.ps
	return next, ops, nil
}

// claim gives the caller the session's commit rights (as a leader of the
// mutation queue has them), waiting for an append in flight to finish, or
// for ctx to end. Release them with drain, which also commits what queued
// meanwhile.
func (s *Session[T]) claim(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claimers++
	if !s.waitIdleLocked(ctx) {
		// A commit is still in flight: its leader goes on draining the
		// queue once it sees no claimer left.
		s.claimers--
		return ctx.Err()
	}
	s.claimers--
	if s.state != stateActive {
		return s.closedErrLocked()
	}
	s.committing = true
	return nil
}

// waitIdleLocked waits, with s.mu held, until no commit is in flight or the
// session is done; it returns false if ctx ended first.
func (s *Session[T]) waitIdleLocked(ctx context.Context) bool {
	if !s.committing || s.state == stateDone {
		return true
	}
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.idle.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	for s.committing && s.state != stateDone {
		if ctx.Err() != nil {
			return false
		}
		s.idle.Wait()
	}
	return true
}

// callValidate runs the store's validation hook, turning a panic into an
// error.
func callValidate[T any](fn func(*T) error, v *T) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("validation panicked: %v", p)
		}
	}()
	return fn(v)
}

// callSafely runs fn, turning a panic into an error.
func callSafely[T any](fn func(*T) error, w *T) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("profileledger: mutation panicked: %v", p)
		}
	}()
	return fn(w)
}

// Flush appends the session's deferred mutations now. In the default
// (durable) mode there is never anything to flush and it returns nil.
func (s *Session[T]) Flush(ctx context.Context) error {
	s.mu.Lock()
	if s.state == stateDone {
		err := s.err
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	if err := s.flush(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	if s.sinceSnap >= s.st.cfg.snapshotEvery {
		s.snapshotLocked()
	}
	s.mu.Unlock()
	return nil
}

// pending is a deferred mutation's event and the document after it.
type pending struct {
	ev  ledger.Event
	doc any
	ps  profileState
}

// flush appends the deferred backlog and then extra (a session marker), one
// flush at a time, in as many messages as the size limit needs, moving the
// fence and the log's document after each.
//
// A message whose outcome is unknown (no acknowledgement, and reading the
// log could not settle it) stays at the head of the backlog as the message
// in flight: the next flush sends it again byte for byte, at the fence it
// was sent at, and the ledger finds it in the log if it landed; it is never
// regrouped with newer events, since its message id names its content. Only
// when the log shows that it can no longer land (something else follows its
// fence) are its events grouped anew. A fenced session ends as lost.
func (s *Session[T]) flush(ctx context.Context, extra ...ledger.Event) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	s.materializeLocked()
	for _, ev := range extra {
		s.unflushed = append(s.unflushed, pending{ev: ev, doc: s.doc, ps: foldState(s.ps, ev, time.Time{})})
	}
	if len(s.unflushed) == 0 {
		s.mu.Unlock()
		return nil
	}
	// This flush appends what was there when it was called: mutations that
	// keep arriving meanwhile are the next flush's, or it might never end.
	through := s.unflushed[len(s.unflushed)-1].ev.ID
	s.mu.Unlock()
	stale := 0
	for {
		s.mu.Lock()
		upTo := slices.IndexFunc(s.unflushed, func(p pending) bool { return p.ev.ID == through })
		if upTo < 0 {
			s.mu.Unlock()
			return nil
		}
		var events []ledger.Event
		fence := s.fence
		if s.inflight > 0 {
			fence = s.inflightAt
			events = make([]ledger.Event, s.inflight)
			for i, p := range s.unflushed[:s.inflight] {
				events[i] = p.ev
			}
		} else {
			var err error
			if events, err = s.chunkLocked(upTo + 1); err != nil {
				s.mu.Unlock()
				return err
			}
		}
		s.mu.Unlock()

		seq, err := s.st.ledger.Append(ctx, s.subject, fence, events...)
		s.st.obs.appended(s.key, len(events), err)
		switch {
		case err == nil:
			s.mu.Lock()
			last := s.unflushed[len(events)-1]
			s.unflushed = slices.Delete(s.unflushed, 0, len(events))
			s.inflight = 0
			s.logDoc, s.logPS = last.doc, last.ps
			s.version, s.fence = seq.Seq, seq
			s.uncertain = nil // an older message in doubt can no longer land
			s.sinceSnap += len(events)
			s.mu.Unlock()
			continue
		case errors.Is(err, ledger.ErrFenced), errors.Is(err, ledger.ErrRewound):
			s.lose(err)
			return s.Err()
		case errors.Is(err, ledger.ErrStale) && stale < 3:
			// Definitely not appended (something else follows the fence):
			// read past it; the message in flight, if this was it, can no
			// longer land and is regrouped.
			stale++
			if err := s.readPast(ctx); err != nil {
				return err
			}
			s.mu.Lock()
			s.inflight = 0
			s.mu.Unlock()
			continue
		case errors.Is(err, ledger.ErrStale):
			return fmt.Errorf("profileledger: profile %q: the log kept moving under this session; nothing was appended: %w", s.key, err)
		case errors.Is(err, ledger.ErrTooLarge):
			return fmt.Errorf("%w: %w", ErrTooLarge, err)
		default:
			s.mu.Lock()
			s.inflight, s.inflightAt = len(events), fence
			s.resync = true
			s.mu.Unlock()
			return fmt.Errorf("%w: profile %q: %d deferred events: %w", ErrUncertain, s.key, len(events), err)
		}
	}
}

// chunkLocked returns the first of the n unflushed events at the head of
// the backlog that fit in one message.
func (s *Session[T]) chunkLocked(n int) ([]ledger.Event, error) {
	size, limit := 2, s.st.ledger.MaxEventSize()
	var events []ledger.Event
	for i := range s.unflushed[:n] {
		n, err := s.unflushed[i].ev.Prepare()
		if err != nil {
			return nil, fmt.Errorf("profileledger: encode event: %w", err)
		}
		if i > 0 && size+n+1 > limit {
			break
		}
		size += n + 1
		events = append(events, s.unflushed[i].ev)
	}
	return events, nil
}
