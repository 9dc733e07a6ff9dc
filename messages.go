package profileledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/profileledger/profileledger/internal/retry"
	"github.com/profileledger/profileledger/ledger"
)

// Message is a message sent to a profile with Store.Message, as its
// handler gets it (ProfileStore's MessageAsync messages, ProfileService's
// global updates).
type Message struct {
	// ID is the sender's idempotency key (MessageID), or one the store
	// made up if the sender gave none.
	ID string
	// Seq is the message's stream sequence in the profile's inbox: the
	// inbox's order.
	Seq uint64
	// Time is the NATS server's timestamp of the message.
	Time time.Time
	// Payload is what the sender sent, byte for byte.
	Payload []byte
	// Meta is the sender's metadata (WithMeta on Message's context).
	Meta map[string]string
}

// MessageOption configures Store.Message.
type MessageOption func(*messageConfig)

type messageConfig struct{ id string }

// MessageID gives a message the sender's idempotency key: a second message
// with the same id to the same profile, sent within the stream's duplicate
// window (two minutes), is a no-op, so a sender may retry a Message whose
// outcome it does not know. After the window the id is not remembered.
// An id is 1 to 128 bytes of UTF-8.
func MessageID(id string) MessageOption { return func(c *messageConfig) { c.id = id } }

// ErrInboxFull is returned by Store.Message when the profile's inbox holds
// its limit of messages (WithInboxLimit, default 1000, as ProfileStore's).
// Nothing was appended.
var ErrInboxFull = errors.New("profileledger: inbox full")

// MaxMessageIDLen is the longest MessageID accepted.
const MaxMessageIDLen = 128

// Message appends payload to the inbox of the profile key (ProfileStore's
// MessageAsync). It needs no session and works whether anybody holds the
// profile or not, from any process: the profile's holder gets it within
// milliseconds if it handles messages (Session.HandleMessages), and
// otherwise the next session that does. The caller's metadata (WithMeta)
// travels with the message and is recorded with its handling.
//
// Message returns once the message is stored. Errors: ErrInvalidKey,
// ErrInvalidInput (a bad id, metadata, or a payload over the store's event
// size limit), ErrInboxFull, ErrClosed, or NATS errors (then the outcome is
// unknown: send again with the same MessageID).
func (st *Store[T]) Message(ctx context.Context, key string, payload []byte, opts ...MessageOption) error {
	var mc messageConfig
	for _, o := range opts {
		o(&mc)
	}
	token, err := encodeKey(key)
	if err != nil {
		return err
	}
	switch {
	case st.isClosed():
		return ErrClosed
	case len(payload) > st.cfg.maxEventSize:
		return fmt.Errorf("%w: message to %q is %d bytes, over the limit of %d", ErrInvalidInput, key, len(payload), st.cfg.maxEventSize)
	case len(mc.id) > MaxMessageIDLen || !utf8.ValidString(mc.id):
		return fmt.Errorf("%w: message id must be 1 to %d bytes of UTF-8", ErrInvalidInput, MaxMessageIDLen)
	}
	meta, err := callerMeta(ctx, 0)
	if err != nil {
		return err
	}
	id := mc.id
	if id == "" {
		id = uuid.NewString()
	}
	hdr := nats.Header{}
	hdr.Set(ledger.HeaderMessageID, id)
	if len(meta) > 0 {
		raw, _ := json.Marshal(meta)
		hdr.Set(ledger.HeaderMeta, string(raw))
	}
	// The duplicate window is the stream's, shared by all profiles: the
	// profile's token keeps two profiles' ids apart.
	_, _, err = st.ledger.PublishBounded(ctx, st.names.Inbox(token), "pl.msg."+token+"."+id, hdr, payload, st.cfg.inboxLimit)
	if errors.Is(err, ledger.ErrFull) {
		return fmt.Errorf("%w: %q: %w", ErrInboxFull, key, err)
	}
	if err != nil {
		return fmt.Errorf("profileledger: message to %q: %w", key, err)
	}
	// The message is stored: wake its holder (best effort; a holder also
	// sees the inbox's own subject, and every session reads its inbox at
	// the start).
	st.nc.Publish(st.names.Wake(token), nil)
	return nil
}

// HandleMessages sets the session's message handler (ProfileStore's
// MessageHandler) and starts delivering: the messages pending in the
// profile's inbox, then new ones as they arrive, one at a time, in inbox
// order. fn gets a copy of the data, as Mutate's function does; when it
// returns nil, its change and the fact that m was handled are appended as
// one event (type "pl.message", Meta "pl.msg.seq" and "pl.msg.id", and the
// sender's metadata), fenced and validated like a mutation. So a message is
// handled exactly once in the log: never lost, never twice, across
// hand-overs, steals, crashes, lost acknowledgements and servers racing.
//
// When fn returns an error (or panics, or the change fails validation),
// nothing is appended and the message stays pending; later messages wait
// behind it. It is offered again when a new message arrives, after a
// growing pause of up to a second, and to the next session. Handled
// messages are removed from the inbox once their events are in the log.
//
// fn must not call this session's Mutate, Apply, Trade or End (that would
// wait for itself). Calling HandleMessages again replaces fn; nil stops
// delivery until it is set again. Delivery ends with the session.
func (s *Session[T]) HandleMessages(fn func(p *T, m Message) error) {
	s.mu.Lock()
	s.handler = fn
	start := fn != nil && !s.delivering && s.state == stateActive
	if start {
		s.delivering = true
		s.wakeCh = make(chan struct{}, 1)
	}
	s.mu.Unlock()
	if start && !s.st.goBackground(s.deliver) {
		return
	}
	s.wake()
}

// wake asks the delivery loop to look at the inbox.
func (s *Session[T]) wake() {
	s.mu.Lock()
	ch := s.wakeCh
	s.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// deliver is the session's delivery loop; see HandleMessages.
func (s *Session[T]) deliver() {
	subject := s.st.names.Inbox(s.token)
	// Two cues to read the inbox (the stream is the source, not they):
	// Store.Message's wake, published once the message is stored; and the
	// inbox subject itself, which also sees messages published by other
	// means, but may see one a moment before the stream has stored it — so
	// a read after such a cue that finds nothing looks again, briefly.
	var raw atomic.Bool
	if sub, err := s.st.nc.Subscribe(s.st.names.Wake(s.token), func(*nats.Msg) { s.wake() }); err == nil {
		defer sub.Unsubscribe()
	}
	if sub, err := s.st.nc.Subscribe(subject, func(*nats.Msg) { raw.Store(true); s.wake() }); err == nil {
		defer sub.Unsubscribe()
	}
	var purged uint64
	defer s.notePending(0)
	pause, looks := time.Duration(0), 0
	for attempt := 0; ; attempt++ {
		cued := raw.Swap(false)
		n, err := s.deliverPending(subject, &purged)
		switch {
		case errors.Is(err, ErrSessionLost), errors.Is(err, ErrSessionEnded):
			return
		case err != nil:
			pause = retry.Backoff(attempt+1, 10*time.Millisecond, time.Second)
			s.st.log.Debug("message not handled; will offer it again", logKey, s.key, logErr, err)
		case n == 0 && (cued || looks > 0) && looks < 8:
			// A cue from the inbox subject, and nothing stored yet.
			looks++
			attempt, pause = 0, time.Duration(1<<looks)*time.Millisecond/2
		default:
			attempt, pause, looks = 0, 0, 0
		}
		var retryC <-chan time.Time
		var timer *time.Timer
		if pause > 0 {
			timer = time.NewTimer(pause)
			retryC = timer.C
		}
		select {
		case <-s.done:
		case <-s.st.ctx.Done():
		case <-s.wakeCh:
		case <-retryC:
		}
		if timer != nil {
			timer.Stop()
		}
		if s.st.ctx.Err() != nil {
			return
		}
		select {
		case <-s.done:
			return
		default:
		}
	}
}

// deliverPending hands every pending message to the handler, in order,
// stopping at the first that is not handled, then removes the handled ones
// the log holds from the inbox. It returns how many it read.
func (s *Session[T]) deliverPending(subject string, purged *uint64) (int, error) {
	s.mu.Lock()
	after, handler, state := s.ps.inbox, s.handler, s.state
	s.mu.Unlock()
	switch {
	case state == stateDone:
		return 0, s.Err()
	case state != stateActive:
		return 0, ErrSessionEnded
	case handler == nil:
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(s.st.ctx, ledger.DefaultTimeout)
	defer cancel()
	var msgs []Message
	err := s.st.ledger.ReadRaw(ctx, subject, after, 0, func(m ledger.RawMessage) error {
		msg := Message{ID: m.Header.Get(ledger.HeaderMessageID), Seq: m.Seq, Time: m.Stored, Payload: m.Data}
		if raw := m.Header.Get(ledger.HeaderMeta); raw != "" {
			json.Unmarshal([]byte(raw), &msg.Meta)
		}
		msgs = append(msgs, msg)
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.notePending(len(msgs))
	for i, m := range msgs {
		meta := make(map[string]string, len(m.Meta)+2)
		for k, v := range m.Meta {
			meta[k] = v
		}
		if ledger.CheckCallerMeta(meta) != nil {
			meta = make(map[string]string, 2) // a sender that bypassed Message: keep only what is safe
		}
		meta[ledger.MetaMsgSeq], meta[ledger.MetaMsgID] = strconv.FormatUint(m.Seq, 10), m.ID
		err := s.submit(ctx, &request[T]{
			ctx: ctx, typ: ledger.TypeMessage, lib: true, always: true, msgSeq: m.Seq, meta: meta,
			fn: func(p *T) error { return handler(p, m) },
		})
		if err != nil {
			return 0, fmt.Errorf("profileledger: message %d (%s) to %q: %w", m.Seq, m.ID, s.key, err)
		}
		s.notePending(len(msgs) - i - 1)
		s.st.obs.handled.Add(1)
	}
	s.mu.Lock()
	through := s.logPS.inbox
	s.mu.Unlock()
	if through > *purged && !s.st.cfg.immutableLog {
		if err := s.st.ledger.PurgeThrough(ctx, subject, through); err != nil {
			s.st.log.Warn("handled messages not removed from the inbox", logKey, s.key, logErr, err)
		} else {
			*purged = through
		}
	}
	return len(msgs), nil
}

// notePending tells the store's metrics how many read messages wait for the
// handler; only the delivery loop calls it.
func (s *Session[T]) notePending(n int) {
	s.st.obs.pending.Add(int64(n) - s.pendingSeen)
	s.pendingSeen = int64(n)
}
