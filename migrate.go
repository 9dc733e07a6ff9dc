package profileledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

// Migration is one named step from an older shape of the profile's document
// to a newer one (Lapis's and DocumentService's migrations).
type Migration struct {
	// Name names the step for people and for the log; it must be unique
	// within the store and must not change once the step has run anywhere.
	Name string
	// Up changes doc, the profile's whole JSON document (objects are
	// map[string]any, arrays []any, numbers json.Number), in place. It runs
	// once per profile, on a copy; an error stops the start of the session
	// (nothing is appended). It must be deterministic.
	Up func(doc map[string]any) error
}

// ErrMigratedByNewer is returned by StartSession when the profile's log
// shows more migration steps (or other steps) than this store knows: a
// newer server migrated it. Nothing is appended: an older server never
// un-migrates a profile. Get still reads it, as it is.
var ErrMigratedByNewer = errors.New("profileledger: profile migrated by a newer server")

// WithMigrations sets the store's migration steps, oldest first. When a
// session starts, the steps the profile has not had yet run in order on its
// document, each appended as one event of type "pl.migrate" (Meta
// "pl.migration": its name, "pl.step": its number from 1) in the same
// message as the session's fence, so each step happens exactly once per
// profile, across hand-overs and servers. Get applies missing steps to what
// it returns without recording them. A new profile starts as the template,
// which is the current shape: it is recorded as migrated without running
// any step. Add steps at the end only; never reorder, rename or remove one
// that has run.
func WithMigrations(steps ...Migration) Option {
	return func(c *config) { c.migrations = append(c.migrations, steps...) }
}

func checkMigrations(steps []Migration) error {
	seen := make(map[string]bool, len(steps))
	for i, m := range steps {
		switch {
		case m.Name == "":
			return fmt.Errorf("%w: migration %d has no name", ErrInvalidInput, i+1)
		case m.Up == nil:
			return fmt.Errorf("%w: migration %q has no Up function", ErrInvalidInput, m.Name)
		case seen[m.Name]:
			return fmt.Errorf("%w: two migrations are named %q", ErrInvalidInput, m.Name)
		}
		seen[m.Name] = true
	}
	return nil
}

// checkMigrated reports whether this store may write a profile that has had
// migrated steps, the last named name.
func (st *Store[T]) checkMigrated(key string, migrated int, name string) error {
	steps := st.cfg.migrations
	switch {
	case migrated > len(steps):
		return fmt.Errorf("%w: %q has had %d migration steps (the last %q); this store knows %d", ErrMigratedByNewer, key, migrated, name, len(steps))
	case migrated > 0 && name != "" && steps[migrated-1].Name != name:
		return fmt.Errorf("%w: %q's migration step %d is %q in its log, %q in this store", ErrMigratedByNewer, key, migrated, name, steps[migrated-1].Name)
	}
	return nil
}

// migrationEvents runs the steps doc has not had and returns the migrated
// document and one event per step (without session, epoch or id: the
// caller fills them in).
func (st *Store[T]) migrationEvents(key string, doc any, migrated int) (any, []ledger.Event, error) {
	var events []ledger.Event
	for i := migrated; i < len(st.cfg.migrations); i++ {
		step := st.cfg.migrations[i]
		next, err := runMigration(step, doc)
		if err != nil {
			return nil, nil, fmt.Errorf("profileledger: migrate %q, step %d (%q): %w", key, i+1, step.Name, err)
		}
		events = append(events, ledger.Event{
			Type: ledger.TypeMigrate, Ops: projector.Diff(doc, next),
			Meta: map[string]string{ledger.MetaMigration: step.Name, ledger.MetaStep: strconv.Itoa(i + 1)},
		})
		doc = next
	}
	return doc, events, nil
}

// migrateTo applies, in memory, the steps doc (which has had migrated of
// them) has not had: for reads and rollbacks. A document of a newer
// server's is returned as it is.
func (st *Store[T]) migrateTo(key string, doc any, migrated int) (any, error) {
	if migrated >= len(st.cfg.migrations) {
		return doc, nil
	}
	doc, _, err := st.migrationEvents(key, doc, migrated)
	return doc, err
}

// runMigration runs one step on a private copy of doc.
func runMigration(step Migration, doc any) (next any, err error) {
	raw, err := projector.Encode(doc)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		m = map[string]any{} // a document that is not an object (a new one is null)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("migration panicked: %v", p)
		}
	}()
	if err := step.Up(m); err != nil {
		return nil, err
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("the migrated document does not encode as JSON: %w", err)
	}
	return projector.Decode(out)
}
