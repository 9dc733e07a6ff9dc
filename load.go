package profileledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
	"github.com/profileledger/profileledger/snapshots"
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
	// folded: not events at all, events written behind a newer fence, or
	// (with WithSkipBadEvents) events that did not apply. It lists the
	// first MaxReportedSkips of them; SkippedTotal counts them all.
	SkippedMessages []SkippedMessage
	// SkippedTotal is how many messages were skipped, listed or not.
	SkippedTotal int
	// SkippedSnapshots are snapshots that were not trusted: corrupt,
	// unreadable, or not matching the log (their version is not an event
	// of this profile with their epoch and session).
	SkippedSnapshots []string
}

// MaxReportedSkips bounds LoadReport.SkippedMessages: a subject flooded with
// garbage costs a count, not memory.
const MaxReportedSkips = 100

// clone returns a copy of r that shares no memory with it.
func (r LoadReport) clone() LoadReport {
	r.SkippedMessages = slices.Clone(r.SkippedMessages)
	r.SkippedSnapshots = slices.Clone(r.SkippedSnapshots)
	return r
}

// addSkipped lists a skipped message, within the bound.
func (r *LoadReport) addSkipped(m SkippedMessage) {
	r.SkippedTotal++
	if len(r.SkippedMessages) < MaxReportedSkips {
		r.SkippedMessages = append(r.SkippedMessages, m)
	}
}

// SkippedMessage is one message a load passed over.
type SkippedMessage struct {
	Seq    uint64
	Reason string
}

// head is a subject's last message and its chain hash: the fence an
// append is made on, and the link it carries (see ledger.Head).
type head = ledger.Head

// loaded is a profile's folded state.
type loaded struct {
	doc     any
	version uint64 // last event folded
	fence   head   // last message on the subject (event or skipped), and its chain hash
	epoch   uint64 // highest epoch folded
	session string // the session that wrote epoch, once seen
	report  LoadReport

	ps profileState // beside the document: what the fold keeps of library events
}

// load folds a profile from its newest usable snapshot and the events after
// it, up to upTo (0: the end) or, if at is set, up to the last event the
// server stored at or before at.
//
// A snapshot is checked, never trusted: its version must be a message of
// this profile's subject whose events carry the snapshot's epoch and
// session. The check costs no extra request: the read simply starts at the
// snapshot's own message. A snapshot that fails it (the stream was deleted,
// purged or restored from an older backup while the bucket survived, or
// someone wrote the bucket) is reported in LoadReport.SkippedSnapshots, and
// the load falls back to an older snapshot, or to a full replay.
func (st *Store[T]) load(ctx context.Context, key, token string, upTo uint64, at time.Time) (loaded, error) {
	var report LoadReport
	maxVersion, useSnapshots := upTo, at.IsZero()
	for {
		l := loaded{report: report}
		var snap *snapshots.Snapshot
		if useSnapshots {
			var err error
			if snap, err = st.loadSnapshot(ctx, key, maxVersion, &l); err != nil {
				return loaded{}, err
			}
		}
		err := st.replay(ctx, key, token, upTo, at, snap, &l)
		var distrust *distrustedSnapshot
		if !errors.As(err, &distrust) {
			return l, err
		}
		msg := fmt.Sprintf("version %d: %s", snap.Version, distrust.why)
		report = l.report
		report.SnapshotVersion, report.Replayed = 0, 0
		report.SkippedMessages, report.SkippedTotal = nil, 0 // the next attempt reads them again
		report.SkippedSnapshots = append(report.SkippedSnapshots, msg)
		st.log.Warn("snapshot does not match the log; falling back", logKey, key, logReason, msg)
		// No older snapshot can start below version 1: then replay all.
		maxVersion, useSnapshots = snap.Version-1, snap.Version > 1
	}
}

// loadSnapshot finds the newest decodable snapshot at or below maxVersion
// (0: any) and starts l from it; it returns nil if there is none.
func (st *Store[T]) loadSnapshot(ctx context.Context, key string, maxVersion uint64, l *loaded) (*snapshots.Snapshot, error) {
	for {
		found, err := st.snaps.Load(ctx, key, maxVersion)
		if err != nil {
			return nil, fmt.Errorf("profileledger: load snapshot of %q: %w", key, err)
		}
		for _, s := range found.Skipped {
			msg := fmt.Sprintf("revision %d: %v", s.Revision, s.Err)
			if slices.Contains(l.report.SkippedSnapshots, msg) {
				continue // reported by an earlier attempt of this load
			}
			l.report.SkippedSnapshots = append(l.report.SkippedSnapshots, msg)
			st.log.Warn("snapshot not trusted; falling back", logKey, key, logReason, msg)
		}
		if !found.Found {
			return nil, nil
		}
		snap := found.Snapshot
		if snap.Meta[snapState] != snapStateVersion {
			l.report.SkippedSnapshots = append(l.report.SkippedSnapshots, fmt.Sprintf("version %d: written without the profile's state (by an older version): not used", snap.Version))
			if snap.Version <= 1 {
				return nil, nil
			}
			maxVersion = snap.Version - 1
			continue
		}
		doc, err := projector.Decode(snap.State)
		if err != nil {
			// Decode verified the checksum, so this is a snapshot we wrote
			// wrongly; still derived data: look further back.
			l.report.SkippedSnapshots = append(l.report.SkippedSnapshots, fmt.Sprintf("version %d: %v", snap.Version, err))
			if snap.Version <= 1 {
				return nil, nil
			}
			maxVersion = snap.Version - 1
			continue
		}
		// The fence's hash comes with the snapshot's own message, which
		// the replay reads first.
		l.doc, l.version, l.fence = doc, snap.Version, ledger.Head{Seq: snap.Version}
		l.epoch, l.session = snap.Epoch, snap.Session
		l.ps = stateFromSnapshot(snap.Meta)
		l.report.SnapshotVersion = snap.Version
		return &snap, nil
	}
}

// distrustedSnapshot stops a replay whose snapshot does not match the log.
type distrustedSnapshot struct{ why string }

func (d *distrustedSnapshot) Error() string { return "snapshot does not match the log: " + d.why }

// replay folds the events after l's snapshot (if any) into l. With a
// snapshot it reads from the snapshot's own message, to check it.
func (st *Store[T]) replay(ctx context.Context, key, token string, upTo uint64, at time.Time, snap *snapshots.Snapshot, l *loaded) error {
	subject := st.names.Events(token)
	after := l.fence.Seq
	sawOwn := false // the snapshot's own message was read and matches it
	fold := func(r ledger.Record) error {
		if snap != nil && !sawOwn || snap != nil && r.Seq == snap.Version {
			if r.Seq != snap.Version {
				return &distrustedSnapshot{fmt.Sprintf("sequence %d is not a message of this profile", snap.Version)}
			}
			// The snapshot's own message (all its events, if a group): its
			// changes are in the snapshot already.
			switch {
			case r.Err != nil:
				return &distrustedSnapshot{fmt.Sprintf("sequence %d is not an event: %v", r.Seq, r.Err)}
			case r.Event.Epoch != snap.Epoch || snap.Session != "" && r.Event.Session != snap.Session:
				return &distrustedSnapshot{fmt.Sprintf("the event at that version is of epoch %d, session %s; the snapshot says epoch %d, session %s",
					r.Event.Epoch, r.Event.Session, snap.Epoch, snap.Session)}
			}
			sawOwn = true
			l.fence = r.Head()
			return nil
		}
		if !at.IsZero() && r.Stored.After(at) {
			return errStopRead
		}
		return st.fold(l, key, r)
	}
	if snap != nil {
		after = snap.Version - 1
	}
	// On a replicated store, through the leader's last sequence (any
	// replica may answer the reads themselves): every acknowledged event.
	err := st.readLog(ctx, subject, after, upTo, fold)
	if err != nil && !errors.Is(err, errStopRead) {
		return err
	}
	if snap != nil && !sawOwn {
		return &distrustedSnapshot{fmt.Sprintf("the profile's log has no message at sequence %d", snap.Version)}
	}
	return nil
}

var errStopRead = errors.New("stop")

// fold applies one record to l, or skips it as the store is configured to.
func (st *Store[T]) fold(l *loaded, key string, r ledger.Record) error {
	if r.Err != nil {
		// Not an event at all: it cannot have changed the profile.
		st.skip(l, key, r, r.Err)
		return nil
	}
	ev := r.Event
	switch {
	case ev.Epoch < l.epoch:
		// Only a zombie or a forger writes behind a newer fence, and the
		// fence rejects zombies: never fold it.
		st.skip(l, key, r, fmt.Errorf("event %s has epoch %d after epoch %d began", ev.ID, ev.Epoch, l.epoch))
		return nil
	case ev.Epoch == l.epoch && l.session != "" && ev.Session != l.session:
		st.skip(l, key, r, fmt.Errorf("event %s claims epoch %d of session %s, which belongs to %s", ev.ID, ev.Epoch, ev.Session, l.session))
		return nil
	}
	before := l.doc
	if ev.Type == ledger.TypeErased {
		before = nil // everything before the tombstone is gone
	}
	doc, err := projector.Apply(before, ev.Ops)
	if err != nil {
		if !st.cfg.skipBadEvents {
			return fmt.Errorf("%w: profile %q, sequence %d, event %s (%s): %w", ErrBadEvent, key, r.Seq, r.Event.ID, r.Event.Type, err)
		}
		st.skip(l, key, r, err)
		return nil
	}
	l.doc, l.version, l.fence = doc, r.Seq, r.Head()
	l.epoch, l.session = ev.Epoch, ev.Session
	l.ps = foldState(l.ps, ev, r.Stored)
	l.report.Replayed++
	return nil
}

func (st *Store[T]) skip(l *loaded, key string, r ledger.Record, why error) {
	seq := r.Seq
	l.fence = r.Head()
	l.report.addSkipped(SkippedMessage{Seq: seq, Reason: why.Error()})
	st.log.Warn("skipped a message that is not a foldable event", logKey, key, logSeq, seq, logReason, why.Error())
}
