package profileledger

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/profileledger/profileledger/ledger"
)

// profileState is what the fold keeps of a profile beside its document,
// from the library's events: how far it is migrated, which inbox messages
// it has handled, its user ids, when it was created. It is a value: fold
// returns a new one and never changes a slice in place, so states may be
// shared like documents.
type profileState struct {
	migrated  int       // migration steps the profile has had
	migration string    // the last one's name
	inbox     uint64    // stream sequence of the last inbox message handled
	userIDs   []string  // sorted, never changed in place
	created   time.Time // server time of the first event since the profile's last erasure
	updated   time.Time // server time of its last event
	started   time.Time // server time of the last session's fence
}

// foldState returns ps after ev (stored by the server at stored; zero for
// an event not yet read back from the log).
func foldState(ps profileState, ev ledger.Event, stored time.Time) profileState {
	switch ev.Type {
	case ledger.TypeSessionStarted:
		if n, err := strconv.Atoi(ev.Meta[ledger.MetaMigrated]); err == nil && n >= 0 {
			ps.migrated, ps.migration = n, ev.Meta[ledger.MetaMigration]
		}
		ps.started = stored
		if stored.IsZero() {
			ps.started = ev.Time
		}
	case ledger.TypeMigrate:
		if n, err := strconv.Atoi(ev.Meta[ledger.MetaStep]); err == nil && n >= 0 {
			ps.migrated, ps.migration = n, ev.Meta[ledger.MetaMigration]
		}
	case ledger.TypeMessage:
		if n, err := strconv.ParseUint(ev.Meta[ledger.MetaMsgSeq], 10, 64); err == nil && n > ps.inbox {
			ps.inbox = n
		}
	case ledger.TypeUserIDAdded:
		if id := ev.Meta[ledger.MetaUserID]; id != "" && !slices.Contains(ps.userIDs, id) {
			ps.userIDs = append(slices.Clone(ps.userIDs), id)
			slices.Sort(ps.userIDs)
		}
	case ledger.TypeUserIDRemoved:
		if i := slices.Index(ps.userIDs, ev.Meta[ledger.MetaUserID]); i >= 0 {
			ps.userIDs = slices.Delete(slices.Clone(ps.userIDs), i, i+1)
		}
	case ledger.TypeErased:
		// A fresh profile from here on; the inbox's watermark stays (the
		// tombstone carries it: what came before it is purged), so a
		// message handled before the erasure is never handled again.
		inbox := ps.inbox
		if n, err := strconv.ParseUint(ev.Meta[ledger.MetaMsgSeq], 10, 64); err == nil && n > inbox {
			inbox = n
		}
		ps = profileState{inbox: inbox}
	}
	// The server's time once the event is in the log; before that (an
	// event this session just appended), the writer's, for people only.
	t := stored
	if t.IsZero() {
		t = ev.Time
	}
	if ps.created.IsZero() {
		ps.created = t
	}
	ps.updated = t
	return ps
}

// Snapshot meta keys of the profile state.
const (
	snapInbox   = "pl.inbox"
	snapUserIDs = "pl.userids"
	snapCreated = "pl.created"
	snapUpdated = "pl.updated"
	snapStarted = "pl.started"
)

// snapStateVersion marks a snapshot that carries the profile state. A
// snapshot without it was written by a version before the profile state
// existed: it is not used (the load replays), since its state would read
// as empty — no migrations, no handled messages, no user ids.
const (
	snapState        = "pl.state"
	snapStateVersion = "1"
)

// snapshotMeta is what a snapshot keeps of ps.
func (ps profileState) snapshotMeta() map[string]string {
	m := map[string]string{snapState: snapStateVersion}
	if ps.migrated > 0 {
		m[ledger.MetaMigrated], m[ledger.MetaMigration] = strconv.Itoa(ps.migrated), ps.migration
	}
	if ps.inbox > 0 {
		m[snapInbox] = strconv.FormatUint(ps.inbox, 10)
	}
	if len(ps.userIDs) > 0 {
		b, _ := json.Marshal(ps.userIDs)
		m[snapUserIDs] = string(b)
	}
	if !ps.created.IsZero() {
		m[snapCreated] = ps.created.UTC().Format(time.RFC3339Nano)
		m[snapUpdated] = ps.updated.UTC().Format(time.RFC3339Nano)
	}
	if !ps.started.IsZero() {
		m[snapStarted] = ps.started.UTC().Format(time.RFC3339Nano)
	}
	return m
}

// stateFromSnapshot restores what snapshotMeta kept.
func stateFromSnapshot(m map[string]string) profileState {
	var ps profileState
	if n, err := strconv.Atoi(m[ledger.MetaMigrated]); err == nil {
		ps.migrated, ps.migration = n, m[ledger.MetaMigration]
	}
	ps.inbox, _ = strconv.ParseUint(m[snapInbox], 10, 64)
	if s := m[snapUserIDs]; s != "" {
		json.Unmarshal([]byte(s), &ps.userIDs)
	}
	ps.created, _ = time.Parse(time.RFC3339Nano, m[snapCreated])
	ps.updated, _ = time.Parse(time.RFC3339Nano, m[snapUpdated])
	ps.started, _ = time.Parse(time.RFC3339Nano, m[snapStarted])
	return ps
}
