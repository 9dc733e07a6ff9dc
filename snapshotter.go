package profileledger

import (
	"context"
	"fmt"

	"github.com/profileledger/profileledger/ledger"
)

// SnapshotterName is the name of the built-in snapshotter projection: its
// consumer is PL_<store>_PROJ_snapshotter.
const SnapshotterName = "snapshotter"

// Snapshotter returns the store's built-in snapshotter: a projection that
// writes a snapshot of every profile that has every or more events since
// its last snapshot (as far as its fold knows: the one its load started
// from, or the last it wrote), whoever holds the profile, or nobody. A
// holder that crashed after 255 events, or a profile nobody reopens, then
// costs its next load a short tail instead of the whole stretch.
//
// Its snapshots are the holders' kind: the fold of the log up to a message
// it read from the stream (so never ahead of the log), with that message's
// epoch and session (so a load's check accepts them), written with the
// same compare-and-set (snapshots.Store.Save), which never replaces a
// newer snapshot. A failed write is logged and counted; the next events
// try again. Snapshots are derived data: running no snapshotter, or
// several, is always safe.
//
// every must be at least 1; the store's own interval (WithSnapshotEvery,
// 256) is the natural choice.
func (st *Store[T]) Snapshotter(every int, opts ...ProjectionOption) (*Projection[T], error) {
	if every < 1 {
		return nil, fmt.Errorf("%w: snapshotter interval %d must be at least 1", ErrInvalidInput, every)
	}
	p, err := st.newProjection(SnapshotterName, nil, opts)
	if err != nil {
		return nil, err
	}
	p.afterMsg = func(ctx context.Context, e *foldEntry) {
		if e.sinceSnap < every || e.l.version == 0 || e.l.doc == nil {
			return
		}
		snap, err := pendingSnapshot{
			key: e.key, version: e.l.version, epoch: e.l.epoch, session: e.l.session,
			doc: e.l.doc, meta: e.l.ps.snapshotMeta(),
		}.encode()
		if err == nil {
			sctx, cancel := context.WithTimeout(ctx, ledger.DefaultTimeout)
			// The version's message must still be in the log: an erasure
			// may have purged it after the message was delivered, and its
			// data must not come back as a snapshot.
			present := false
			err = st.ledger.ReadRaw(sctx, st.names.Events(e.token), e.l.version-1, e.l.version, func(m ledger.RawMessage) error {
				present = present || m.Seq == e.l.version
				return nil
			})
			if err == nil && !present {
				cancel()
				e.sinceSnap = 0
				return
			}
			if err == nil {
				err = st.snaps.Save(sctx, snap)
			}
			cancel()
		}
		if err != nil {
			p.stats.snapshotErrors.Add(1)
			st.log.Warn("snapshotter: snapshot not saved", logKey, e.key, logSeq, e.l.version, logErr, err)
			return
		}
		p.stats.snapshots.Add(1)
		e.sinceSnap = 0
	}
	return p, nil
}
