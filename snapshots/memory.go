package snapshots

import (
	"bytes"
	"context"
	"sync"
)

// Memory is a Store in process memory, for tests and single-process use. It
// keeps the last History snapshots of each key, like KV, and behaves like it
// in every other way too (the same conformance suite runs on both). Its
// maximum value size is DefaultMaxValueSize.
type Memory struct {
	history int

	mu   sync.Mutex
	rev  uint64              // last revision handed out, over all keys
	vals map[string][]memVal // per key, oldest first, at most history
}

type memVal struct {
	rev  uint64
	data []byte // never modified once stored
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory that keeps the last history snapshots of
// each key; history < 1 means DefaultHistory.
func NewMemory(history int) *Memory {
	if history < 1 {
		history = DefaultHistory
	}
	return &Memory{history: history, vals: make(map[string][]memVal)}
}

// History returns how many snapshots per key m keeps.
func (m *Memory) History() int { return m.history }

// MaxValueSize returns the largest encoded snapshot Save accepts.
func (m *Memory) MaxValueSize() int { return DefaultMaxValueSize }

// Save implements Store. It fails only for an invalid snapshot, a snapshot
// too large (ErrTooLarge) or a done ctx.
func (m *Memory) Save(ctx context.Context, s Snapshot) error {
	data, err := Encode(s)
	if err != nil {
		return err
	}
	if len(data) > m.MaxValueSize() {
		return tooLarge(s, len(data), m.MaxValueSize())
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.load(s.Key, 0); l.Found && l.Snapshot.Version >= s.Version {
		return nil
	}
	m.put(s.Key, data)
	return nil
}

// Load implements Store. It fails only for an invalid key or a done ctx.
func (m *Memory) Load(ctx context.Context, key string, maxVersion uint64) (Loaded, error) {
	if err := checkKey(key); err != nil {
		return Loaded{}, err
	}
	if err := ctx.Err(); err != nil {
		return Loaded{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.load(key, maxVersion), nil
}

// PutRaw stores raw, unchecked, as key's newest snapshot, so that tests and
// repair tools can plant corrupt or foreign data. Normal code uses Save.
func (m *Memory) PutRaw(ctx context.Context, key string, raw []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.put(key, bytes.Clone(raw))
	return nil
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.vals, key)
	return nil
}

// load walks key's values newest first. m.mu is held.
func (m *Memory) load(key string, maxVersion uint64) Loaded {
	var l Loaded
	vals := m.vals[key]
	for i := len(vals) - 1; i >= 0; i-- {
		// Decode a copy: the returned State must not alias stored bytes.
		if l.offer(key, maxVersion, vals[i].rev, bytes.Clone(vals[i].data)) {
			break
		}
	}
	return l
}

// put appends data as key's newest value, dropping the oldest beyond the
// history. m.mu is held.
func (m *Memory) put(key string, data []byte) {
	m.rev++
	vals := append(m.vals[key], memVal{rev: m.rev, data: data})
	if len(vals) > m.history {
		vals = append([]memVal(nil), vals[len(vals)-m.history:]...)
	}
	m.vals[key] = vals
}
