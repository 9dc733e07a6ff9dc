package investigate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

// Source is what investigate reads: a *profileledger.Store of any type
// satisfies it (History and Keys). Wrap a store with FromStore to let the
// scans read current data through its snapshots (faster than a replay).
type Source interface {
	History(ctx context.Context, key string, opts ...profileledger.HistoryOption) iter.Seq2[profileledger.Event, error]
	Keys(ctx context.Context) iter.Seq2[string, error]
}

// currenter is a Source that reads a profile's current document directly.
type currenter interface {
	current(ctx context.Context, key string) (doc any, version uint64, err error)
}

// FromStore returns st as a Source whose scans of current data (Dupes)
// read through Store.Get, from the newest snapshot, instead of replaying
// every profile's whole log.
func FromStore[T any](st *profileledger.Store[T]) Source { return storeSource[T]{st} }

type storeSource[T any] struct{ *profileledger.Store[T] }

var _ UserIndex = storeSource[int]{}

func (s storeSource[T]) current(ctx context.Context, key string) (any, uint64, error) {
	v, err := s.Get(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	if !v.Exists {
		return nil, v.Version, nil
	}
	data, err := json.Marshal(v.Data)
	if err != nil {
		return nil, 0, fmt.Errorf("investigate: encode %q: %w", key, err)
	}
	doc, err := projector.Decode(data)
	return doc, v.Version, err
}

// Step is one event of a replay, with the profile's document before and
// after it. Before and After share structure: treat them as read-only.
type Step struct {
	Event  profileledger.Event
	Before any
	After  any
	// Skipped says why the event was not folded (a message that is not an
	// event, an event behind a newer epoch's fence or of another session's
	// epoch, ops that do not apply); After is then Before.
	Skipped error
	// Suspect says why a folded event is not what profileledger writes:
	// an event of a session after that session's "session.ended" (a
	// forger reusing a finished session's fence, or a buggy client).
	Suspect string
}

// Replay folds the profile's log from its start, as Store.Get does, and
// calls fn with each event (up to ToVersion/Until if given; other
// HistoryOptions that would skip events are not allowed, since a fold
// needs every event). fn's error stops the replay and is returned.
func Replay(ctx context.Context, src Source, key string, fn func(Step) error, opts ...profileledger.HistoryOption) error {
	var (
		doc     any
		epoch   uint64
		session string
		ended   bool // session wrote its session.ended
	)
	for ev, err := range src.History(ctx, key, opts...) {
		if err != nil {
			if errors.Is(err, profileledger.ErrBadEvent) {
				if err := fn(Step{Event: ev, Before: doc, After: doc, Skipped: err}); err != nil {
					return err
				}
				continue
			}
			return err
		}
		st := Step{Event: ev, Before: doc, After: doc}
		switch {
		case ev.Epoch < epoch:
			st.Skipped = fmt.Errorf("event %s has epoch %d after epoch %d began", ev.ID, ev.Epoch, epoch)
		case ev.Epoch == epoch && session != "" && ev.Session != session:
			st.Skipped = fmt.Errorf("event %s claims epoch %d of session %s, which belongs to %s", ev.ID, ev.Epoch, ev.Session, session)
		default:
			before := doc
			if ev.Type == ledger.TypeErased {
				before = nil
			}
			after, err := projector.Apply(before, toLedgerOps(ev.Ops))
			if err != nil {
				st.Skipped = err
				break
			}
			st.Before, st.After = before, after
			if ev.Session != session {
				ended = false
			}
			if ended {
				st.Suspect = fmt.Sprintf("written in session %s after it ended", ev.Session)
			}
			ended = ended || ev.Type == ledger.TypeSessionEnded
			doc, epoch, session = after, ev.Epoch, ev.Session
		}
		if err := fn(st); err != nil {
			return err
		}
	}
	return nil
}

func toLedgerOps(ops []profileledger.EventOp) []ledger.Op {
	out := make([]ledger.Op, len(ops))
	for i, o := range ops {
		out[i] = ledger.Op{Op: o.Op, Path: o.Path, From: o.From, Value: o.Value}
	}
	return out
}

// sortedKeys lists every key of src, sorted.
func sortedKeys(ctx context.Context, src Source) ([]string, error) {
	var keys []string
	for k, err := range src.Keys(ctx) {
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// Progress is how far a scan over many profiles has come.
type Progress struct {
	// Phase names what is being done ("scan", "trace").
	Phase string
	// Done of Total profiles.
	Done, Total int
}

// ScanOption configures Trace and Dupes.
type ScanOption func(*scanConfig)

type scanConfig struct {
	progress func(Progress)
}

// WithProgress calls fn after each profile a scan reads (fn must be quick).
func WithProgress(fn func(Progress)) ScanOption { return func(c *scanConfig) { c.progress = fn } }

func newScanConfig(opts []ScanOption) scanConfig {
	var c scanConfig
	for _, o := range opts {
		o(&c)
	}
	if c.progress == nil {
		c.progress = func(Progress) {}
	}
	return c
}

// raw encodes a document value as JSON (nil for an absent value).
func raw(v any, ok bool) json.RawMessage {
	if !ok {
		return nil
	}
	data, err := projector.Encode(v)
	if err != nil {
		return json.RawMessage(`"?"`)
	}
	return data
}

// lookup returns the value at ptr in doc, and whether there is one.
func lookup(doc any, ptr string) (any, bool) {
	if doc == nil {
		return nil, false
	}
	v, err := projector.Get(doc, ptr)
	if err != nil {
		return nil, false
	}
	return v, true
}
