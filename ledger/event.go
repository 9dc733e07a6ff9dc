package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// FormatVersion is the version of the event envelope this package writes.
// Readers accept every version up to and including it.
const FormatVersion = 1

// Event types written by profileledger itself. User event types must not use
// the "session." prefix nor the "pl." prefix.
const (
	// TypeSessionStarted is the fence a new session appends before it returns
	// to its caller. Its Ops, if any, reconcile the stored document with the
	// store's template.
	TypeSessionStarted = "session.started"
	// TypeSessionEnded is appended by a session that ends cleanly (End,
	// hand-over, Store.Close). Meta["reason"] says why.
	TypeSessionEnded = "session.ended"
)

// Meta keys written by profileledger.
const (
	MetaReason    = "reason"    // session.ended: "end", "handover", "close"
	MetaNode      = "node"      // session.started: the holder's node name
	MetaPrevious  = "prev"      // session.started: the previous epoch
	MetaReconcile = "reconcile" // session.started: "true" when Ops reconcile the template
	MetaTrade     = "trade"     // a trade's events: the trade id, the same on both sides
	MetaWith      = "with"      // a trade's events: the other profile's key
)

// Types of events profileledger writes for the features above the core.
// They use the "pl." prefix, which callers' event types may not.
const (
	// TypeRollback turns a profile's data into its data as of an earlier
	// version (Meta MetaRollbackTo), for a reason (Meta "reason").
	TypeRollback = "pl.rollback"
	// TypeMigrate is one migration step (Meta MetaMigration, MetaStep).
	TypeMigrate = "pl.migrate"
	// TypeMessage is an inbox message handled, with the change its
	// handler made (Meta MetaMsgSeq, MetaMsgID).
	TypeMessage = "pl.message"
	// TypeUserIDAdded and TypeUserIDRemoved change the profile's user ids
	// (Meta MetaUserID).
	TypeUserIDAdded   = "pl.userid.added"
	TypeUserIDRemoved = "pl.userid.removed"
	// TypeErased is an erasure's tombstone: everything before it was
	// removed, and the profile starts afresh after it.
	TypeErased = "pl.erased"
)

// Meta keys written by the library for those features; callers' metadata
// may not use the "pl." prefix.
const (
	MetaRollbackTo = "pl.to"        // pl.rollback: the version rolled back to
	MetaMigration  = "pl.migration" // pl.migrate: the step's name
	MetaStep       = "pl.step"      // pl.migrate: the step's number, from 1
	MetaMigrated   = "pl.migrated"  // session.started: how many migration steps the profile has had
	MetaMsgSeq     = "pl.msg.seq"   // pl.message: the inbox message's stream sequence
	MetaMsgID      = "pl.msg.id"    // pl.message: the inbox message's id
	MetaUserID     = "pl.userid"    // pl.userid.*: the user id
)

// Limits on callers' metadata (see CheckCallerMeta).
const (
	MaxMetaKeys      = 32
	MaxMetaKeyLen    = 64
	MaxMetaValueLen  = 1024
	MaxMetaTotalSize = 4096
)

// CheckCallerMeta reports whether meta may be attached to events by a
// caller: at most MaxMetaKeys entries of non-empty keys up to MaxMetaKeyLen
// bytes and values up to MaxMetaValueLen bytes (MaxMetaTotalSize in all),
// valid UTF-8, and no key the library writes (node, prev, reconcile, trade,
// with, or the "pl." prefix).
func CheckCallerMeta(meta map[string]string) error {
	if len(meta) > MaxMetaKeys {
		return fmt.Errorf("metadata has %d keys, over the limit of %d", len(meta), MaxMetaKeys)
	}
	total := 0
	for k, v := range meta {
		switch {
		case k == "":
			return fmt.Errorf("metadata has an empty key")
		case len(k) > MaxMetaKeyLen:
			return fmt.Errorf("metadata key %.20q... is %d bytes, over the limit of %d", k, len(k), MaxMetaKeyLen)
		case len(v) > MaxMetaValueLen:
			return fmt.Errorf("metadata %q is %d bytes, over the limit of %d", k, len(v), MaxMetaValueLen)
		case !utf8.ValidString(k) || !utf8.ValidString(v):
			return fmt.Errorf("metadata %q is not valid UTF-8", k)
		case reservedMeta[k] || strings.HasPrefix(k, "pl."):
			return fmt.Errorf("metadata key %q is reserved for profileledger", k)
		}
		total += len(k) + len(v)
	}
	if total > MaxMetaTotalSize {
		return fmt.Errorf("metadata is %d bytes, over the limit of %d", total, MaxMetaTotalSize)
	}
	return nil
}

var reservedMeta = map[string]bool{MetaNode: true, MetaPrevious: true, MetaReconcile: true, MetaTrade: true, MetaWith: true}

// Op is one change inside an event: a JSON-Patch (RFC 6902) operation, or
// "inc", which adds the number in Value to the number at Path.
type Op struct {
	// Op is one of "add", "remove", "replace", "move", "copy", "test", "inc".
	Op string `json:"op"`
	// Path is an RFC 6901 JSON Pointer; "" is the whole document.
	Path string `json:"path"`
	// From is the source pointer of "move" and "copy".
	From string `json:"from,omitempty"`
	// Value is the operand of "add", "replace", "test" and "inc".
	Value json.RawMessage `json:"value,omitempty"`
}

// Event is one committed change of one profile: the unit of audit.
type Event struct {
	// V is the envelope format version (FormatVersion when written).
	V int `json:"v"`
	// ID is unique per event; it is also the message's Nats-Msg-Id.
	ID string `json:"id"`
	// Type is the caller's event type ("quest.completed") or one of the
	// Type* constants.
	Type string `json:"type"`
	// Session is the id of the session that wrote the event.
	Session string `json:"session"`
	// Epoch is the writing session's epoch; it never decreases along a log.
	Epoch uint64 `json:"epoch"`
	// Time is the writer's wall clock, for people; no decision uses it.
	Time time.Time `json:"time"`
	// Ops are the changes, applied in order.
	Ops []Op `json:"ops,omitempty"`
	// Meta holds small annotations (reason, node, trade id, ...).
	Meta map[string]string `json:"meta,omitempty"`

	// Seq is the stream sequence of the event (its version). Set on read
	// and after an append; never encoded.
	Seq uint64 `json:"-"`
	// Stored is the server's timestamp of the message. Set on read.
	Stored time.Time `json:"-"`

	enc []byte // the encoding fixed by Prepare
}

// Prepare encodes the event once and keeps the encoding, which Append then
// sends as it is; it returns the encoded size. The event must not change
// after Prepare.
func (e *Event) Prepare() (int, error) {
	if e.enc != nil {
		return len(e.enc), nil
	}
	if e.V == 0 {
		e.V = FormatVersion
	}
	data, err := appendEvent(make([]byte, 0, e.sizeHint()), e)
	if err != nil {
		return 0, err
	}
	e.enc = data
	return len(data), nil
}

// MaxTypeLen is the longest event type accepted.
const MaxTypeLen = 128

// ValidateUserType reports whether t may be used as a caller's event type.
func ValidateUserType(t string) error {
	switch {
	case t == "":
		return fmt.Errorf("event type is empty")
	case len(t) > MaxTypeLen:
		return fmt.Errorf("event type is %d bytes, over the limit of %d", len(t), MaxTypeLen)
	case strings.HasPrefix(t, "session.") || strings.HasPrefix(t, "pl."):
		return fmt.Errorf("event type %q uses a reserved prefix (session., pl.)", t)
	}
	return nil
}

// Encode returns the event's wire form.
func (e *Event) Encode() ([]byte, error) {
	if e.enc != nil {
		return e.enc, nil
	}
	return appendEvent(make([]byte, 0, e.sizeHint()), e)
}

// EncodeMessage returns the wire form of one message holding events: the
// event itself when there is one, a JSON array of them when several
// mutations were committed together (group commit). A message is the unit
// of the fence; all its events share its sequence.
func EncodeMessage(events []Event) ([]byte, error) {
	if len(events) == 1 {
		return events[0].Encode()
	}
	buf := []byte{'['}
	for i := range events {
		if i > 0 {
			buf = append(buf, ',')
		}
		data, err := events[i].Encode()
		if err != nil {
			return nil, err
		}
		buf = append(buf, data...)
	}
	return append(buf, ']'), nil
}

// DecodeMessage parses a message into its events. It fails on anything that
// is not a well-formed message of known-format events, all of one session
// and epoch, so that a foreign or garbage message is never mistaken for one.
func DecodeMessage(data []byte) ([]Event, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		ev, err := DecodeEvent(data)
		if err != nil {
			return nil, err
		}
		return []Event{ev}, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("not an event envelope: %w", err)
	}
	if len(raws) == 0 {
		return nil, fmt.Errorf("not an event envelope: empty array")
	}
	events := make([]Event, len(raws))
	for i, raw := range raws {
		ev, err := DecodeEvent(raw)
		if err != nil {
			return nil, fmt.Errorf("event %d of %d: %w", i, len(raws), err)
		}
		if i > 0 && (ev.Epoch != events[0].Epoch || ev.Session != events[0].Session) {
			return nil, fmt.Errorf("not an event envelope: events of two sessions in one message")
		}
		events[i] = ev
	}
	return events, nil
}

// decodeJSON decodes one event with encoding/json, refusing unknown
// members and trailing data.
func decodeJSON(data []byte) (Event, error) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, fmt.Errorf("not an event envelope: %w", err)
	}
	if dec.More() {
		return Event{}, fmt.Errorf("not an event envelope: trailing data")
	}
	return e, nil
}

// DecodeEvent parses one event's wire form. It fails on anything that is not
// a well-formed envelope of a known format version, so that a foreign or
// garbage message is never mistaken for an event.
func DecodeEvent(data []byte) (Event, error) {
	e, ok := decodeCanonical(data)
	if !ok {
		var err error
		if e, err = decodeJSON(data); err != nil {
			return Event{}, err
		}
	}
	switch {
	case e.V < 1 || e.V > FormatVersion:
		return Event{}, fmt.Errorf("event format version %d is not supported (want 1..%d)", e.V, FormatVersion)
	case e.ID == "":
		return Event{}, fmt.Errorf("event has no id")
	case e.Type == "":
		return Event{}, fmt.Errorf("event %s has no type", e.ID)
	case e.Epoch == 0:
		return Event{}, fmt.Errorf("event %s has epoch 0", e.ID)
	}
	return e, nil
}
