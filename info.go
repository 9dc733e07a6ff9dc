package profileledger

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Info is what Store.Info tells about a profile without taking its lease
// (ProfileStore's KeyInfo, Session, FirstSessionTime and SessionLoadCount;
// ProfileService's MetaData).
type Info struct {
	// Key is the profile's key.
	Key string
	// Exists is false for a profile with no events (or only an erasure's
	// tombstone).
	Exists bool
	// Version is the sequence of its last event; Epoch the number of
	// sessions it has had (ProfileStore's SessionLoadCount).
	Version, Epoch uint64
	// Holder names the node holding the profile now ("" if nobody does);
	// HolderSession is that session's id, and HolderSince when its fence
	// was stored (zero if its fence is not in the log yet).
	Holder, HolderSession string
	HolderSince           time.Time
	// UserIDs are its user ids, sorted.
	UserIDs []string
	// PendingMessages is how many inbox messages wait to be handled.
	PendingMessages int
	// Created is when its first event was stored (since its last
	// erasure; ProfileStore's FirstSessionTime), Updated its last.
	Created, Updated time.Time
	// Migrations is how many migration steps it has had.
	Migrations int
}

// Info reads what a profile is and who holds it, without taking its lease:
// its newest snapshot and the events after it, its lease, and its inbox's
// length. Errors: ErrInvalidKey, ErrClosed, ErrBadEvent, NATS errors.
func (st *Store[T]) Info(ctx context.Context, key string) (Info, error) {
	token, err := encodeKey(key)
	if err != nil {
		return Info{}, err
	}
	if st.isClosed() {
		return Info{}, ErrClosed
	}
	l, err := st.load(ctx, key, token, 0, time.Time{})
	if err != nil {
		return Info{}, err
	}
	info := Info{
		Key: key, Exists: l.doc != nil, Version: l.version, Epoch: l.epoch,
		UserIDs: slices.Clone(l.ps.userIDs), Created: l.ps.created, Updated: l.ps.updated,
		Migrations: l.ps.migrated,
	}
	lease, held, err := st.leases.Get(ctx, token)
	if err != nil {
		return Info{}, fmt.Errorf("profileledger: info of %q: %w", key, err)
	}
	if held {
		// A record whose node is dead holds nothing.
		if held, err = st.leases.Live(ctx, lease); err != nil {
			return Info{}, fmt.Errorf("profileledger: info of %q: %w", key, err)
		}
	}
	if held {
		info.Holder, info.HolderSession = lease.Record.Node, lease.Record.Session
		if l.session == lease.Record.Session {
			info.HolderSince = l.ps.started
		}
	}
	pending, err := st.ledger.Count(ctx, st.names.Inbox(token), l.ps.inbox)
	if err != nil {
		return Info{}, fmt.Errorf("profileledger: info of %q: %w", key, err)
	}
	info.PendingMessages = int(pending)
	return info, nil
}
