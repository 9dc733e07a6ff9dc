package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/jserr"
)

// Liveness is paid per node, not per profile: a process keeps one
// heartbeat key in the lease bucket, rewritten every third of the TTL with
// the server's per-message TTL, and each lease record it writes names that
// heartbeat (Record.Holder). A lease is live while its holder's heartbeat
// is: a contender takes over once the heartbeat is gone (the server's TTL
// removed it) or has stayed at one revision for a whole TTL by the
// contender's own monotonic clock. No decision compares two clocks.
//
// A heartbeat is one incarnation of a node: once it lapses it is never
// written again (its key is created only once). A node that finds its
// heartbeat lapsed has lost every lease that names it, and starts a new
// incarnation under a new id for the sessions it starts next.

// heartbeatPrefix prefixes heartbeat keys. Profile tokens never contain a
// dot, so a heartbeat key never names a profile.
const heartbeatPrefix = "node."

// HeartbeatKey returns the lease bucket key of the heartbeat called id.
func HeartbeatKey(id string) string { return heartbeatPrefix + id }

// IsHeartbeatKey reports whether key is a heartbeat's, not a profile's.
func IsHeartbeatKey(key string) bool { return strings.HasPrefix(key, heartbeatPrefix) }

// NodeRecord is the value of a heartbeat key: who beats, for people.
type NodeRecord struct {
	// Node names the process, as WithNode set it.
	Node string `json:"node"`
	// Control is the subject the node answers hand-over requests on.
	Control string `json:"control,omitempty"`
	// TTLMillis is the heartbeat's time to live.
	TTLMillis int64 `json:"ttl_ms"`
}

// Heartbeat is a node's liveness in a lease bucket. It is not safe for
// concurrent use: one goroutine beats.
type Heartbeat struct {
	b      *Bucket
	id     string
	rec    NodeRecord
	data   []byte
	rev    uint64
	unsure bool // the last write got no reply: read before writing again
}

// StartHeartbeat creates the heartbeat key of id, which must never have
// been written before (use a fresh id per incarnation). Leases whose
// record names id (Record.Holder) are live while it beats.
func (b *Bucket) StartHeartbeat(ctx context.Context, id string, rec NodeRecord) (*Heartbeat, error) {
	if id == "" || strings.ContainsAny(id, ".*> ") {
		return nil, fmt.Errorf("lease: heartbeat id %q must be one non-empty KV key token", id)
	}
	rec.TTLMillis = b.ttl.Milliseconds()
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("lease: encode heartbeat: %w", err)
	}
	h := &Heartbeat{b: b, id: id, rec: rec, data: data}
	ack, err := b.js.Publish(ctx, b.subject(HeartbeatKey(id)), data,
		jetstream.WithExpectLastSequencePerSubject(0), jetstream.WithMsgTTL(b.ttl))
	if jserr.IsWrongLastSequence(err) {
		// Our own create whose reply was lost, or a reused id.
		if err := h.adopt(ctx); err != nil {
			return nil, err
		}
		return h, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lease: start heartbeat %s: %w", id, err)
	}
	h.rev = ack.Sequence
	return h, nil
}

// ID returns the heartbeat's id, the value of Record.Holder.
func (h *Heartbeat) ID() string { return h.id }

// Beat rewrites the heartbeat, restarting its TTL. It fails with ErrLost if
// the heartbeat lapsed (the server removed it, or something else wrote it):
// every lease naming it may have been taken over.
//
// After an attempt that got no reply (it may have landed, moving the
// revision), Beat reads the heartbeat back first: two round trips, where a
// compare-and-set on the old revision would take three.
func (h *Heartbeat) Beat(ctx context.Context) error {
	if h.unsure {
		if err := h.adopt(ctx); err != nil {
			return err
		}
		h.unsure = false
	}
	for range 3 {
		ack, err := h.b.js.Publish(ctx, h.b.subject(HeartbeatKey(h.id)), h.data,
			jetstream.WithExpectLastSequencePerSubject(h.rev), jetstream.WithMsgTTL(h.b.ttl))
		if err == nil {
			h.rev = ack.Sequence
			return nil
		}
		if !jserr.IsWrongLastSequence(err) {
			h.unsure = true
			return fmt.Errorf("lease: heartbeat %s: %w", h.id, err)
		}
		// The revision moved: by our own beat whose reply was lost, or
		// because the heartbeat lapsed.
		if err := h.adopt(ctx); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: heartbeat %s keeps changing", ErrLost, h.id)
}

// adopt reads the heartbeat back: if it holds this node's record it is
// ours (a write whose reply was lost), and its revision becomes ours.
func (h *Heartbeat) adopt(ctx context.Context) error {
	m, err := h.b.stream.GetLastMsgForSubject(ctx, h.b.subject(HeartbeatKey(h.id)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("%w: heartbeat %s lapsed", ErrLost, h.id)
	}
	if err != nil {
		return fmt.Errorf("lease: heartbeat %s: %w", h.id, err)
	}
	if deleted(m.Header) || string(m.Data) != string(h.data) {
		return fmt.Errorf("%w: heartbeat %s lapsed", ErrLost, h.id)
	}
	h.rev = m.Sequence
	return nil
}

// Stop deletes the heartbeat: every lease still naming it is free for the
// taking at once. A heartbeat that lapsed meanwhile is left as it is.
func (h *Heartbeat) Stop(ctx context.Context) error {
	for range 2 {
		if h.unsure {
			if err := h.adopt(ctx); errors.Is(err, ErrLost) {
				return nil // lapsed already
			} else if err != nil {
				return err
			}
			h.unsure = false
		}
		del := nats.NewMsg(h.b.subject(HeartbeatKey(h.id)))
		del.Header.Set("KV-Operation", "DEL")
		_, err := h.b.js.PublishMsg(ctx, del, jetstream.WithExpectLastSequencePerSubject(h.rev))
		switch {
		case err == nil:
			return nil
		case jserr.IsWrongLastSequence(err):
			h.unsure = true // a beat whose reply was lost moved it: read, and again
		default:
			return fmt.Errorf("lease: stop heartbeat %s: %w", h.id, err)
		}
	}
	return nil
}

// beating returns the current revision of heartbeat id, and whether it is
// there at all (not deleted, expired, or never written).
func (b *Bucket) beating(ctx context.Context, id string) (rev uint64, ok bool, err error) {
	m, err := b.stream.GetLastMsgForSubject(ctx, b.subject(HeartbeatKey(id)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("lease: heartbeat %s: %w", id, err)
	}
	if deleted(m.Header) {
		return m.Sequence, false, nil
	}
	return m.Sequence, true, nil
}

// Live reports whether l's holder is alive: for a lease that names a
// heartbeat, whether that heartbeat is there; a record without one (written
// by an older version, kept alive by its own TTL) is live while it exists.
// It says nothing of a holder that froze less than a TTL ago: that one is
// stopped by the log's fence, not by this answer.
func (b *Bucket) Live(ctx context.Context, l Lease) (bool, error) {
	if l.Record.Holder == "" {
		return true, nil
	}
	_, ok, err := b.beating(ctx, l.Record.Holder)
	return ok, err
}

func deleted(h nats.Header) bool {
	return h.Get("KV-Operation") != "" || h.Get(jetstream.MarkerReasonHeader) != ""
}
