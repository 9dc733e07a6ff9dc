package profileledger

import (
	"context"
	"encoding/json"
	"fmt"
)

// View is a profile as read by Get: its data at a version, without a lease.
type View[T any] struct {
	// Key is the profile's key.
	Key string
	// Version is the sequence of the last event folded (0: no events).
	Version uint64
	// Epoch is the epoch of the last session that wrote up to Version.
	Epoch uint64
	// Exists is false if the profile has no events, or none since an
	// erasure (Data is the template).
	Exists bool
	// Data is the profile's data, decoded over a copy of the template.
	Data T
	// Report says how the data was rebuilt.
	Report LoadReport
}

// Get reads a profile without taking its lease: from the newest snapshot
// and the events after it, or, with AtVersion or AtTime, as it was then.
// Migration steps (WithMigrations) the profile has not had yet are applied
// to what it returns, not recorded. It
// sees every mutation acknowledged before it was called (on a replicated
// store it asks the stream's leader how far to read, since any replica may
// answer the reads themselves); a live session's later mutations are not in
// it.
//
// Errors: ErrInvalidKey, ErrBadEvent, ErrClosed, or NATS errors.
func (st *Store[T]) Get(ctx context.Context, key string, opts ...ReadOption) (View[T], error) {
	var rc readConfig
	for _, o := range opts {
		o(&rc)
	}
	token, err := encodeKey(key)
	if err != nil {
		return View[T]{}, err
	}
	if st.isClosed() {
		return View[T]{}, ErrClosed
	}
	if !rc.at.IsZero() && rc.version > 0 {
		return View[T]{}, fmt.Errorf("%w: AtVersion and AtTime together", ErrInvalidInput)
	}
	l, err := st.load(ctx, key, token, rc.version, rc.at)
	if err != nil {
		return View[T]{}, err
	}
	v := View[T]{Key: key, Version: l.version, Epoch: l.epoch, Exists: l.doc != nil, Report: l.report}
	if v.Data, err = st.dataOf(key, l.doc, l.ps.migrated); err != nil {
		return View[T]{}, err
	}
	return v, nil
}

// dataOf is the typed data of a folded document, as a read returns it: the
// template for none, else with the migration steps it has not had (of
// migrated) applied in memory and decoded over the template (reconcile).
func (st *Store[T]) dataOf(key string, doc any, migrated int) (T, error) {
	var data T
	if err := json.Unmarshal(st.template, &data); err != nil {
		return data, fmt.Errorf("profileledger: decode template: %w", err)
	}
	if doc == nil {
		return data, nil
	}
	doc, err := st.migrateTo(key, doc, migrated)
	if err != nil {
		return data, err
	}
	if data, _, _, _, err = st.reconcile(doc); err != nil {
		return data, fmt.Errorf("profileledger: profile %q: %w", key, err)
	}
	return data, nil
}
