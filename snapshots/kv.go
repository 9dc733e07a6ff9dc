package snapshots

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/internal/retry"
)

// KVConfig configures OpenKV.
type KVConfig struct {
	// Bucket is the KV bucket name, e.g. "PL_PLAYERS_SNAPSHOTS". Required.
	Bucket string
	// Replicas is the bucket's replication factor; 0 means 1.
	Replicas int
	// History is how many snapshots per key the bucket keeps; 0 means
	// DefaultHistory, at most MaxHistory.
	History int
	// MaxValueSize limits an encoded snapshot; 0 means DefaultMaxValueSize,
	// lowered if needed to fit the server's max_payload (see OpenKV).
	MaxValueSize int32
	// Storage is the bucket's storage; the zero value is file storage.
	Storage jetstream.StorageType
}

// headerRoom is what KV keeps free in a message for the headers it
// publishes with a value (Nats-Expected-Last-Subject-Sequence): the server
// counts headers against max_payload and the stream's max message size.
const headerRoom = 256

// maxSaveAttempts bounds Save's read-compare-write rounds under contention.
const maxSaveAttempts = 100

// defaultTimeout bounds a read when ctx has no deadline and the JetStream
// context has no default timeout either.
const defaultTimeout = 5 * time.Second

// KV is a Store in a NATS JetStream KV bucket. The KV key of a profile is
// keys.Encode(profileKey); each Save is a new revision and the bucket keeps
// the last History of them. Many processes may share one bucket: Save is a
// compare-and-set on the key's last revision.
type KV struct {
	kv            jetstream.KeyValue
	nc            *nats.Conn
	msgGetSubject string        // the leader-served message get of the bucket's stream
	subjectPrefix string        // "$KV.<bucket>."
	timeout       time.Duration // for reads when ctx has no deadline
	history       int
	maxValueSize  int
}

var _ Store = (*KV)(nil)

// OpenKV opens the snapshot bucket cfg.Bucket, creating it if it does not
// exist. Processes may call it at the same time; all succeed. If the bucket
// exists with another History, Replicas or Storage, OpenKV returns an error
// wrapping ErrIncompatibleBucket that names the field and both values; it
// never changes an existing bucket.
//
// An explicit cfg.MaxValueSize larger than the server's max_payload less
// 256 bytes for headers is an error; the default is lowered to fit.
func OpenKV(ctx context.Context, js jetstream.JetStream, cfg KVConfig) (*KV, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("snapshots: KVConfig.Bucket is empty")
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.History == 0 {
		cfg.History = DefaultHistory
	}
	if cfg.History < 1 || cfg.History > MaxHistory {
		return nil, fmt.Errorf("snapshots: KVConfig.History is %d, must be 1 to %d", cfg.History, MaxHistory)
	}
	if cfg.MaxValueSize < 0 {
		return nil, fmt.Errorf("snapshots: KVConfig.MaxValueSize is %d", cfg.MaxValueSize)
	}
	maxValueSize := int64(cfg.MaxValueSize)
	if fit := js.Conn().MaxPayload() - headerRoom; cfg.MaxValueSize == 0 {
		maxValueSize = min(DefaultMaxValueSize, fit)
	} else if maxValueSize > fit {
		return nil, fmt.Errorf("snapshots: KVConfig.MaxValueSize is %d, the server's max_payload %d leaves room for %d",
			cfg.MaxValueSize, js.Conn().MaxPayload(), fit)
	}

	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      cfg.Bucket,
			Description: "profileledger snapshots",
			History:     uint8(cfg.History),
			Replicas:    cfg.Replicas,
			Storage:     cfg.Storage,
		})
		// Another process created it first, with another configuration
		// (with the same one, creation succeeds): report the difference.
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("snapshots: open bucket %q: %w", cfg.Bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshots: open bucket %q: %w", cfg.Bucket, err)
	}
	got := st.Config()
	for _, f := range []struct {
		name       string
		have, want any
	}{
		{"History", int(got.History), cfg.History},
		{"Replicas", got.Replicas, cfg.Replicas},
		{"Storage", got.Storage, cfg.Storage},
	} {
		if f.have != f.want {
			return nil, fmt.Errorf("%w: bucket %q has %s %v, want %v", ErrIncompatibleBucket, cfg.Bucket, f.name, f.have, f.want)
		}
	}
	timeout := js.Options().DefaultTimeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	return &KV{
		kv:            kv,
		nc:            js.Conn(),
		msgGetSubject: names.APIPrefix(js) + "STREAM.MSG.GET." + names.KVStream(cfg.Bucket),
		subjectPrefix: "$KV." + cfg.Bucket + ".",
		timeout:       timeout,
		history:       cfg.History,
		maxValueSize:  int(maxValueSize),
	}, nil
}

// ErrIncompatibleBucket is returned by OpenKV when the bucket exists with a
// configuration other than the one asked for.
var ErrIncompatibleBucket = errors.New("snapshots: incompatible bucket")

// Bucket returns the name of the KV bucket.
func (s *KV) Bucket() string { return s.kv.Bucket() }

// History returns how many snapshots per key the bucket keeps.
func (s *KV) History() int { return s.history }

// MaxValueSize returns the largest encoded snapshot Save accepts.
func (s *KV) MaxValueSize() int { return s.maxValueSize }

// Save implements Store. It reads the key's snapshots, and writes s only if
// it is newer than the newest valid one, conditioned on the key's last
// revision; if another writer got in first, it reads and decides again.
func (s *KV) Save(ctx context.Context, snap Snapshot) error {
	data, err := Encode(snap)
	if err != nil {
		return err
	}
	if len(data) > s.maxValueSize {
		return tooLarge(snap, len(data), s.maxValueSize)
	}
	token, _ := keys.Encode(snap.Key) // valid: Encode checked the key
	for attempt := 1; ; attempt++ {
		l, last, err := s.load(ctx, token, snap.Key, 0)
		if err != nil {
			return err
		}
		if l.Found && l.Snapshot.Version >= snap.Version {
			return nil
		}
		// Revision 0 means "the key has no value yet".
		_, err = s.kv.Update(ctx, token, data, last)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) && attempt < maxSaveAttempts {
			continue // another writer got in first; look again
		}
		if err != nil {
			return fmt.Errorf("snapshots: save %q at version %d: %w", snap.Key, snap.Version, err)
		}
		return nil
	}
}

// Load implements Store. It reads the newest revision first and walks older
// ones (the bucket's history of the key) only if that one does not qualify.
// A delete or purge marker ends the walk: what came before it is not a
// snapshot of the current profile. Reads are served by the bucket's stream
// leader, so a Load sees every Save that returned before it, also on a
// replicated bucket.
func (s *KV) Load(ctx context.Context, key string, maxVersion uint64) (Loaded, error) {
	token, err := keys.Encode(key)
	if err != nil {
		return Loaded{}, fmt.Errorf("snapshots: %w", err)
	}
	l, _, err := s.load(ctx, token, key, maxVersion)
	return l, err
}

// load is Load that also returns the key's last revision (0 if none), for
// Save's compare-and-set.
func (s *KV) load(ctx context.Context, token, key string, maxVersion uint64) (Loaded, uint64, error) {
	ctx, cancel := retry.WithDefaultTimeout(ctx, s.timeout)
	defer cancel()
	subject := s.subjectPrefix + token
	var l Loaded
	m, err := s.getMsg(ctx, msgGetRequest{LastFor: subject})
	if err != nil {
		return Loaded{}, 0, fmt.Errorf("snapshots: load %q: %w", key, err)
	}
	if m == nil {
		return l, 0, nil
	}
	last := m.Sequence
	if m.isMarker() || l.offer(key, maxVersion, last, m.Data) {
		return l, last, nil
	}

	// Older revisions: the bucket keeps at most History of them. Walk them
	// forward from the start of the stream, then offer them newest first.
	var older []*storedMsg
	for seq := uint64(1); seq < last && len(older) < MaxHistory; {
		m, err := s.getMsg(ctx, msgGetRequest{Seq: seq, NextFor: subject})
		if err != nil {
			return Loaded{}, 0, fmt.Errorf("snapshots: load history of %q: %w", key, err)
		}
		if m == nil || m.Sequence >= last {
			break
		}
		older = append(older, m)
		seq = m.Sequence + 1
	}
	for i := len(older) - 1; i >= 0; i-- {
		if older[i].isMarker() || l.offer(key, maxVersion, older[i].Sequence, older[i].Data) {
			break
		}
	}
	return l, last, nil
}

// Delete implements Store: a KV purge of the key, which drops every
// revision the bucket kept.
func (s *KV) Delete(ctx context.Context, key string) error {
	token, err := keys.Encode(key)
	if err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	ctx, cancel := retry.WithDefaultTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.kv.Purge(ctx, token); err != nil {
		return fmt.Errorf("snapshots: delete %q: %w", key, err)
	}
	return nil
}

// PutRaw stores raw, unchecked, as key's newest snapshot, so that tests and
// repair tools can plant corrupt or foreign data. Normal code uses Save.
func (s *KV) PutRaw(ctx context.Context, key string, raw []byte) error {
	token, err := keys.Encode(key)
	if err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	if _, err := s.kv.Put(ctx, token, raw); err != nil {
		return fmt.Errorf("snapshots: put raw %q: %w", key, err)
	}
	return nil
}
