package lease

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// HandoverRequest is what a contender sends to a holder's control subject.
type HandoverRequest struct {
	// Key is the profile key's token (as in Lease.Key).
	Key string `json:"key"`
	// Session is the holding session the contender saw in the lease; a
	// holder with another session id ignores the request.
	Session string `json:"session"`
	// From names the contender, for logs.
	From string `json:"from"`
	// Stolen, when set, is not a request but a notice: the contender has
	// already taken the lease over (Steal). The holder checks the lease and,
	// finding it another's, ends its session as lost at once rather than
	// at its next fenced append. No reply is sent.
	Stolen bool `json:"stolen,omitempty"`
	// Probe, when set, asks only whether the node holds the session: the
	// reply's NotHeld answers, and nothing is handed over (NoWait's look
	// behind a live node's lease).
	Probe bool `json:"probe,omitempty"`
}

// HandoverReply is the holder's answer.
type HandoverReply struct {
	// Released is true once the holder has flushed, appended its end, and
	// deleted its lease.
	Released bool `json:"released"`
	// Version is the profile's version after the holder's last event.
	Version uint64 `json:"version,omitempty"`
	// Error says why the holder did not release, if it did not.
	Error string `json:"error,omitempty"`
	// NotHeld says that the node addressed holds no session by that id:
	// the lease record is stale (its session ended or was lost without
	// deleting it), and the contender may take it over at the revision it
	// saw. The log's fence keeps that safe whatever the record says.
	NotHeld bool `json:"not_held,omitempty"`
}

// RequestHandover asks the holder of l to hand the profile over and waits
// for its reply until ctx ends. An error means no answer (the holder may be
// dead, slow or gone); the caller then waits for the lease to expire.
func RequestHandover(ctx context.Context, nc *nats.Conn, l Lease, from string) (HandoverReply, error) {
	data, err := json.Marshal(HandoverRequest{Key: l.Key, Session: l.Record.Session, From: from})
	if err != nil {
		return HandoverReply{}, err
	}
	m, err := nc.RequestWithContext(ctx, l.Record.Control, data)
	if err != nil {
		return HandoverReply{}, fmt.Errorf("lease: hand-over request to %s: %w", l.Record.Node, err)
	}
	var r HandoverReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return HandoverReply{}, fmt.Errorf("lease: bad hand-over reply from %s: %w", l.Record.Node, err)
	}
	return r, nil
}

// ProbeHolder asks the node named in l whether it holds l's session,
// without asking it to hand over. An error means no answer.
func ProbeHolder(ctx context.Context, nc *nats.Conn, l Lease, from string) (held bool, err error) {
	data, err := json.Marshal(HandoverRequest{Key: l.Key, Session: l.Record.Session, From: from, Probe: true})
	if err != nil {
		return false, err
	}
	m, err := nc.RequestWithContext(ctx, l.Record.Control, data)
	if err != nil {
		return false, fmt.Errorf("lease: probe of %s: %w", l.Record.Node, err)
	}
	var r HandoverReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return false, fmt.Errorf("lease: bad probe reply from %s: %w", l.Record.Node, err)
	}
	return !r.NotHeld, nil
}

// NotifyStolen tells the holder of l, best effort, that its lease was
// taken over by from. The holder's next fenced append would find out
// anyway; the notice makes an idle holder let go at once.
func NotifyStolen(nc *nats.Conn, l Lease, from string) {
	data, err := json.Marshal(HandoverRequest{Key: l.Key, Session: l.Record.Session, From: from, Stolen: true})
	if err == nil && l.Record.Control != "" {
		nc.Publish(l.Record.Control, data)
	}
}

// WaitHolder waits, polling every poll interval, until the lease seen is
// free or replaced, or its holder is dead: the heartbeat it names is gone
// (the server's TTL removed it) or stayed at one revision for a whole TTL
// by this process's monotonic clock, counted from when this call first saw
// that revision. A record that names no heartbeat (an older writer's) is
// judged by its own revision since since, as WaitSince does. It returns Expired with the lease to Steal at its
// revision, Free, Changed, or ctx's error.
func (b *Bucket) WaitHolder(ctx context.Context, seen Lease, since time.Time, poll time.Duration) (Lease, WaitResult, error) {
	return b.wait(ctx, seen, since, poll, seen.Record.Holder != "")
}

// WaitResult says why Wait returned.
type WaitResult int

const (
	// Free: nobody holds the lease any more (released, deleted or expired by
	// the server's TTL).
	Free WaitResult = iota + 1
	// Changed: another write replaced the lease (a new holder, or the same
	// holder's renewal); look at the returned lease again.
	Changed
	// Expired: the lease stayed at the same revision for a whole TTL by the
	// caller's own monotonic clock; the holder has stopped renewing and the
	// caller may Steal it at the returned revision.
	Expired
)

// WaitSince polls the lease every poll interval until it is free, replaced,
// or silent for a TTL counted from since — when the caller first saw seen's
// revision, by this process's monotonic clock (pass a time.Now() value) —
// or until ctx ends.
func (b *Bucket) WaitSince(ctx context.Context, seen Lease, since time.Time, poll time.Duration) (Lease, WaitResult, error) {
	return b.wait(ctx, seen, since, poll, false)
}

// wait is WaitHolder (byHeartbeat: the holder's heartbeat decides) and
// WaitSince (the lease's own revision does).
func (b *Bucket) wait(ctx context.Context, seen Lease, since time.Time, poll time.Duration, byHeartbeat bool) (Lease, WaitResult, error) {
	t := time.NewTicker(poll)
	defer t.Stop()
	var beat uint64
	for {
		cur, held, err := b.Get(ctx, seen.Key)
		switch {
		case err != nil && ctx.Err() != nil:
			return Lease{}, 0, ctx.Err()
		case err != nil:
			// The bucket is unreachable for now: keep waiting.
		case !held:
			return cur, Free, nil
		case cur.Revision != seen.Revision:
			return cur, Changed, nil
		case !byHeartbeat:
			if time.Since(since) >= b.ttl {
				return cur, Expired, nil
			}
		default:
			rev, alive, err := b.beating(ctx, seen.Record.Holder)
			switch {
			case err != nil:
			case !alive:
				return cur, Expired, nil
			case rev != beat:
				beat, since = rev, time.Now() // it beats: count a TTL from now
			case time.Since(since) >= b.ttl:
				return cur, Expired, nil
			}
		}
		select {
		case <-ctx.Done():
			return Lease{}, 0, ctx.Err()
		case <-t.C:
		}
	}
}
