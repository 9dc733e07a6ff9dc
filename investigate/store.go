package investigate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
)

// StoreStats are a store's counts, as its stream tells them.
type StoreStats struct {
	Store string `json:"store"`
	// Profiles is how many profiles have an event subject, and
	// EventMessages how many messages those subjects hold (a group commit
	// is one message of several events).
	Profiles      int    `json:"profiles"`
	EventMessages uint64 `json:"event_messages"`
	// StreamMessages and Bytes are the whole stream's (events and inboxes).
	StreamMessages uint64 `json:"stream_messages"`
	Bytes          uint64 `json:"bytes"`
	// LastSeq is the stream's last sequence, and LastStored when it was
	// stored.
	LastSeq    uint64    `json:"last_seq"`
	LastStored time.Time `json:"last_stored"`
}

// Stats reads the store's counts from its stream's info (one request,
// whose answer lists every profile's subject). Errors: ErrNoStore, NATS
// errors.
func Stats(ctx context.Context, js jetstream.JetStream, store string) (StoreStats, error) {
	n, err := names.New(store)
	if err != nil {
		return StoreStats{}, err
	}
	stream, err := js.Stream(ctx, n.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return StoreStats{}, fmt.Errorf("%w: %s (stream %s not found)", ErrNoStore, store, n.Stream)
	}
	if err != nil {
		return StoreStats{}, fmt.Errorf("investigate: store %s: %w", store, err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(n.EventsPrefix()+"*"))
	if err != nil {
		return StoreStats{}, fmt.Errorf("investigate: store %s: %w", store, err)
	}
	s := StoreStats{Store: store, Profiles: len(info.State.Subjects), StreamMessages: info.State.Msgs,
		Bytes: info.State.Bytes, LastSeq: info.State.LastSeq, LastStored: info.State.LastTime}
	for _, c := range info.State.Subjects {
		s.EventMessages += c
	}
	return s, nil
}

// ErrNoStore means the store's stream does not exist.
var ErrNoStore = errors.New("investigate: no such store")

// Found is what Resolve made of a search: the profile a key names, the
// profiles of a user id, and whether to trace the text as a value.
type Found struct {
	Query string `json:"query"`
	// Key is set if the query is the key of a profile with events.
	Key string `json:"key,omitempty"`
	// UserProfiles are the profiles the user-id index links to the query.
	UserProfiles []string `json:"user_profiles,omitempty"`
	// Value is set when neither matched: the query is to be traced as an
	// item value.
	Value string `json:"value,omitempty"`
}

// UserIndex is a Source that can list a user id's profiles (a Source
// from FromStore is one).
type UserIndex interface {
	UserProfiles(ctx context.Context, userID string) ([]string, error)
}

// Resolve says what a search box's text names: a profile's key (it has
// events), a user id (the index links it to profiles; src must be a
// UserIndex for that), or else an item value to trace. A text that is no
// valid key or user id is simply not one.
func Resolve(ctx context.Context, src Source, q string) (Found, error) {
	f := Found{Query: q}
	if _, err := keys.Encode(q); err == nil {
		ok, err := anyEntry(ctx, src, q, LogFilter{})
		if err != nil && !errors.Is(err, profileledger.ErrInvalidKey) {
			return f, err
		}
		if ok {
			f.Key = q
		}
	}
	if ui, ok := src.(UserIndex); ok {
		ps, err := ui.UserProfiles(ctx, q)
		if err != nil && !errors.Is(err, profileledger.ErrInvalidInput) {
			return f, err
		}
		f.UserProfiles = slices.Clone(ps)
	}
	if f.Key == "" && len(f.UserProfiles) == 0 {
		f.Value = q
	}
	return f, nil
}

// LastSeq returns the sequence of the last message on the profile's
// subject (0 if it has none): one direct request, however long its log.
// Errors: ErrNoStore, profileledger.ErrInvalidKey, NATS errors.
func LastSeq(ctx context.Context, js jetstream.JetStream, store, key string) (uint64, error) {
	n, err := names.New(store)
	if err != nil {
		return 0, err
	}
	tok, err := keys.Encode(key)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", profileledger.ErrInvalidKey, err)
	}
	stream, err := js.Stream(ctx, n.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, fmt.Errorf("%w: %s (stream %s not found)", ErrNoStore, store, n.Stream)
	}
	if err != nil {
		return 0, fmt.Errorf("investigate: store %s: %w", store, err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, n.Events(tok))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("investigate: last message of %q: %w", key, err)
	}
	return m.Sequence, nil
}
