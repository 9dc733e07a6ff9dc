package profileledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/ledger"
)

// Event is one committed change of a profile, as History returns it: the
// unit of audit.
//
// Events that were group-committed (several mutations of one session that
// arrived together, appended as one message) share a Seq, their message's
// stream sequence, and are told apart by Index, their position in it:
// (Seq, Index) is unique per profile, and so is ID.
type Event struct {
	// Seq is the stream sequence of the event's message: the profile's
	// version after it.
	Seq uint64
	// Index is the event's position within its message (0 unless it was
	// group-committed with others).
	Index int
	// ID is unique per event (and the message id of a single-event message).
	ID string
	// Type is the caller's event type ("quest.completed"), or one of the
	// library's: "session.started", "session.ended", "pl.rollback",
	// "pl.migrate".
	Type string
	// Session is the id of the session that wrote the event.
	Session string
	// Epoch is the writing session's epoch; it never decreases along a log.
	Epoch uint64
	// Time is the writer's wall clock, for people.
	Time time.Time
	// Stored is the NATS server's timestamp of the message.
	Stored time.Time
	// Meta holds the caller's metadata (WithMeta: actor, reason, request
	// id, ...) and the library's (trade id and counterpart, rollback
	// target, session node, ...).
	Meta map[string]string
	// Ops are the changes, applied in order to the profile's JSON document.
	Ops []EventOp
}

// EventOp is one change inside an Event: a JSON-Patch (RFC 6902)
// operation, or "inc", which adds Value to the number at Path.
type EventOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	From  string          `json:"from,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

func publicEvent(ev ledger.Event, index int) Event {
	out := Event{
		Seq: ev.Seq, Index: index, ID: ev.ID, Type: ev.Type, Session: ev.Session, Epoch: ev.Epoch,
		Time: ev.Time, Stored: ev.Stored, Meta: ev.Meta,
	}
	if len(ev.Ops) > 0 {
		out.Ops = make([]EventOp, len(ev.Ops))
		for i, o := range ev.Ops {
			out.Ops[i] = EventOp{Op: o.Op, Path: o.Path, From: o.From, Value: o.Value}
		}
	}
	return out
}

// HistoryOption bounds or filters History.
type HistoryOption func(*historyConfig)

type historyConfig struct {
	from, to     uint64
	since, until time.Time
	types        []string
}

// FromVersion starts History at version v (events with Seq >= v).
func FromVersion(v uint64) HistoryOption { return func(c *historyConfig) { c.from = v } }

// ToVersion ends History at version v (events with Seq <= v).
func ToVersion(v uint64) HistoryOption { return func(c *historyConfig) { c.to = v } }

// Since skips events the server stored before t.
func Since(t time.Time) HistoryOption { return func(c *historyConfig) { c.since = t } }

// Until ends History at the last event the server stored at or before t.
func Until(t time.Time) HistoryOption { return func(c *historyConfig) { c.until = t } }

// OfType keeps only events of the given types.
func OfType(types ...string) HistoryOption {
	return func(c *historyConfig) { c.types = append(c.types, types...) }
}

// History returns the profile's events in log order (ProfileStore's
// VersionQuery, with every change rather than every save). It streams: the
// log is read a batch at a time as the loop asks for more, so memory stays
// flat however long the history; stop the loop to stop reading. It sees
// every event acknowledged before it was called (on a replicated store it
// reads through the stream leader's last sequence).
//
// A message on the profile's subject that is not an event (a foreign or
// garbage message) is yielded as an error matching ErrBadEvent that names
// its sequence, with Event.Seq and Event.Stored set; the loop may go on
// past it. Any other error (ErrInvalidKey, ErrInvalidInput, NATS) is
// yielded once, last.
//
//	for ev, err := range st.History(ctx, "user:42", profileledger.OfType("purchase")) {
//		if err != nil { ... }
//		fmt.Println(ev.Seq, ev.Type, ev.Meta["actor"])
//	}
func (st *Store[T]) History(ctx context.Context, key string, opts ...HistoryOption) iter.Seq2[Event, error] {
	var hc historyConfig
	for _, o := range opts {
		o(&hc)
	}
	return func(yield func(Event, error) bool) {
		token, err := encodeKey(key)
		if err != nil {
			yield(Event{}, err)
			return
		}
		if st.isClosed() {
			yield(Event{}, ErrClosed)
			return
		}
		if hc.to > 0 && hc.from > hc.to {
			yield(Event{}, fmt.Errorf("%w: FromVersion %d is after ToVersion %d", ErrInvalidInput, hc.from, hc.to))
			return
		}
		stopped := false
		err = st.readLog(ctx, st.names.Events(token), max(hc.from, 1)-1, hc.to, func(r ledger.Record) error {
			if !hc.until.IsZero() && r.Stored.After(hc.until) {
				return errStopRead
			}
			if r.Stored.Before(hc.since) {
				return nil
			}
			var ok bool
			if r.Err != nil {
				ok = yield(Event{Seq: r.Seq, Stored: r.Stored}, fmt.Errorf("%w: profile %q, sequence %d is not an event: %w", ErrBadEvent, key, r.Seq, r.Err))
			} else {
				if len(hc.types) > 0 && !slices.Contains(hc.types, r.Event.Type) {
					return nil
				}
				ok = yield(publicEvent(r.Event, r.Index), nil)
			}
			if !ok {
				stopped = true
				return errStopRead
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStopRead) && !stopped {
			yield(Event{}, fmt.Errorf("profileledger: history of %q: %w", key, err))
		}
	}
}

// readLog reads a subject after sequence after and up to upTo (0: the end),
// seeing every acknowledged message: on a replicated store, through the
// last sequence the stream's leader knows.
func (st *Store[T]) readLog(ctx context.Context, subject string, after, upTo uint64, fn func(ledger.Record) error) error {
	if st.cfg.replicas <= 1 {
		return st.ledger.Read(ctx, subject, after, upTo, fn)
	}
	last, err := st.ledger.LastFromLeader(ctx, subject)
	if err != nil {
		return err
	}
	through := upTo
	if upTo == 0 || last < upTo {
		through = last
	}
	if through <= after {
		return nil
	}
	return st.ledger.ReadThrough(ctx, subject, after, through, fn)
}

// Keys returns every profile key of the store that has at least one event,
// streamed a page of the server's answers at a time (sorted within a
// page). Stop the loop to stop listing. An error (NATS, or a subject that
// is not a valid key encoding) is yielded once, last.
func (st *Store[T]) Keys(ctx context.Context) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if st.isClosed() {
			yield("", ErrClosed)
			return
		}
		stopped := false
		err := st.ledger.Subjects(ctx, st.names.EventsPrefix()+"*", func(subject string) error {
			token, _ := st.names.Token(subject)
			key, err := keys.Decode(token)
			if err != nil {
				return fmt.Errorf("profileledger: subject %s is not a profile's: %w", subject, err)
			}
			if !yield(key, nil) {
				stopped = true
				return errStopRead
			}
			return nil
		})
		if err != nil && !stopped {
			yield("", fmt.Errorf("profileledger: keys of %s: %w", st.names.Store, err))
		}
	}
}
