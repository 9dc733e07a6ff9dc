package audit

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
	"github.com/profileledger/profileledger/snapshots"
)

// The rules CheckProfile enforces besides those of Check.
const (
	// RuleEventFolds: every event the fold takes in applies to the document
	// folded so far. Seq is the event's.
	RuleEventFolds Rule = "event-folds"
	// RuleSnapshotIntact: every stored snapshot decodes and its checksum
	// holds. Seq is the version its header claims, 0 if even that cannot be
	// read.
	RuleSnapshotIntact Rule = "snapshot-intact"
	// RuleSnapshotKey: a snapshot is stored under its own profile's key.
	// Seq is the snapshot's version.
	RuleSnapshotKey Rule = "snapshot-key-matches"
	// RuleSnapshotInFuture: no snapshot's version is beyond the last
	// sequence of its profile's log. Seq is the snapshot's version.
	RuleSnapshotInFuture Rule = "snapshot-in-future"
	// RuleSnapshotFold: a snapshot at version v equals the fold of the log
	// up to v (DESIGN.md §2, Projection). Seq is the snapshot's version.
	RuleSnapshotFold Rule = "snapshot-equals-fold"
	// RuleSnapshotEpoch: a snapshot at version v carries the epoch of the
	// last event folded at v, which a load from it takes as the profile's
	// epoch. Seq is the snapshot's version.
	RuleSnapshotEpoch Rule = "snapshot-epoch-matches"
	// RuleSubjectKey: every profile subject of the store's stream and every
	// key of its snapshot bucket is the encoding of a profile key (see
	// internal/keys). Found by Store only; Key is empty, Seq 0 and Detail
	// names the subject.
	RuleSubjectKey Rule = "subject-names-a-key"
)

// StoredSnapshot is one stored value of a profile's snapshot history,
// undecoded: whether it decodes is one of the things CheckProfile checks.
type StoredSnapshot struct {
	// Revision is the value's revision in the snapshot bucket (the sequence
	// of the bucket's stream), for the report.
	Revision uint64 `json:"revision"`
	// Data is the stored value as snapshots.Encode wrote it, or whatever
	// else is there.
	Data []byte `json:"data"`
}

// CheckProfile returns every violation in one profile's records (as a
// ledger.Log read returned them, in log order) and its stored snapshots, in
// order of sequence: Check's, then RuleEventFolds for every event of the
// fold that does not apply, then, for each snapshot, RuleSnapshotIntact,
// RuleSnapshotKey, RuleSnapshotInFuture, RuleSnapshotFold or
// RuleSnapshotEpoch. Each snapshot gets at most one.
//
// The fold is the one a load performs, from the empty document (JSON null):
// a message that is not an event, an event of an epoch older than the
// newest folded one, and an event claiming the epoch of another session are
// passed over (Check reports them); an event that does not apply is
// reported and passed over too, as a load WithSkipBadEvents does, so that
// one bad event does not hide what comes after it. The log's last sequence
// is that of the last record.
//
// CheckProfile is pure: it does no I/O and changes none of its inputs.
func CheckProfile(key string, recs []ledger.Record, snaps []StoredSnapshot) []Violation {
	out := Check(key, recs)
	add := func(seq uint64, r Rule, format string, args ...any) {
		out = append(out, Violation{Key: key, Seq: seq, Rule: r, Detail: fmt.Sprintf(format, args...)})
	}
	var last uint64
	for _, r := range recs {
		last = max(last, r.Seq)
	}

	// The snapshots to compare with the fold, in order of version.
	type candidate struct {
		rev  uint64
		snap snapshots.Snapshot
	}
	var cands []candidate
	for _, s := range snaps {
		snap, err := snapshots.Decode(s.Data)
		switch {
		case err != nil:
			add(claimedVersion(s.Data), RuleSnapshotIntact, "snapshot revision %d: %v", s.Revision, err)
		case snap.Key != key:
			add(snap.Version, RuleSnapshotKey, "snapshot revision %d is of profile %q", s.Revision, snap.Key)
		case snap.Version > last:
			add(snap.Version, RuleSnapshotInFuture, "snapshot revision %d is at version %d, after the log's last sequence %d", s.Revision, snap.Version, last)
		default:
			cands = append(cands, candidate{s.Revision, snap})
		}
	}
	slices.SortStableFunc(cands, func(a, b candidate) int { return cmp.Compare(a.snap.Version, b.snap.Version) })

	var f fold
	next := 0 // the first record not folded yet
	for _, c := range cands {
		for ; next < len(recs) && recs[next].Seq <= c.snap.Version; next++ {
			if err := f.take(recs[next]); err != nil {
				ev := recs[next].Event
				add(recs[next].Seq, RuleEventFolds, "event %s (%q, session %s) does not fold: %v", ev.ID, ev.Type, ev.Session, err)
			}
		}
		v := c.snap.Version
		state, err := projector.Decode(c.snap.State)
		switch {
		case err != nil:
			add(v, RuleSnapshotFold, "snapshot revision %d at version %d: state is not a document: %v", c.rev, v, err)
		case !projector.Equal(state, f.doc):
			add(v, RuleSnapshotFold, "snapshot revision %d at version %d differs from the fold of the log: %s", c.rev, v, difference(f.doc, state))
		case c.snap.Epoch != f.epoch:
			add(v, RuleSnapshotEpoch, "snapshot revision %d at version %d has epoch %d; the log's epoch there is %d", c.rev, v, c.snap.Epoch, f.epoch)
		}
	}
	for ; next < len(recs); next++ {
		if err := f.take(recs[next]); err != nil {
			ev := recs[next].Event
			add(recs[next].Seq, RuleEventFolds, "event %s (%q, session %s) does not fold: %v", ev.ID, ev.Type, ev.Session, err)
		}
	}
	slices.SortStableFunc(out, func(a, b Violation) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// fold is a profile's document folded record by record, as a load folds it
// (see CheckProfile).
type fold struct {
	doc     any
	epoch   uint64 // highest epoch folded
	session string // the session that wrote it
}

// take folds r, or passes over it. It returns the projector's error for an
// event that does not apply (and leaves the fold as it was).
func (f *fold) take(r ledger.Record) error {
	if r.Err != nil {
		return nil
	}
	ev := r.Event
	if ev.Epoch < f.epoch || ev.Epoch == f.epoch && f.session != "" && ev.Session != f.session {
		return nil
	}
	doc, err := projector.Apply(f.doc, ev.Ops)
	if err != nil {
		return err
	}
	f.doc, f.epoch, f.session = doc, ev.Epoch, ev.Session
	return nil
}

// difference describes how snap differs from the fold: the first few ops
// that would turn the fold into it.
func difference(folded, snap any) string {
	const most = 3
	ops := projector.Diff(folded, snap)
	if len(ops) == 0 {
		return "the documents differ"
	}
	parts := make([]string, 0, most+1)
	for i, op := range ops {
		if i == most {
			parts = append(parts, fmt.Sprintf("and %d more", len(ops)-most))
			break
		}
		s := op.Op + " " + showPath(op.Path)
		if op.From != "" {
			s = op.Op + " " + showPath(op.From) + " -> " + showPath(op.Path)
		}
		if len(op.Value) > 0 {
			s += " " + clip(string(op.Value), 64)
		}
		parts = append(parts, s)
	}
	return "the snapshot has " + strings.Join(parts, "; ")
}

func showPath(p string) string {
	if p == "" {
		return `""`
	}
	return p
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// claimedVersion is the version in a stored snapshot's header line, if that
// much of it can be read, for reporting a snapshot that does not decode; 0
// otherwise.
func claimedVersion(data []byte) uint64 {
	line, _, _ := bytes.Cut(data[:min(len(data), 4096)], []byte{'\n'})
	var h struct {
		Version uint64 `json:"version"`
	}
	if json.Unmarshal(line, &h) != nil {
		return 0
	}
	return h.Version
}
