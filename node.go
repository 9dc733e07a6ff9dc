package profileledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
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
// session of that life is lost,
// because a contender may already have taken any of them over; the store
// then starts a new life for the sessions it starts next. An attempt
// without a reply is tried again; if the first one landed after all, the
// next one's compare-and-set finds it and adopts it. Safety never rests on
// any of this: a session that has not yet noticed is stopped by the log's
// fence.

// unansweredLimit is how many TTLs a connected store waits for any beat to
// be acknowledged before it gives its sessions up.
const unansweredLimit = 3

// life is one incarnation of the store's heartbeat.
type life struct {
	hb     *lease.Heartbeat
	lastOK time.Time // when the last beat was acknowledged; the heartbeat loop's own
	dead   bool      // under Store.mu: lapsed; its sessions are lost
}

// newLife starts a heartbeat under a fresh id.
func (st *Store[T]) newLife(ctx context.Context) (*life, error) {
	hb, err := st.leases.StartHeartbeat(ctx, uuid.NewString(), lease.NodeRecord{Node: st.cfg.node, Control: st.names.ControlAll(st.id)})
	if err != nil {
		return nil, err
	}
	return &life{hb: hb, lastOK: time.Now()}, nil
}

// currentLife returns the live heartbeat incarnation new leases name,
// waiting (until ctx ends) while a lapsed one is being replaced.
func (st *Store[T]) currentLife(ctx context.Context) (*life, error) {
	for {
		st.mu.Lock()
		lf, ready, closed := st.life, st.lifeReady, st.closed
		st.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case lf != nil:
			return lf, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: this store's heartbeat lapsed and is not back yet: %w", ErrSessionLost, ctx.Err())
		}
	}
}

// heartbeatLoop beats the store's heartbeat every third of the TTL, and
// starts a new life when one lapses. It ends with the store.
func (st *Store[T]) heartbeatLoop() {
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
		st.mu.Lock()
		lf := st.life
		st.mu.Unlock()
		if lf == nil {
			st.revive()
			continue
		}
		if err := st.beat(lf, ttl); err != nil {
			if st.ctx.Err() != nil {
				return
			}
			st.lapse(lf, err)
			st.revive()
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
		st.life, st.lifeReady = nil, make(chan struct{})
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

// revive starts a new life, retrying until it is up or the store closes.
func (st *Store[T]) revive() {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(st.ctx, leaseAttemptTimeout)
		lf, err := st.newLife(ctx)
		cancel()
		if err == nil {
			st.mu.Lock()
			st.life = lf
			close(st.lifeReady)
			st.mu.Unlock()
			st.log.Info("heartbeat back under a new id", "heartbeat", lf.hb.ID())
			return
		}
		if !retry.Sleep(st.ctx, retry.Backoff(attempt+1, 10*time.Millisecond, time.Second)) {
			return
		}
	}
}

// stopLife deletes the heartbeat on Close: leases that still name it (of
// sessions abandoned by Close) are free for the taking at once.
func (st *Store[T]) stopLife(ctx context.Context) {
	st.mu.Lock()
	lf := st.life
	st.life = nil
	st.mu.Unlock()
	if lf == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseAttemptTimeout)
	defer cancel()
	if err := lf.hb.Stop(ctx); err != nil {
		st.log.Debug("heartbeat not deleted; it expires", logErr, err)
	}
}
