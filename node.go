package profileledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/profileledger/profileledger/internal/retry"
	"github.com/profileledger/profileledger/lease"
)

// Liveness is per node. A Store keeps one heartbeat in the lease bucket,
// beaten every third of the lease TTL; every lease its sessions take names
// it. An idle held session therefore costs no timer, goroutine or message:
// 100,000 of them cost one heartbeat.
//
// A heartbeat is one incarnation (a life). When it lapses — a beat finds it
// gone (the server's TTL removed it), or no beat has been acknowledged for
// a TTL while disconnected (three while connected: a frozen link) — every
// session of that life is lost, because a contender may already have taken
// any of them over; the next session to start starts a new life. An
// attempt without a reply is tried again; if the first one landed after
// all, the next one's compare-and-set finds it and adopts it. Safety never
// rests on any of this: a session that has not yet noticed is stopped by
// the log's fence.

// unansweredLimit is how many TTLs a connected store waits for any beat to
// be acknowledged before it gives its sessions up.
const unansweredLimit = 3

// life is one incarnation of the store's heartbeat.
type life struct {
	hb     *lease.Heartbeat
	lastOK time.Time // when the last beat was acknowledged; the heartbeat loop's own
	dead   bool      // under Store.mu: lapsed; its sessions are lost
}

// newLife starts a heartbeat under a fresh id. denied is set when the
// server refused this connection the write (a reader's rights): trying
// again will not help.
func (st *Store[T]) newLife(ctx context.Context) (lf *life, denied bool, err error) {
	id := uuid.NewString()
	ctx, stop := cancelOnDenied(ctx, st.nc, []string{lease.HeartbeatKey(id)})
	hb, err := st.leases.StartHeartbeat(ctx, id, lease.NodeRecord{Node: st.cfg.node, Control: st.names.ControlAll(st.id)})
	if cause := stop(); cause != nil {
		return nil, true, cause
	}
	if err != nil {
		return nil, false, err
	}
	return &life{hb: hb, lastOK: time.Now()}, false, nil
}

// currentLife returns the live heartbeat incarnation new leases name,
// starting one (and its beating) if there is none: a store that never
// holds a session — one that only reads or sends messages — has no
// heartbeat, and needs no right to write one.
func (st *Store[T]) currentLife(ctx context.Context) (*life, error) {
	for {
		st.mu.Lock()
		switch {
		case st.closed:
			st.mu.Unlock()
			return nil, ErrClosed
		case st.life != nil:
			lf := st.life
			st.mu.Unlock()
			return lf, nil
		case st.lifeStarting:
			ready := st.lifeReady
			st.mu.Unlock()
			select {
			case <-ready:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: waiting for this store's heartbeat to start: %w", ErrSessionLost, ctx.Err())
			}
		}
		st.lifeStarting = true
		st.mu.Unlock()
		// Like a lease, the heartbeat is tried until ctx ends (NATS
		// unreachable or slow), unless the server refuses it outright.
		var lf *life
		var err error
		for attempt := 0; ; attempt++ {
			sctx, cancel := context.WithTimeout(ctx, leaseAttemptTimeout)
			var denied bool
			lf, denied, err = st.newLife(sctx)
			cancel()
			if err == nil || denied || st.isClosed() ||
				!retry.Sleep(ctx, retry.Backoff(attempt+1, 10*time.Millisecond, time.Second)) {
				break
			}
		}
		st.mu.Lock()
		st.lifeStarting = false
		close(st.lifeReady) // waiters look again
		st.lifeReady = make(chan struct{})
		if err == nil && !st.closed {
			st.life = lf
			st.wg.Add(1)
			go st.heartbeatLoop(lf)
		}
		watch := err == nil && !st.closed
		closed := st.closed
		st.mu.Unlock()
		if watch {
			st.watchLeases()
		}
		switch {
		case closed:
			if err == nil {
				st.stopHeartbeat(lf)
			}
			return nil, ErrClosed
		case err != nil:
			return nil, fmt.Errorf("%w: start this store's heartbeat: %w", ErrSessionLost, err)
		}
		return lf, nil
	}
}

// heartbeatLoop beats lf every third of the TTL until the store closes or
// lf lapses; then the next session to start starts a new life.
func (st *Store[T]) heartbeatLoop(lf *life) {
	defer st.wg.Done()
	ttl := st.leases.TTL()
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-st.ctx.Done():
			return
		case <-t.C:
		}
		if err := st.beat(lf, ttl); err != nil {
			if st.ctx.Err() == nil {
				st.lapse(lf, err)
			}
			return
		}
	}
}

// beat beats lf once, retrying a failed attempt until the heartbeat is
// known to have lapsed (the server removed it), or no beat has been
// acknowledged for a TTL while the connection is down, or for
// unansweredLimit TTLs whatever the connection says (a frozen link).
// A connected but slow NATS is waited for: whether a beat landed in time
// is the server's TTL to decide, and the next compare-and-set tells.
func (st *Store[T]) beat(lf *life, ttl time.Duration) error {
	for attempt := 0; ; attempt++ {
		since := time.Since(lf.lastOK)
		switch {
		case since >= unansweredLimit*ttl:
			return fmt.Errorf("heartbeat not acknowledged for %v", since.Round(time.Millisecond))
		case since >= ttl && !st.nc.IsConnected():
			return fmt.Errorf("heartbeat not renewed for %v: NATS unreachable", since.Round(time.Millisecond))
		}
		left := unansweredLimit*ttl - since
		// An attempt gets a third of the TTL: a reply that was lost must
		// not use up the budget; the next attempt's compare-and-set
		// finds a beat that landed, and adopts it.
		ctx, cancel := context.WithTimeout(st.ctx, min(ttl/3, left))
		err := lf.hb.Beat(ctx)
		cancel()
		st.obs.renewed(st.ctx, "", err, lf.lastOK, ttl)
		switch {
		case err == nil:
			lf.lastOK = time.Now()
			return nil
		case errors.Is(err, lease.ErrLost), st.ctx.Err() != nil:
			return err
		}
		if !retry.Sleep(st.ctx, retry.Backoff(attempt+1, 5*time.Millisecond, 50*time.Millisecond)) {
			return st.ctx.Err()
		}
	}
}

// lapse ends every session of lf as lost: once its heartbeat lapsed, any of
// them may have been taken over. A session that registers under lf later
// fails to (register checks), so none outlives it.
func (st *Store[T]) lapse(lf *life, cause error) {
	st.mu.Lock()
	lf.dead = true
	if st.life == lf {
		st.life = nil // the next session to start starts a new life
	}
	var lost []*Session[T]
	for _, s := range st.sessions {
		if s.life == lf {
			lost = append(lost, s)
		}
	}
	st.mu.Unlock()
	st.log.Warn("heartbeat lapsed: this node's sessions are lost", logErr, cause, "sessions", len(lost))
	for _, s := range lost {
		s.lose(fmt.Errorf("this node's heartbeat lapsed (%v): the profile may have been taken over", cause))
	}
}

// stopLife deletes the heartbeat on Close: leases that still name it (of
// sessions abandoned by Close) are free for the taking at once.
func (st *Store[T]) stopLife() {
	st.mu.Lock()
	lf := st.life
	st.life = nil
	st.mu.Unlock()
	if lf != nil {
		st.stopHeartbeat(lf)
	}
}

func (st *Store[T]) stopHeartbeat(lf *life) {
	ctx, cancel := context.WithTimeout(context.Background(), leaseAttemptTimeout)
	defer cancel()
	if err := lf.hb.Stop(ctx); err != nil {
		st.log.Debug("heartbeat not deleted; it expires", logErr, err)
	}
}

// watchLeases subscribes, once, with the store's first session, to every
// write of the store's lease bucket (not the heartbeats): a write of a
// lease this store holds that names another session — a steal whose notice
// was lost, a take-over — or deletes it, makes the session check its lease
// and let go. It costs a message per lease write, not per idle session.
func (st *Store[T]) watchLeases() {
	st.leaseWatch.Do(func() {
		sub, err := st.nc.Subscribe(st.leases.Subject("*"), func(m *nats.Msg) {
			tok, ok := lastToken(m.Subject)
			if !ok {
				return
			}
			st.mu.Lock()
			s := st.sessions[tok]
			st.mu.Unlock()
			if s == nil {
				return
			}
			if rec, ok := lease.RecordOf(m.Header, m.Data); ok && rec.Session == s.id {
				return
			}
			st.goBackground(func() { st.confirmStolen(s, "another session (its lease was rewritten)") })
		})
		if err != nil {
			st.log.Warn("lease writes not watched; a stolen session learns it from the stealer's notice or its next append", logErr, err)
			return
		}
		st.keepSub(sub)
	})
}

// keepSub keeps sub for Close to unsubscribe, or unsubscribes it at once if
// Close has already run.
func (st *Store[T]) keepSub(sub *nats.Subscription) {
	st.mu.Lock()
	closed := st.closed
	if !closed {
		st.cueSubs = append(st.cueSubs, sub)
	}
	st.mu.Unlock()
	if closed {
		sub.Unsubscribe()
	}
}

// reconnectLoop, the store's goroutine, catches up after each reconnect
// what the subscriptions missed while the connection was down: every
// session with a message handler reads its inbox, and every session checks
// its lease (recheckWorkers at a time).
func (st *Store[T]) reconnectLoop() {
	defer st.wg.Done()
	status := st.nc.StatusChanged(nats.CONNECTED)
	defer st.nc.RemoveStatusListener(status)
	for {
		select {
		case <-st.ctx.Done():
			return
		case _, ok := <-status:
			if !ok {
				return
			}
		}
		st.mu.Lock()
		held := make([]*Session[T], 0, len(st.sessions))
		for _, s := range st.sessions {
			held = append(held, s)
		}
		st.mu.Unlock()
		for _, s := range held {
			s.wake(false)
		}
		next := make(chan *Session[T])
		var wg sync.WaitGroup
		for range min(recheckWorkers, len(held)) {
			wg.Go(func() {
				for s := range next {
					st.confirmStolen(s, "another session (seen after a reconnect)")
				}
			})
		}
	feed:
		for _, s := range held {
			select {
			case next <- s:
			case <-st.ctx.Done():
				break feed
			}
		}
		close(next)
		wg.Wait()
	}
}

// recheckWorkers is how many leases reconnectLoop reads at once.
const recheckWorkers = 16
