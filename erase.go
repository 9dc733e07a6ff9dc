package profileledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/profileledger/profileledger/ledger"
)

// Erase removes the profile key for good (GDPR's right to erasure). It
// takes the profile as StartSession does — a live holder is asked to hand
// over; a silent one is waited out — and then:
//
//  1. appends one "pl.erased" tombstone, fenced like any event, so a
//     session that held the profile elsewhere ends as lost at its next
//     append. The tombstone holds no personal data: when, the erasing
//     node, and who and why if the caller said so (WithMeta);
//  2. removes every event before the tombstone, the profile's inbox, its
//     snapshots (every revision) and its user-id index entries;
//  3. releases the lease.
//
// Afterwards Get and StartSession see a fresh profile (the template), whose
// log starts with the tombstone. Erase is idempotent, and safe to call
// again after a failure or a crash halfway: every step can run twice.
//
// On a store whose stream denies delete and purge (WithImmutableLog) it
// does nothing and returns ErrImmutableLog. Erasure purges, so it is an
// admin operation (package roles): a connection with holder rights is
// refused before anything is appended or taken, with an error matching
// nats.ErrPermissionViolation.
//
// ctx bounds the whole erasure, including the wait for the holder. Errors:
// ErrInvalidKey, ErrInvalidInput (bad metadata), ErrLocked (ctx ended
// while the profile was held), ErrClosed, ErrImmutableLog,
// nats.ErrPermissionViolation, NATS errors (call it again).
func (st *Store[T]) Erase(ctx context.Context, key string) error {
	meta, err := callerMeta(ctx, 0)
	if err != nil {
		return err
	}
	token, err := encodeKey(key)
	if err != nil {
		return err
	}
	immutable, err := st.ledger.Immutable(ctx)
	if err != nil {
		return fmt.Errorf("profileledger: erase %q: %w", key, err)
	}
	if immutable {
		return fmt.Errorf("%w: erase %q", ErrImmutableLog, key)
	}
	if err := st.mayPurge(ctx, token); err != nil {
		return fmt.Errorf("profileledger: erase %q: %w", key, err)
	}
	s, err := st.startSession(ctx, key, sessionConfig{erase: true})
	if err != nil {
		return fmt.Errorf("profileledger: erase %q: %w", key, err)
	}
	// The erasing session takes no mutation and answers no hand-over
	// request (s.erasing); its store's heartbeat keeps its lease live until
	// it releases it, so that nobody takes the profile over meanwhile.
	if err := st.erase(ctx, s, meta); err != nil {
		s.lose(fmt.Errorf("erasure not finished: %w", err))
		return fmt.Errorf("profileledger: erase %q: %w", key, err)
	}
	return nil
}

func (st *Store[T]) erase(ctx context.Context, s *Session[T], meta map[string]string) error {
	s.mu.Lock()
	fence, userIDs, inbox := s.fence, s.ps.userIDs, s.ps.inbox
	s.mu.Unlock()
	if meta == nil {
		meta = map[string]string{}
	}
	meta[ledger.MetaNode] = st.cfg.node
	// The tombstone keeps the inbox's watermark, so that a message handled
	// before the erasure is never handled again, whatever the purges below
	// had done when a crash stopped them.
	meta[ledger.MetaMsgSeq] = strconv.FormatUint(inbox, 10)
	tombstone := s.newEvent(ledger.TypeErased, nil, meta)
	tomb, err := st.ledger.Append(ctx, s.subject, fence, tombstone)
	if err != nil {
		return fmt.Errorf("append the tombstone: %w", err)
	}
	// Everything before the tombstone goes, and nothing after it: a
	// session that took the profile meanwhile (a steal) keeps its events,
	// and a message sent after the tombstone stays for the next session.
	if err := st.ledger.PurgeThrough(ctx, s.subject, tomb.Seq-1); err != nil {
		return err
	}
	if err := st.ledger.PurgeThrough(ctx, st.names.Inbox(s.token), tomb.Seq-1); err != nil {
		return err
	}
	if err := st.snaps.Delete(ctx, s.key); err != nil {
		return err
	}
	for _, id := range userIDs {
		if err := st.users.unlink(ctx, id, s.key); err != nil {
			return err
		}
	}
	s.mu.Lock()
	l := s.lease
	s.mu.Unlock()
	if err = st.leases.Release(ctx, l); err != nil {
		st.log.Warn("lease not released after an erasure; trying again in the background", logKey, s.key, logErr, err)
		st.releaseLater(l, err)
	}
	s.mu.Lock()
	if s.state == stateDone { // lost meanwhile (a steal): that is what it is
		s.mu.Unlock()
	} else {
		s.state, s.err = stateDone, ErrSessionEnded
		s.mu.Unlock()
		s.finish()
	}
	// A snapshot a previous holder was still saving may have landed after
	// the first delete: delete again, now that nobody holds the profile.
	return st.snaps.Delete(ctx, s.key)
}

// EraseUser erases every profile linked to the user id userID
// (Session.AddUserID), as Erase does, and returns their keys. It finds
// them in the store's user-id index, and erases a profile only if its log
// still names the user; an index entry that no longer does is removed.
// A failure on one profile stops the call: call it again (erasure is
// idempotent). ctx bounds the whole call.
func (st *Store[T]) EraseUser(ctx context.Context, userID string) (keys []string, err error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	candidates, err := st.users.profiles(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("profileledger: erase user: %w", err)
	}
	for _, key := range candidates {
		token, err := encodeKey(key)
		if err != nil {
			return keys, err
		}
		// The entry's revision before the look: an AddUserID that indexes
		// the profile again while we look keeps its entry.
		rev, err := st.users.revision(ctx, userID, key)
		if err != nil {
			return keys, err
		}
		l, err := st.load(ctx, key, token, 0, time.Time{})
		if err != nil && !errors.Is(err, ErrBadEvent) {
			return keys, fmt.Errorf("profileledger: erase user: read %q: %w", key, err)
		}
		if !contains(l.ps.userIDs, userID) {
			if err := st.users.unlinkAt(ctx, userID, key, rev); err != nil {
				return keys, err
			}
			continue
		}
		if err := st.Erase(ctx, key); err != nil {
			return keys, err
		}
		keys = append(keys, key)
	}
	return keys, nil
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// mayPurge asks the server for a purge that removes nothing (the inbox of
// token before its first sequence), so that a connection without the right
// to purge learns it before an erasure appends its tombstone.
func (st *Store[T]) mayPurge(ctx context.Context, token string) error {
	pctx, stop := cancelOnDenied(ctx, st.nc, []string{"STREAM.PURGE." + st.names.Stream})
	err := st.ledger.PurgeThrough(pctx, st.names.Inbox(token), 0)
	if cause := stop(); cause != nil {
		return fmt.Errorf("erasure is an admin operation, and this connection may not purge stream %s: %w", st.names.Stream, cause)
	}
	return err
}
