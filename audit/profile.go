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
	// RuleMessageInInbox: every handled message existed in the profile's
	// inbox, or was removed from the stream since. A handled message's
	// inbox message is purged once its event is in the log, and an erasure
	// purges the whole inbox, so what can be checked of a pl.message event
	// (one that a load folds) at log sequence s naming inbox sequence n
	// with id i is: n < s (the message was in the stream before it was
	// handled: the inbox and the log are one stream); and if the stream
	// still holds a message at n, it is on this profile's inbox subject
	// (pl.<store>.msg.<token>) with Pl-Message-Id i. A sequence no longer
	// in the stream passes: it was purged or erased, and the stream does
	// not say from which subject. Checked only with WithInbox (Store always
	// gives it). Seq is the event's.
	RuleMessageInInbox Rule = "handled-message-in-inbox"
)

// StreamMessage is what a store's stream holds at one sequence, as far as
// RuleMessageInInbox needs it.
type StreamMessage struct {
	Seq     uint64 `json:"seq"`
	Subject string `json:"subject"`
	// MessageID is the message's Pl-Message-Id header (ledger.HeaderMessageID).
	MessageID string `json:"message_id"`
}

// CheckOption gives CheckProfile more to check.
type CheckOption func(*checkConfig)

type checkConfig struct {
	inbox     string
	inboxSeen bool
	stream    map[uint64]StreamMessage
}

// WithInbox makes CheckProfile check RuleMessageInInbox. inbox is the
// profile's inbox subject; found lists what the stream holds at the
// sequences HandledSeqs names (in any order): a sequence that found does
// not list is taken as no longer in the stream.
func WithInbox(inbox string, found []StreamMessage) CheckOption {
	return func(c *checkConfig) {
		c.inbox, c.inboxSeen = inbox, true
		c.stream = make(map[uint64]StreamMessage, len(found))
		for _, m := range found {
			c.stream[m.Seq] = m
		}
	}
}

// HandledSeqs returns the inbox sequences that the pl.message events among
// recs name, sorted and each once: the sequences whose stream messages
// WithInbox wants.
func HandledSeqs(recs []ledger.Record) []uint64 {
	var out []uint64
	for _, r := range recs {
		if r.Err != nil || r.Event.Type != ledger.TypeMessage {
			continue
		}
		if n, ok := msgSeq(r.Event); ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

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
// RuleSnapshotEpoch (each snapshot gets at most one), and, with WithInbox,
// RuleMessageInInbox.
//
// The fold is the one a load performs, from the empty document (JSON null):
// a message that is not an event, an event of an epoch older than the
// newest folded one, and an event claiming the epoch of another session are
// passed over (Check reports them); an event that does not apply is
// reported and passed over too, as a load WithSkipBadEvents does, so that
// one bad event does not hide what comes after it; an erasure's tombstone
// (pl.erased) applies to the empty document, whatever came before it. The
// log's last sequence is that of the last record.
//
// CheckProfile is pure: it does no I/O and changes none of its inputs.
func CheckProfile(key string, recs []ledger.Record, snaps []StoredSnapshot, opts ...CheckOption) []Violation {
	var cfg checkConfig
	for _, o := range opts {
		o(&cfg)
	}
	out := Check(key, recs)
	add := func(seq uint64, r Rule, format string, args ...any) {
		out = append(out, Violation{Key: key, Seq: seq, Rule: r, Detail: fmt.Sprintf(format, args...)})
	}
	if cfg.inboxSeen {
		out = append(out, checkInbox(key, recs, cfg)...)
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

// checkInbox returns the RuleMessageInInbox violations of the pl.message
// events a load folds.
func checkInbox(key string, recs []ledger.Record, cfg checkConfig) []Violation {
	var out []Violation
	var f epochFilter
	for _, r := range recs {
		if r.Err != nil || !f.takes(r.Event) || r.Event.Type != ledger.TypeMessage {
			continue
		}
		ev := r.Event
		n, ok := msgSeq(ev)
		if !ok {
			continue // RuleMessageOnce reports it
		}
		id := ev.Meta[ledger.MetaMsgID]
		detail := ""
		m, inStream := cfg.stream[n]
		switch {
		case n >= r.Seq:
			detail = fmt.Sprintf("event %s handles inbox message %d, which is not before it in the stream", ev.ID, n)
		case !inStream:
			// Purged after it was handled, or erased: nothing more to see.
		case m.Subject != cfg.inbox:
			detail = fmt.Sprintf("event %s handles message %d, which is on %s, not this profile's inbox %s", ev.ID, n, m.Subject, cfg.inbox)
		case m.MessageID != id:
			detail = fmt.Sprintf("event %s handles inbox message %d as id %q; the inbox holds it with id %q", ev.ID, n, id, m.MessageID)
		}
		if detail != "" {
			out = append(out, Violation{Key: key, Seq: r.Seq, Rule: RuleMessageInInbox, Detail: detail})
		}
	}
	return out
}

// epochFilter says which events a load folds, as it sees them in log
// order: not one of an epoch older than the newest taken, nor one claiming
// the newest epoch for another session.
type epochFilter struct {
	epoch   uint64 // highest epoch taken
	session string // the session that wrote it
}

// takes reports whether a load folds ev, and takes it if so.
func (f *epochFilter) takes(ev ledger.Event) bool {
	if !f.admits(ev) {
		return false
	}
	f.epoch, f.session = ev.Epoch, ev.Session
	return true
}

func (f *epochFilter) admits(ev ledger.Event) bool {
	return ev.Epoch > f.epoch || ev.Epoch == f.epoch && (f.session == "" || ev.Session == f.session)
}

// fold is a profile's document folded record by record, as a load folds it
// (see CheckProfile).
type fold struct {
	doc any
	epochFilter
}

// take folds r, or passes over it. It returns the projector's error for an
// event that does not apply (and leaves the fold as it was).
func (f *fold) take(r ledger.Record) error {
	if r.Err != nil {
		return nil
	}
	ev := r.Event
	if !f.admits(ev) {
		return nil
	}
	before := f.doc
	if ev.Type == ledger.TypeErased {
		before = nil // an erasure removed everything before its tombstone
	}
	doc, err := projector.Apply(before, ev.Ops)
	if err != nil {
		return err
	}
	f.doc = doc
	f.takes(ev)
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
