package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig says what a store's event stream must look like.
type StreamConfig struct {
	// Name is the stream name (PL_<STORE>).
	Name string
	// Subjects are the stream's subjects (pl.<store>.>).
	Subjects []string
	// Replicas is 1 on a single server, 3 in a cluster.
	Replicas int
	// MaxMsgSize is the largest message the stream accepts, in bytes.
	MaxMsgSize int32
	// Storage defaults to file storage.
	Storage jetstream.StorageType
	// Duplicates is the de-duplication window for Nats-Msg-Id (default 2 min).
	Duplicates time.Duration
	// Immutable creates the stream with DenyDelete and DenyPurge, and
	// refuses an existing one without them.
	Immutable bool
}

func (c StreamConfig) jetstream() jetstream.StreamConfig {
	dup := c.Duplicates
	if dup == 0 {
		dup = 2 * time.Minute
	}
	return jetstream.StreamConfig{
		Name:               c.Name,
		Description:        "profileledger events and inboxes",
		Subjects:           c.Subjects,
		Retention:          jetstream.LimitsPolicy,
		Storage:            c.Storage,
		Replicas:           max(c.Replicas, 1),
		MaxMsgSize:         c.MaxMsgSize,
		Duplicates:         dup,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		Discard:            jetstream.DiscardOld,
		MaxMsgs:            -1,
		MaxBytes:           -1,
		MaxAge:             0,
		MaxMsgsPerSubject:  -1,
		DenyDelete:         c.Immutable,
		DenyPurge:          c.Immutable,
	}
}

// OpenStream creates the stream if it is missing, or checks that the existing
// one is compatible. Two processes may call it at once; both succeed. An
// existing stream whose configuration does not fit is reported with
// ErrStreamConfig, naming the field, and left as it is.
func OpenStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	want := cfg.jetstream()
	for range 3 {
		st, err := js.Stream(ctx, cfg.Name)
		if err == nil {
			if err := compatible(st.CachedInfo().Config, want); err != nil {
				return nil, err
			}
			return st, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("ledger: look up stream %s: %w", cfg.Name, err)
		}
		st, err = js.CreateStream(ctx, want)
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, fmt.Errorf("ledger: create stream %s: %w", cfg.Name, err)
		}
		// Someone else created it between our look-up and create: check theirs.
	}
	return nil, fmt.Errorf("ledger: stream %s keeps appearing and disappearing", cfg.Name)
}

// compatible lists every field of have that does not fit want.
func compatible(have, want jetstream.StreamConfig) error {
	var bad []string
	field := func(name string, h, w any) { bad = append(bad, fmt.Sprintf("%s %v (want %v)", name, h, w)) }
	if !slices.Equal(have.Subjects, want.Subjects) {
		field("subjects", have.Subjects, want.Subjects)
	}
	if have.Storage != want.Storage {
		field("storage", have.Storage, want.Storage)
	}
	if have.Replicas != want.Replicas {
		field("replicas", have.Replicas, want.Replicas)
	}
	if have.Retention != jetstream.LimitsPolicy {
		field("retention", have.Retention, jetstream.LimitsPolicy)
	}
	if !have.AllowDirect {
		field("allow_direct", false, true)
	}
	if !have.AllowAtomicPublish {
		field("allow_atomic", false, true)
	}
	if have.MaxAge != 0 {
		field("max_age", have.MaxAge, "none: an audit log keeps everything")
	}
	if have.MaxMsgs > 0 || have.MaxBytes > 0 || have.MaxMsgsPerSubject > 0 {
		field("limits", fmt.Sprintf("max_msgs %d max_bytes %d max_msgs_per_subject %d", have.MaxMsgs, have.MaxBytes, have.MaxMsgsPerSubject), "none")
	}
	if have.MaxMsgSize > 0 && have.MaxMsgSize < want.MaxMsgSize {
		field("max_msg_size", have.MaxMsgSize, want.MaxMsgSize)
	}
	if want.DenyDelete && !have.DenyDelete || want.DenyPurge && !have.DenyPurge {
		field("deny_delete/deny_purge", fmt.Sprintf("%v/%v", have.DenyDelete, have.DenyPurge), "true/true (an immutable log)")
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%w: stream %s has %s; it was left unchanged", ErrStreamConfig, have.Name, strings.Join(bad, ", "))
}
