// Package lease keeps the per-profile lease: a record in a NATS KV bucket
// saying which session holds a profile. The lease is for liveness only —
// it tells contenders whom to ask for a hand-over and when a silent holder
// may be presumed dead. It is never the fence: a holder that pauses past its
// lease is stopped by the event log, not by this package.
//
// Every write is a compare-and-set on the key's revision. A lease record
// names its holder node's heartbeat (heartbeat.go): liveness is renewed per
// node, not per profile, so an idle held profile costs no traffic. Expiry
// is the NATS server's per-message TTL on the heartbeat (one clock, the
// server's) or a contender's own monotonic clock; no decision compares two
// machines' clocks.
package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/jserr"
	"github.com/profileledger/profileledger/internal/names"
)

// ErrHeld means the lease is held by a live session. Acquire returns a
// *HeldError that matches it.
var ErrHeld = errors.New("lease: held by another session")

// ErrLost means the caller's lease (or heartbeat) was taken over or
// removed: a write or release found a revision it did not write.
var ErrLost = errors.New("lease: lost")

// ErrBucketConfig means an existing lease bucket's configuration does not fit.
var ErrBucketConfig = errors.New("lease: incompatible bucket configuration")

// Record is the value of a lease.
type Record struct {
	// Session is the holding session's id.
	Session string `json:"session"`
	// Node names the holder's process, for people.
	Node string `json:"node"`
	// Epoch is the holder's epoch once its fence is in the log (0 before).
	Epoch uint64 `json:"epoch,omitempty"`
	// Control is the subject the holder answers hand-over requests on.
	Control string `json:"control"`
	// Holder is the id of the heartbeat whose liveness stands for this
	// lease (see StartHeartbeat). Such a record has no TTL of its own: it
	// lives until released or taken over, and is live while its holder's
	// heartbeat is. Empty in a record written by an older version, which
	// kept each lease alive by its own TTL.
	Holder string `json:"holder,omitempty"`
	// TTLMillis is the lease's own time to live (0 when Holder is set).
	TTLMillis int64 `json:"ttl_ms,omitempty"`
}

// Lease is a held (or observed) lease: its record and the revision that
// wrote it. The revision is the compare-and-set token for the next write.
type Lease struct {
	Key      string
	Revision uint64
	Record   Record
}

// HeldError is Acquire's answer when someone else holds the lease.
type HeldError struct {
	// Current is the lease as it was read.
	Current Lease
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%v: %s holds %s (node %s, revision %d)", ErrHeld, e.Current.Record.Session, e.Current.Key, e.Current.Record.Node, e.Current.Revision)
}

// Unwrap returns ErrHeld.
func (e *HeldError) Unwrap() error { return ErrHeld }

// Config describes a lease bucket.
type Config struct {
	// Bucket is the KV bucket name (PL_<STORE>_LEASES).
	Bucket string
	// TTL is how long a lease lives without renewal. It is rounded up to a
	// whole second (the server's TTL granularity); the minimum is 1 s.
	TTL time.Duration
	// Replicas is 1 on a single server, 3 in a cluster.
	Replicas int
	// Storage defaults to file storage.
	Storage jetstream.StorageType
}

// Bucket reads and writes leases. It is safe for concurrent use.
type Bucket struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	bucket string
	ttl    time.Duration
}

// RoundTTL returns d rounded up to a whole second, at least one.
func RoundTTL(d time.Duration) time.Duration {
	s := math.Ceil(d.Seconds())
	return time.Duration(max(s, 1)) * time.Second
}

// OpenBucket creates the lease bucket if it is missing, or checks the
// existing one. Two processes may call it at once; both succeed.
func OpenBucket(ctx context.Context, js jetstream.JetStream, cfg Config) (*Bucket, error) {
	ttl := RoundTTL(cfg.TTL)
	kvCfg := jetstream.KeyValueConfig{
		Bucket:         cfg.Bucket,
		Description:    "profileledger leases",
		History:        1,
		Replicas:       max(cfg.Replicas, 1),
		Storage:        cfg.Storage,
		LimitMarkerTTL: ttl,
	}
	// Look first, create only if missing: a user with holder rights may
	// read the bucket but not create one (a create request it is denied
	// is answered by nothing but a timeout).
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, kvCfg)
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("lease: open bucket %s: %w", cfg.Bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("lease: bucket %s status: %w", cfg.Bucket, err)
	}
	switch {
	case st.History() != 1:
		return nil, fmt.Errorf("%w: bucket %s has history %d, want 1", ErrBucketConfig, cfg.Bucket, st.History())
	case st.LimitMarkerTTL() == 0:
		return nil, fmt.Errorf("%w: bucket %s has no per-key TTL (limit_marker_ttl)", ErrBucketConfig, cfg.Bucket)
	case st.Config().Replicas != kvCfg.Replicas:
		return nil, fmt.Errorf("%w: bucket %s has replicas %d, want %d", ErrBucketConfig, cfg.Bucket, st.Config().Replicas, kvCfg.Replicas)
	}
	stream, err := js.Stream(ctx, names.KVStream(cfg.Bucket))
	if err != nil {
		return nil, fmt.Errorf("lease: bucket %s stream: %w", cfg.Bucket, err)
	}
	return &Bucket{js: js, stream: stream, bucket: cfg.Bucket, ttl: ttl}, nil
}

// TTL is the lease time to live in force.
func (b *Bucket) TTL() time.Duration { return b.ttl }

func (b *Bucket) subject(key string) string { return "$KV." + b.bucket + "." + key }

// Subject is the subject the lease of key is written on; Subject("*")
// matches every profile's lease and no heartbeat.
func (b *Bucket) Subject(key string) string { return b.subject(key) }

// RecordOf reads a lease write seen on the bucket's subjects: the record,
// and false if it is a deletion (a release, an expiry) or not a record.
func RecordOf(h nats.Header, data []byte) (Record, bool) {
	var r Record
	if deleted(h) || json.Unmarshal(data, &r) != nil {
		return Record{}, false
	}
	return r, true
}

// Get returns the live lease of key; ok is false if nobody holds it. The
// returned revision is set even when ok is false (it is the revision a
// create must replace, 0 if the key was never written).
func (b *Bucket) Get(ctx context.Context, key string) (l Lease, ok bool, err error) {
	m, err := b.stream.GetLastMsgForSubject(ctx, b.subject(key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Lease{Key: key}, false, nil
	}
	if err != nil {
		return Lease{}, false, fmt.Errorf("lease: get %s: %w", key, err)
	}
	l = Lease{Key: key, Revision: m.Sequence}
	if deleted(m.Header) {
		return l, false, nil
	}
	if err := json.Unmarshal(m.Data, &l.Record); err != nil {
		return Lease{}, false, fmt.Errorf("lease: %s holds a value that is not a lease record: %w", key, err)
	}
	return l, true, nil
}

// Acquire takes the lease of key for rec if nobody holds it. If someone
// does, it returns a *HeldError (matching ErrHeld) with the current lease.
func (b *Bucket) Acquire(ctx context.Context, key string, rec Record) (Lease, error) {
	for {
		cur, held, err := b.Get(ctx, key)
		if err != nil {
			return Lease{}, err
		}
		if held {
			if cur.Record.Session == rec.Session {
				if cur.Record.Holder == rec.Holder && cur.Record.Control == rec.Control {
					return cur, nil // our own write whose ack was lost
				}
				// Ours, from an attempt under a heartbeat that lapsed
				// since: name the live one.
				return b.put(ctx, key, cur.Revision, rec)
			}
			return Lease{}, &HeldError{Current: cur}
		}
		l, err := b.put(ctx, key, cur.Revision, rec)
		if errors.Is(err, ErrLost) {
			continue // someone wrote in between: look again
		}
		return l, err
	}
}

// Steal replaces the lease observed at revision rev with rec. It fails with
// ErrLost if the lease changed since it was observed.
func (b *Bucket) Steal(ctx context.Context, key string, rev uint64, rec Record) (Lease, error) {
	return b.put(ctx, key, rev, rec)
}

// Release deletes the caller's lease. It fails with ErrLost if the lease is
// no longer the caller's (nothing is deleted then). A lost reply is
// settled by reading the lease back.
func (b *Bucket) Release(ctx context.Context, l Lease) error {
	rev := l.Revision
	for range 2 {
		del := nats.NewMsg(b.subject(l.Key))
		del.Header.Set("KV-Operation", "DEL")
		_, err := b.js.PublishMsg(ctx, del, jetstream.WithExpectLastSequencePerSubject(rev))
		if err == nil {
			return nil
		}
		if !jserr.IsWrongLastSequence(err) {
			return fmt.Errorf("lease: release %s: %w", l.Key, err)
		}
		cur, held, gerr := b.Get(ctx, l.Key)
		if gerr != nil {
			return gerr
		}
		if !held || cur.Record.Session != l.Record.Session {
			return fmt.Errorf("%w: %s is no longer held by %s", ErrLost, l.Key, l.Record.Session)
		}
		rev = cur.Revision
	}
	return fmt.Errorf("%w: %s keeps changing under release", ErrLost, l.Key)
}

// put writes rec over revision rev (0: the key was never written): a
// compare-and-set. A record that names its holder's heartbeat has no TTL of
// its own; one that does not gets the bucket's. (A KV Update would drop a
// TTL; publishing to the bucket's subject sets it.)
func (b *Bucket) put(ctx context.Context, key string, rev uint64, rec Record) (Lease, error) {
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(rev)}
	rec.TTLMillis = 0
	if rec.Holder == "" {
		rec.TTLMillis = b.ttl.Milliseconds()
		opts = append(opts, jetstream.WithMsgTTL(b.ttl))
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return Lease{}, fmt.Errorf("lease: encode record: %w", err)
	}
	ack, err := b.js.Publish(ctx, b.subject(key), data, opts...)
	if jserr.IsWrongLastSequence(err) {
		return Lease{}, fmt.Errorf("%w: %s changed since revision %d", ErrLost, key, rev)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("lease: write %s: %w", key, err)
	}
	return Lease{Key: key, Revision: ack.Sequence, Record: rec}, nil
}
