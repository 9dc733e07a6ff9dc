package profileledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/retry"
	"github.com/profileledger/profileledger/ledger"
)

// Limits on user ids.
const (
	// MaxUserIDLen is the longest user id accepted.
	MaxUserIDLen = 128
	// MaxUserIDs is how many user ids one profile may have.
	MaxUserIDs = 32
)

func checkUserID(id string) error {
	if id == "" || len(id) > MaxUserIDLen || !utf8.ValidString(id) {
		return fmt.Errorf("%w: a user id is 1 to %d bytes of UTF-8, got %d bytes", ErrInvalidInput, MaxUserIDLen, len(id))
	}
	return nil
}

// AddUserID links the user id to the profile (ProfileStore's AddUserId,
// DataStore2's tags), so that Store.EraseUser and operators find every
// profile of a person. It is recorded as one event ("pl.userid.added",
// with the caller's metadata); adding an id the profile has is a no-op. The
// store's user-id index gets its entry before the event is appended, so
// the index never misses a profile (it may briefly name one that does not
// have the id; EraseUser checks). Errors: ErrInvalidInput (an empty, long
// or non-UTF-8 id, or more than MaxUserIDs), and those of Mutate.
func (s *Session[T]) AddUserID(ctx context.Context, id string) error {
	if err := checkUserID(id); err != nil {
		return err
	}
	if slices.Contains(s.UserIDs(), id) {
		return nil
	}
	if err := s.st.users.link(ctx, id, s.key); err != nil {
		return err
	}
	return s.userIDEvent(ctx, ledger.TypeUserIDAdded, id)
}

// RemoveUserID unlinks the user id from the profile (ProfileStore's
// RemoveUserId), recorded as one event ("pl.userid.removed"); removing an
// id the profile does not have is a no-op. The index entry goes after the
// event is in the log.
func (s *Session[T]) RemoveUserID(ctx context.Context, id string) error {
	if err := checkUserID(id); err != nil {
		return err
	}
	if !slices.Contains(s.UserIDs(), id) {
		return nil
	}
	// The index entry as it is before the event: if an AddUserID (this
	// session's or a later holder's) writes it again meanwhile, it stays.
	rev, err := s.st.users.revision(ctx, id, s.key)
	if err != nil {
		return err
	}
	if err := s.userIDEvent(ctx, ledger.TypeUserIDRemoved, id); err != nil {
		return err
	}
	// In deferred mode the event is in memory only: the entry goes once the
	// log has it, or never (a lost session keeps the id in the log).
	if err := s.Flush(ctx); err != nil {
		return err
	}
	return s.st.users.unlinkAt(ctx, id, s.key, rev)
}

// UserIDs returns the profile's user ids, sorted (ProfileStore's UserIds).
func (s *Session[T]) UserIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ps.userIDs)
}

func (s *Session[T]) userIDEvent(ctx context.Context, typ, id string) error {
	meta, err := callerMeta(ctx, 1)
	if err != nil {
		return err
	}
	meta[ledger.MetaUserID] = id
	return s.submit(ctx, &request[T]{ctx: ctx, typ: typ, lib: true, always: true, meta: meta, fn: func(*T) error { return nil }})
}

// userIndex is the store's index from user id to profile keys: a KV bucket
// whose keys are <user id token>.<profile key token>, each holding the
// profile key. It is derived data kept a superset of the truth (entries
// are added before the event, removed after it).
type userIndex struct {
	kv jetstream.KeyValue
}

func openUserIndex(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, storage jetstream.StorageType) (*userIndex, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: bucket, Description: "profileledger user ids: <user id>.<profile key> -> profile key",
			History: 1, Replicas: replicas, Storage: storage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open user-id index %s: %w", bucket, err)
	}
	return &userIndex{kv: kv}, nil
}

func indexKey(userID, key string) (string, error) {
	u, err := keys.Encode(userID)
	if err != nil {
		return "", fmt.Errorf("%w: user id: %w", ErrInvalidInput, err)
	}
	k, err := keys.Encode(key)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return u + "." + k, nil
}

func (x *userIndex) link(ctx context.Context, userID, key string) error {
	k, err := indexKey(userID, key)
	if err != nil {
		return err
	}
	ctx, cancel := retry.WithDefaultTimeout(ctx, ledger.DefaultTimeout)
	defer cancel()
	if _, err := x.kv.Put(ctx, k, []byte(key)); err != nil {
		return fmt.Errorf("profileledger: index user id: %w", err)
	}
	return nil
}

// revision returns the index entry's current revision (0 if there is
// none), for unlinkAt.
func (x *userIndex) revision(ctx context.Context, userID, key string) (uint64, error) {
	k, err := indexKey(userID, key)
	if err != nil {
		return 0, err
	}
	ctx, cancel := retry.WithDefaultTimeout(ctx, ledger.DefaultTimeout)
	defer cancel()
	e, err := x.kv.Get(ctx, k)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("profileledger: read user-id index: %w", err)
	}
	return e.Revision(), nil
}

// unlinkAt removes the index entry only if it is still at revision rev: an
// entry written again since (a concurrent AddUserID) stays.
func (x *userIndex) unlinkAt(ctx context.Context, userID, key string, rev uint64) error {
	if rev == 0 {
		return nil
	}
	k, err := indexKey(userID, key)
	if err != nil {
		return err
	}
	ctx, cancel := retry.WithDefaultTimeout(ctx, ledger.DefaultTimeout)
	defer cancel()
	err = x.kv.Delete(ctx, k, jetstream.LastRevision(rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("profileledger: unindex user id: %w", err)
	}
	return nil
}

func (x *userIndex) unlink(ctx context.Context, userID, key string) error {
	k, err := indexKey(userID, key)
	if err != nil {
		return err
	}
	ctx, cancel := retry.WithDefaultTimeout(ctx, ledger.DefaultTimeout)
	defer cancel()
	if err := x.kv.Purge(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("profileledger: unindex user id: %w", err)
	}
	return nil
}

// profiles returns the keys the index links to userID.
func (x *userIndex) profiles(ctx context.Context, userID string) ([]string, error) {
	u, err := keys.Encode(userID)
	if err != nil {
		return nil, fmt.Errorf("%w: user id: %w", ErrInvalidInput, err)
	}
	ctx, cancel := retry.WithDefaultTimeout(ctx, ledger.DefaultTimeout)
	defer cancel()
	lister, err := x.kv.ListKeysFiltered(ctx, u+".*")
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range lister.Keys() {
		tok, ok := strings.CutPrefix(k, u+".")
		if !ok {
			continue
		}
		key, err := keys.Decode(tok)
		if err != nil {
			continue
		}
		out = append(out, key)
	}
	slices.Sort(out)
	return out, nil
}

// UserProfiles returns the keys of the profiles the store's user-id index
// links to userID, sorted: what an operator searching by user id, or
// EraseUser, starts from. The index may name a profile that no longer has
// the id (it is written before AddUserID's event and cleaned after
// RemoveUserID's): check Info's UserIDs where it matters. Errors:
// ErrInvalidInput (an empty, long or non-UTF-8 id), ErrClosed, NATS errors.
func (st *Store[T]) UserProfiles(ctx context.Context, userID string) ([]string, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if st.isClosed() {
		return nil, ErrClosed
	}
	return st.users.profiles(ctx, userID)
}
