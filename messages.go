package profileledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	msgID := "pl.msg." + token + "." + id
	_, _, err = st.ledger.PublishBounded(ctx, st.names.Inbox(token), msgID, hdr, payload, st.cfg.inboxLimit)
	if errors.Is(err, ledger.ErrFull) {
		// The count took in handled messages that their holder could not
		// purge (holder rights): allow room for them, and count again.
		limit, rerr := st.inboxLimitAbove(ctx, key, token)
		if rerr != nil {
			return fmt.Errorf("profileledger: message to %q: %w", key, rerr)
		}
		if limit > st.cfg.inboxLimit {
			_, _, err = st.ledger.PublishBounded(ctx, st.names.Inbox(token), msgID, hdr, payload, limit)
		}
	}
	if errors.Is(err, ledger.ErrFull) {
		return fmt.Errorf("%w: %q: %w", ErrInboxFull, key, err)
	}
	if err != nil {
		return fmt.Errorf("profileledger: message to %q: %w", key, err)
	}
	// The message is stored: wake its holder (best effort; a holder also
	// sees the inbox's own subject, and every session with a handler reads
	// its inbox when the handler is set).
	st.nc.Publish(st.names.Wake(token), nil)
	return nil
}

// inboxLimitAbove returns the inbox limit that counts only the messages
// after the profile's handled watermark: the store's limit plus the handled
// messages still in the inbox. While a holder purges them at the same
// time, the inbox may briefly take up to that many messages more than the
// limit.
func (st *Store[T]) inboxLimitAbove(ctx context.Context, key, token string) (int, error) {
	l, err := st.load(ctx, key, token, 0, time.Time{})
	if err != nil {
		return 0, err
	}
	subject := st.names.Inbox(token)
	all, err := st.ledger.Count(ctx, subject, 0)
	if err != nil {
		return 0, err
	}
	pending, err := st.ledger.Count(ctx, subject, l.ps.inbox)
	if err != nil {
		return 0, err
	}
	return st.cfg.inboxLimit + int(all-min(pending, all)), nil
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
	s.mu.Unlock()
	if fn != nil {
		s.st.watchInboxes()
	}
	s.wake(false)
}

// Delivery costs nothing while nothing happens: no goroutine, timer or
// subscription per session. The store subscribes once to the cues of all
// its profiles (watchInboxes); a cue wakes the session, which runs its
// delivery on a goroutine of the store's until the inbox has nothing more
// for it, and a pause (a refused message, a cue ahead of the stream) is a
// timer that exists only while it is pending.

// wake asks the session to read its inbox; raw says the cue was the inbox
// subject itself (which may run a moment ahead of the stream).
func (s *Session[T]) wake(raw bool) {
	s.mu.Lock()
	if s.handler == nil || s.state != stateActive {
		s.mu.Unlock()
		return
	}
	s.cued = true
	s.rawCue = s.rawCue || raw
	if s.delivering {
		s.mu.Unlock()
		return
	}
	s.delivering = true
	s.mu.Unlock()
	if !s.st.goBackground(s.deliver) {
		s.mu.Lock()
		s.delivering = false
		s.mu.Unlock()
	}
}

// deliver reads and handles the inbox while cues come, then returns.
func (s *Session[T]) deliver() {
	subject := s.st.names.Inbox(s.token)
	for {
		s.mu.Lock()
		if !s.cued || s.handler == nil || s.state != stateActive {
			s.delivering = false
			over := s.state == stateDone || s.state == stateEnding
			s.mu.Unlock()
			if over {
				s.notePending(0)
			}
			return
		}
		s.cued = false
		raw := s.rawCue
		s.rawCue = false
		s.mu.Unlock()
		n, err := s.deliverPending(subject)
		var pause time.Duration
		switch {
		case errors.Is(err, ErrSessionLost), errors.Is(err, ErrSessionEnded):
			s.mu.Lock()
			s.delivering = false
			s.mu.Unlock()
			s.notePending(0)
			return
		case err != nil:
			s.refusals++
			pause = retry.Backoff(s.refusals, 10*time.Millisecond, time.Second)
			s.st.log.Debug("message not handled; will offer it again", logKey, s.key, logErr, err)
		case n == 0 && (raw || s.looks > 0) && s.looks < 8:
			// A cue from the inbox subject, and nothing stored yet.
			s.looks++
			s.refusals, pause = 0, time.Duration(1<<s.looks)*time.Millisecond/2
		default:
			s.refusals, s.looks = 0, 0
		}
		if pause > 0 {
			time.AfterFunc(pause, func() { s.wake(false) })
		}
	}
}

// watchInboxes subscribes, once per store, to the cues of every profile's
// inbox: Store.Message's wake, published once the message is stored; and
// the inbox subjects themselves, which also see messages published by
// other means, but may see one a moment before the stream has stored it.
// A cue for a profile this store does not hold is dropped. (The stream is
// the source; the cues only say when to read it.)
func (st *Store[T]) watchInboxes() {
	st.watchOnce.Do(func() {
		if st.isClosed() {
			return
		}
		cue := func(raw bool) nats.MsgHandler {
			return func(m *nats.Msg) {
				tok, ok := lastToken(m.Subject)
				if !ok {
					return
				}
				st.mu.Lock()
				s := st.sessions[tok]
				st.mu.Unlock()
				if s != nil {
					s.wake(raw)
				}
			}
		}
		for _, w := range []struct {
			subject string
			raw     bool
		}{{st.names.Wake("*"), false}, {st.names.Inbox("*"), true}} {
			sub, err := st.nc.Subscribe(w.subject, cue(w.raw))
			if err != nil {
				st.log.Warn("inbox cues not subscribed; sessions read their inbox when they start and when told", logErr, err)
				continue
			}
			st.keepSub(sub)
		}
		// Known to the server before the first read of an inbox, so that
		// no message between the two goes without its cue.
		st.nc.Flush()
	})
}

// lastToken returns the last token of a subject.
func lastToken(subject string) (string, bool) {
	i := strings.LastIndexByte(subject, '.')
	if i < 0 || i == len(subject)-1 {
		return "", false
	}
	return subject[i+1:], true
}

// deliverPending hands every pending message to the handler, in order,
// stopping at the first that is not handled, then removes the handled ones
// the log holds from the inbox. It returns how many it read.
func (s *Session[T]) deliverPending(subject string) (int, error) {
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
	if through > s.purged && !s.st.purgeDenied.Load() && !s.st.cfg.immutableLog {
		// Best effort: a user with holder rights may not purge (NATS cannot
		// tell a subject's purge from the whole stream's), and then the
		// handled messages stay, below the watermark, where nothing counts
		// or delivers them again.
		pctx, stop := cancelOnDenied(ctx, s.st.nc, []string{"STREAM.PURGE." + s.st.names.Stream})
		err := s.st.ledger.PurgeThrough(pctx, subject, through)
		switch cause := stop(); {
		case cause != nil:
			s.st.purgeDenied.Store(true)
			s.st.log.Info("this connection may not purge: handled messages stay in the inbox", logErr, cause)
		case err != nil:
			s.st.log.Warn("handled messages not removed from the inbox", logKey, s.key, logErr, err)
		default:
			s.purged = through
		}
	}
	return len(msgs), nil
}

// notePending tells the store's metrics how many read messages wait for the
// handler.
func (s *Session[T]) notePending(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.obs.pending.Add(int64(n) - s.pendingSeen)
	s.pendingSeen = int64(n)
}
