package snapshots

import (
	"context"
	"fmt"

	"github.com/profileledger/profileledger/internal/keys"
)

// Store keeps the recent snapshots of each profile. Implementations are safe
// for concurrent use, by goroutines and, for KV, by processes.
type Store interface {
	// Save records s as the newest snapshot of s.Key. It never replaces a
	// newer snapshot with an older one: if s.Version is not greater than the
	// Version of the newest valid snapshot, Save does nothing and returns
	// nil. It returns an error wrapping ErrTooLarge if the encoded snapshot
	// is larger than the store allows, and then writes nothing.
	Save(ctx context.Context, s Snapshot) error

	// Load returns the newest valid snapshot of key whose Version is at most
	// maxVersion (0 means no bound). Corrupt or unreadable snapshots are
	// passed over and listed, newest first, in Loaded.Skipped. Found is
	// false if no snapshot qualifies; the caller then replays the log from
	// the start. The error is only for an invalid key (wrapping
	// keys.ErrInvalid) or a failure to reach the storage.
	Load(ctx context.Context, key string, maxVersion uint64) (Loaded, error)

	// Delete removes every stored snapshot of key (an erasure): a Load
	// after it finds none, and no older revision survives it. Deleting a
	// key that has none is not an error.
	Delete(ctx context.Context, key string) error
}

// Loaded is the result of Store.Load.
type Loaded struct {
	Snapshot Snapshot  // valid only if Found
	Found    bool      // whether a valid snapshot qualified
	Skipped  []Skipped // snapshots passed over because they were corrupt, newest first
}

// Skipped is one stored snapshot that Load passed over.
type Skipped struct {
	Revision uint64 // the store's revision of the bad value (the KV revision for KV)
	Err      error  // why; wraps ErrCorrupt
}

// Defaults and limits shared by Memory and KV.
const (
	// DefaultHistory is how many snapshots per key a store keeps by default.
	DefaultHistory = 5
	// MaxHistory is the most snapshots per key a KV store can keep (the NATS
	// KV limit).
	MaxHistory = 64
	// DefaultMaxValueSize is the default limit on an encoded snapshot.
	DefaultMaxValueSize = 1 << 20
)

// checkKey returns an error wrapping keys.ErrInvalid if key is not a valid
// profile key.
func checkKey(key string) error {
	if err := keys.Check(key); err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	return nil
}

// tooLarge returns the error for an encoded snapshot of n bytes over limit.
func tooLarge(s Snapshot, n, limit int) error {
	return fmt.Errorf("%w: %q at version %d is %d bytes encoded, limit is %d", ErrTooLarge, s.Key, s.Version, n, limit)
}

// offer considers one stored value of key, the stores walking them newest
// first. It keeps the first valid snapshot with Version <= maxVersion (0: no
// bound), lists corrupt ones in Skipped, and reports whether the walk is over.
func (l *Loaded) offer(key string, maxVersion, rev uint64, data []byte) (done bool) {
	s, err := decodeFor(key, data)
	if err != nil {
		l.Skipped = append(l.Skipped, Skipped{Revision: rev, Err: err})
		return false
	}
	if maxVersion != 0 && s.Version > maxVersion {
		return false
	}
	l.Snapshot, l.Found = s, true
	return true
}
