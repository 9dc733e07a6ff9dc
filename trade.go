package profileledger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/google/uuid"
	clone "github.com/huandu/go-clone"
	"github.com/profileledger/profileledger/internal/retry"
	"github.com/profileledger/profileledger/ledger"
)

// Trade changes two profiles at once, atomically: fn edits copies of both
// sessions' data, and the two resulting events are appended in one
// JetStream atomic batch, each fenced on its own profile's last-read
// sequence — either both land or neither does. Both events carry the same
// trade id (Meta "trade") and name the other profile (Meta "with"), so an
// investigator can follow an item from one profile to the other
// (`profileledger trades`).
//
// fn must not call Mutate, Apply, Trade or End on a or b: the trade holds
// both sessions' commit rights while fn runs, so such a call would wait for
// the trade, which waits for fn — a deadlock. Data and View are fine. fn may
// run more than once (the trade is computed again if a foreign message moved
// a log), so it should do nothing but change the copies it is given.
//
// ctx bounds the trade, including the wait for a mutation of either session
// that is in flight when it starts.
//
// Both sessions must be live and held by this process, be of the same
// store (one atomic batch covers one stream: trades across two stores are
// not supported), and be of different profiles. While the trade runs, other
// mutations of either session wait; they are committed after it.
//
// Failure is clean: if fn fails, or either fence fails, nothing is appended
// and both sessions' data are unchanged. A session whose fence was taken by
// a newer session ends as lost (the error matches ErrSessionLost); the other
// stays usable. If the outcome is unknown (no acknowledgement before ctx
// ended), the error matches ErrUncertain: the trade is settled by reading
// both profiles' logs for its events — never by appending it again — before
// either session appends anything else.
func Trade[T any](ctx context.Context, eventType string, a, b *Session[T], fn func(a, b *T) error) error {
	switch {
	case a == nil || b == nil:
		return fmt.Errorf("%w: Trade needs two sessions, got a nil one", ErrInvalidInput)
	case fn == nil:
		return fmt.Errorf("%w: Trade needs a function", ErrInvalidInput)
	case a == b || a.key == b.key:
		return fmt.Errorf("%w: profile %q cannot trade with itself", ErrInvalidInput, a.key)
	case a.st.names.Stream != b.st.names.Stream:
		return fmt.Errorf("%w: %q is in store %s and %q in store %s: trades across stores are not supported (one atomic batch covers one stream)",
			ErrInvalidInput, a.key, a.st.names.Store, b.key, b.st.names.Store)
	}
	if err := ledger.ValidateUserType(eventType); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t0 := time.Now()
	// Claim both sessions in key order, so two trades never wait for each
	// other in a circle.
	first, second := a, b
	if second.key < first.key {
		first, second = second, first
	}
	if err := first.claim(ctx); err != nil {
		return fmt.Errorf("profileledger: trade: %q: %w", first.key, err)
	}
	defer first.drain()
	if err := second.claim(ctx); err != nil {
		return fmt.Errorf("profileledger: trade: %q: %w", second.key, err)
	}
	defer second.drain()
	ctx, cancel := retry.WithDefaultTimeout(ctx, ledger.DefaultTimeout)
	defer cancel()
	err := trade(ctx, eventType, a, b, fn)
	a.st.obs.traded(t0, err)
	return err
}

// trade runs with both sessions claimed.
func trade[T any](ctx context.Context, eventType string, a, b *Session[T], fn func(a, b *T) error) error {
	for attempt := 0; attempt < 3; attempt++ {
		for _, s := range []*Session[T]{a, b} {
			if err := s.prepareForTrade(ctx); err != nil {
				return err
			}
		}
		ca, fa := a.committed()
		cb, fb := b.committed()
		wa, wb := clone.Clone(ca.data).(T), clone.Clone(cb.data).(T)
		if err := callSafely2(fn, &wa, &wb); err != nil {
			return err
		}
		na, opsA, err := a.settle(ca, wa)
		if err != nil {
			return err
		}
		nb, opsB, err := b.settle(cb, wb)
		if err != nil {
			return err
		}
		if len(opsA) == 0 && len(opsB) == 0 {
			return nil // nothing moved
		}
		if v := a.st.validate; v != nil {
			for _, side := range []struct {
				key  string
				data *T
			}{{a.key, &na.data}, {b.key, &nb.data}} {
				if err := callValidate(v, side.data); err != nil {
					return fmt.Errorf("%w: trade %q: profile %q: %w", ErrInvalidInput, eventType, side.key, err)
				}
			}
		}
		id := uuid.NewString()
		metaA, err := callerMeta(ctx, 2)
		if err != nil {
			return err
		}
		metaB := maps.Clone(metaA)
		metaA[ledger.MetaTrade], metaA[ledger.MetaWith] = id, b.key
		metaB[ledger.MetaTrade], metaB[ledger.MetaWith] = id, a.key
		evA := a.newEvent(eventType, opsA, metaA)
		evB := b.newEvent(eventType, opsB, metaB)
		na.ps, nb.ps = foldState(ca.ps, evA, time.Time{}), foldState(cb.ps, evB, time.Time{})
		for _, ev := range []*ledger.Event{&evA, &evB} {
			size, err := ev.Prepare()
			if err != nil {
				return fmt.Errorf("profileledger: encode trade event: %w", err)
			}
			if max := a.st.ledger.MaxEventSize(); size > max {
				return fmt.Errorf("%w: trade %q: an event is %d bytes, over the limit of %d", ErrTooLarge, eventType, size, max)
			}
		}
		seqs, err := a.st.ledger.AppendAtomic(ctx,
			ledger.Part{Subject: a.subject, Expected: fa, Events: []ledger.Event{evA}},
			ledger.Part{Subject: b.subject, Expected: fb, Events: []ledger.Event{evB}})
		a.st.obs.appended(a.key, 2, err)
		var conflict *ledger.ConflictError
		switch {
		case err == nil:
			a.commitTrade(na, seqs[0])
			b.commitTrade(nb, seqs[1])
			return nil
		case errors.As(err, &conflict) && (errors.Is(err, ledger.ErrFenced) || errors.Is(err, ledger.ErrRewound)):
			lost := a
			if conflict.Subject == b.subject {
				lost = b
			}
			lost.lose(err)
			return fmt.Errorf("profileledger: trade: %q: %w", lost.key, lost.Err())
		case errors.Is(err, ledger.ErrStale):
			// Foreign messages on a subject: read past them and try again.
			a.markResync()
			b.markResync()
			continue
		case errors.Is(err, ledger.ErrTooLarge):
			return fmt.Errorf("%w: %w", ErrTooLarge, err)
		default:
			// Settled by reading both logs before either session appends
			// again: each folds its side if it landed.
			a.noteUncertain(evA)
			b.noteUncertain(evB)
			return fmt.Errorf("%w: trade %s between %q and %q: %w", ErrUncertain, id, a.key, b.key, err)
		}
	}
	return fmt.Errorf("profileledger: trade between %q and %q: the logs keep moving", a.key, b.key)
}

// prepareForTrade brings a claimed session's log up to its memory: deferred
// mutations are appended first (the trade's ops are computed on top of
// them), and an unknown earlier outcome is read back.
func (s *Session[T]) prepareForTrade(ctx context.Context) error {
	s.mu.Lock()
	resync := s.resync
	s.mu.Unlock()
	if resync {
		s.flushMu.Lock()
		err := s.readPast(ctx)
		s.flushMu.Unlock()
		if err != nil {
			return err
		}
	}
	return s.flush(ctx)
}

func (s *Session[T]) committed() (staged[T], ledger.Head) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.materializeLocked()
	return staged[T]{data: s.data, doc: s.doc, ps: s.ps}, s.fence
}

func (s *Session[T]) commitTrade(n staged[T], head ledger.Head) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data, s.doc, s.logDoc = n.data, n.doc, n.doc
	s.ps, s.logPS = n.ps, n.ps
	s.version, s.fence = head.Seq, head
	s.uncertain = nil
	s.sinceSnap++
	if s.sinceSnap >= s.st.cfg.snapshotEvery {
		s.snapshotLocked()
	}
}

func (s *Session[T]) noteUncertain(ev ledger.Event) {
	s.mu.Lock()
	s.noteUncertainLocked([]ledger.Event{ev})
	s.mu.Unlock()
}

func (s *Session[T]) markResync() {
	s.mu.Lock()
	s.resync = true
	s.mu.Unlock()
}

// callSafely2 runs a trade's fn, turning a panic into an error.
func callSafely2[T any](fn func(a, b *T) error, a, b *T) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("profileledger: trade panicked: %v", p)
		}
	}()
	return fn(a, b)
}
