package profileledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

// LoadReport says how a profile's state was rebuilt: from which snapshot,
// with how many events, and what was passed over. Nothing in it is silent:
// every skipped message and every distrusted snapshot is listed.
type LoadReport struct {
	// SnapshotVersion is the version of the snapshot the load started from
	// (0: replayed from the first event).
	SnapshotVersion uint64
	// Replayed is how many events were folded after the snapshot.
	Replayed int
	// SkippedMessages are messages on the profile's subject that were not
	// folded: not events at all, or (with WithSkipBadEvents) events that
	// did not apply.
	SkippedMessages []SkippedMessage
	// SkippedSnapshots are snapshots that were corrupt or unreadable and so
	// not trusted.
	SkippedSnapshots []string
}

// SkippedMessage is one message a load passed over.
type SkippedMessage struct {
	Seq    uint64
	Reason string
}

// loaded is a profile's folded state.
type loaded struct {
	doc     any
	version uint64 // last event folded
	fence   uint64 // last message on the subject (event or skipped)
	epoch   uint64 // highest epoch folded
	session string // the session that wrote epoch, once seen
	report  LoadReport
}

// load folds a profile from its newest usable snapshot and the events after
// it, up to upTo (0: the end) or, if at is set, up to the last event the
// server stored at or before at.
func (st *Store[T]) load(ctx context.Context, key, token string, upTo uint64, at time.Time) (loaded, error) {
	var l loaded
	if at.IsZero() {
		snap, err := st.snaps.Load(ctx, key, upTo)
		if err != nil {
			return loaded{}, fmt.Errorf("profileledger: load snapshot of %q: %w", key, err)
		}
		for _, s := range snap.Skipped {
			msg := fmt.Sprintf("revision %d: %v", s.Revision, s.Err)
			l.report.SkippedSnapshots = append(l.report.SkippedSnapshots, msg)
			st.log.Warn("snapshot not trusted; falling back", logKey, key, logReason, msg)
		}
		if snap.Found {
			doc, err := projector.Decode(snap.Snapshot.State)
			if err != nil {
				// Decode verified the checksum, so this is a snapshot we wrote
				// wrongly; still derived data: replay from scratch.
				l.report.SkippedSnapshots = append(l.report.SkippedSnapshots, fmt.Sprintf("version %d: %v", snap.Snapshot.Version, err))
			} else {
				l.doc, l.version, l.fence = doc, snap.Snapshot.Version, snap.Snapshot.Version
				l.epoch, l.session = snap.Snapshot.Epoch, snap.Snapshot.Session
				l.report.SnapshotVersion = snap.Snapshot.Version
			}
		}
	}
	subject := st.names.Events(token)
	fold := func(r ledger.Record) error {
		if !at.IsZero() && r.Stored.After(at) {
			return errStopRead
		}
		return st.fold(&l, key, r)
	}
	var err error
	if st.cfg.replicas > 1 && at.IsZero() {
		// Direct gets may be answered by a replica a moment behind: read
		// through the last sequence the stream's leader knows, so that every
		// acknowledged event is seen.
		last, lerr := st.ledger.LastFromLeader(ctx, subject)
		if lerr != nil {
			return loaded{}, lerr
		}
		through := upTo
		if upTo == 0 || last < upTo {
			through = last
		}
		err = st.ledger.ReadThrough(ctx, subject, l.fence, through, fold)
	} else {
		err = st.ledger.Read(ctx, subject, l.fence, upTo, fold)
	}
	if err != nil && !errors.Is(err, errStopRead) {
		return loaded{}, err
	}
	return l, nil
}

var errStopRead = errors.New("stop")

// fold applies one record to l, or skips it as the store is configured to.
func (st *Store[T]) fold(l *loaded, key string, r ledger.Record) error {
	if r.Err != nil {
		// Not an event at all: it cannot have changed the profile.
		st.skip(l, key, r.Seq, r.Err)
		return nil
	}
	ev := r.Event
	switch {
	case ev.Epoch < l.epoch:
		// Only a zombie or a forger writes behind a newer fence, and the
		// fence rejects zombies: never fold it.
		st.skip(l, key, r.Seq, fmt.Errorf("event %s has epoch %d after epoch %d began", ev.ID, ev.Epoch, l.epoch))
		return nil
	case ev.Epoch == l.epoch && l.session != "" && ev.Session != l.session:
		st.skip(l, key, r.Seq, fmt.Errorf("event %s claims epoch %d of session %s, which belongs to %s", ev.ID, ev.Epoch, ev.Session, l.session))
		return nil
	}
	doc, err := projector.Apply(l.doc, ev.Ops)
	if err != nil {
		if !st.cfg.skipBadEvents {
			return fmt.Errorf("%w: profile %q, sequence %d, event %s (%s): %w", ErrBadEvent, key, r.Seq, r.Event.ID, r.Event.Type, err)
		}
		st.skip(l, key, r.Seq, err)
		return nil
	}
	l.doc, l.version, l.fence = doc, r.Seq, r.Seq
	l.epoch, l.session = ev.Epoch, ev.Session
	l.report.Replayed++
	return nil
}

func (st *Store[T]) skip(l *loaded, key string, seq uint64, why error) {
	l.fence = seq
	l.report.SkippedMessages = append(l.report.SkippedMessages, SkippedMessage{Seq: seq, Reason: why.Error()})
	st.log.Warn("skipped a message that is not a foldable event", logKey, key, logSeq, seq, logReason, why.Error())
}
