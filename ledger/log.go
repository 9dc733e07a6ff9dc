package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/jserr"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/internal/retry"
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// attemptTimeout bounds one publish attempt, so that a lost acknowledgement
// is retried (with the same message ids) well before the caller's deadline.
const attemptTimeout = 2 * time.Second

// Log appends to and reads from the per-profile subjects of one stream.
// A Log is safe for concurrent use.
type Log struct {
	js       jetstream.JetStream
	nc       *nats.Conn
	stream   jetstream.Stream
	name     string
	api      string // JetStream API prefix, with its trailing dot
	maxEvent int
	subs     subPool
}

// Close releases the Log's reply subscriptions. The Log must not be used
// after Close.
func (l *Log) Close() { l.subs.close() }

// NewLog returns a Log over st. Events whose encoding is over maxEvent bytes
// are refused with ErrTooLarge before anything is sent.
func NewLog(js jetstream.JetStream, st jetstream.Stream, maxEvent int) *Log {
	return &Log{js: js, nc: js.Conn(), stream: st, name: st.CachedInfo().Config.Name, api: names.APIPrefix(js), maxEvent: maxEvent}
}

// MaxEventSize is the largest encoded event the log accepts.
func (l *Log) MaxEventSize() int { return l.maxEvent }

// Part is the events one atomic append writes to one subject.
type Part struct {
	// Subject is the profile's event subject.
	Subject string
	// Expected is the subject's last message as the writer last folded it
	// (the zero Head: the subject must be empty): the fence, and the link
	// the message's ChainHeader names.
	Expected Head
	// Events are written in order; all carry the writer's epoch.
	Events []Event
}

// Append writes events to subject as one message, fenced on expected, and
// returns the subject's new head: the message's sequence (all its events
// share it) and chain hash. Either all land or none does. The encoded
// message must fit MaxEventSize.
//
// A lost acknowledgement is retried with the same message ids until ctx
// ends; if the retry finds the events already in the log, their sequences
// are returned as if the first acknowledgement had arrived.
//
// Errors: ErrTooLarge (nothing sent), a *ConflictError matching ErrFenced,
// ErrStale or ErrRewound (definite rejections: nothing was appended),
// ErrUncertain (wrapping the context's error) when ctx ended before the
// outcome was known. With a deadline on ctx, Append returns by it; without
// one it takes at most DefaultTimeout and one more read to settle.
func (l *Log) Append(ctx context.Context, subject string, expected Head, events ...Event) (Head, error) {
	heads, err := l.AppendAtomic(ctx, Part{Subject: subject, Expected: expected, Events: events})
	if err != nil {
		return Head{}, err
	}
	return heads[0], nil
}

// AppendAtomic writes each part as one message, all of them in one
// JetStream atomic batch, each fenced on its own subject's expected
// sequence: all land or none does. It returns each part's new head. Errors
// are as for Append; a *ConflictError names the first part whose fence
// failed. (An atomic batch costs milliseconds on file storage, where the
// server stages it in a store of its own; one part is a plain publish.)
func (l *Log) AppendAtomic(ctx context.Context, parts ...Part) ([]Head, error) {
	msgs, err := l.encode(parts)
	if err != nil {
		return nil, err
	}
	seqs, err := l.appendMsgs(ctx, parts, msgs)
	if err != nil {
		return nil, err
	}
	heads := make([]Head, len(parts))
	for i, m := range msgs {
		heads[i] = Head{Seq: seqs[i], Hash: ChainHash(m.Header.Get(ChainHeader), m.Data)}
	}
	return heads, nil
}

// appendMsgs publishes the encoded msgs of parts (retrying, settling a
// lost acknowledgement by reading the log) and returns each part's
// sequence.
func (l *Log) appendMsgs(ctx context.Context, parts []Part, msgs []*nats.Msg) ([]uint64, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	// The first attempt, which is nearly always acknowledged, needs no
	// context of its own; what follows it runs under ctx bounded by the
	// deadline.
	last, err := l.publish(ctx, deadline, msgs)
	if err == nil {
		return spread(parts, last), nil
	}
	if !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	for attempt := 1; ; attempt++ {
		switch {
		case jserr.IsWrongLastSequence(err) || jserr.IsAtomicDuplicate(err):
			seqs, rerr := l.resolve(ctx, parts)
			if !errors.Is(rerr, errNotFound) {
				return seqs, rerr
			}
			// The fence failed, yet nothing is after it: on a replicated
			// stream 10164 also means "another append to this subject is in
			// flight", which may since have failed. Publish again.
		case jserr.IsTooLarge(err):
			return nil, fmt.Errorf("%w: %w", ErrTooLarge, err)
		case jserr.Code(err) != 0:
			return nil, fmt.Errorf("ledger: append to %s: %w", parts[0].Subject, err)
		}
		lastErr := err
		if ctx.Err() != nil {
			return l.lastLook(ctx, ok, parts, lastErr)
		}
		if !retry.Sleep(ctx, retry.Backoff(attempt, 10*time.Millisecond, 500*time.Millisecond)) {
			return l.lastLook(ctx, ok, parts, lastErr)
		}
		// Settle what the previous attempt did before trying again: the
		// log, not the missing ack, says whether it landed.
		seqs, rerr := l.resolve(ctx, parts)
		switch {
		case isTransport(rerr) && !errors.Is(rerr, nats.ErrConnectionClosed) && !errors.Is(rerr, context.Canceled):
			// The log could not be read (a replicated stream electing a
			// leader answers 503, a read timed out): still unknown; look
			// again after the next pause, until the deadline. (A closed
			// connection or a cancelled context will not get better.)
			continue
		case !errors.Is(rerr, errNotFound):
			return seqs, rerr
		}
		// (A retry's own error is not err: err stays the first attempt's,
		// which the switch above judges; the log settles each retry.)
		if last, perr := l.publish(ctx, deadline, msgs); perr == nil {
			return spread(parts, last), nil
		}
	}
}

// lastLook settles an append whose deadline passed: did it land after all?
// It reads the log only when the deadline was the ledger's own default (the
// caller set none): a caller's deadline or cancellation is respected, and
// the outcome is then reported as unknown.
func (l *Log) lastLook(ctx context.Context, callerDeadline bool, parts []Part, lastErr error) ([]uint64, error) {
	if callerDeadline {
		return nil, fmt.Errorf("%w: %w (last error: %v)", ErrUncertain, ctx.Err(), lastErr)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
	defer cancel()
	seqs, err := l.resolve(rctx, parts)
	if err == nil || !errors.Is(err, errNotFound) && !isTransport(err) {
		return seqs, err
	}
	return nil, fmt.Errorf("%w: %w (last error: %v)", ErrUncertain, ctx.Err(), lastErr)
}

// errNotFound is resolve's way of saying "the events are not in the log and
// nothing newer fenced us": the append did not happen and may be retried.
var errNotFound = errors.New("ledger: events not in log")

func isTransport(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, jetstream.ErrNoStreamResponse)
}

// spread hands out the contiguous sequences of a committed batch (one
// message per part) whose last message got sequence last.
func spread(parts []Part, last uint64) []uint64 {
	out := make([]uint64, len(parts))
	for i := range parts {
		out[i] = last - uint64(len(parts)-1-i)
		for j := range parts[i].Events {
			parts[i].Events[j].Seq = out[i]
		}
	}
	return out
}

func (l *Log) encode(parts []Part) ([]*nats.Msg, error) {
	msgs := make([]*nats.Msg, 0, len(parts))
	for _, p := range parts {
		if len(p.Events) == 0 {
			return nil, fmt.Errorf("ledger: append to %s: no events", p.Subject)
		}
		for i := range p.Events {
			if p.Events[i].V == 0 {
				p.Events[i].V = FormatVersion
				p.Events[i].enc = nil
			}
		}
		data, err := EncodeMessage(p.Events)
		if err != nil {
			return nil, fmt.Errorf("ledger: encode events: %w", err)
		}
		if len(data) > l.maxEvent {
			return nil, fmt.Errorf("%w: %d event(s) (first %q) encode to %d bytes, over the limit of %d", ErrTooLarge, len(p.Events), p.Events[0].Type, len(data), l.maxEvent)
		}
		m := nats.NewMsg(p.Subject)
		m.Data = data
		// The message id names exactly this content: a retry of the same
		// message is de-duplicated (or, where the fence check runs first,
		// found by resolve), and no other grouping of its events can be
		// mistaken for it.
		m.Header.Set(jetstream.MsgIDHeader, MessageID(p.Events))
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(p.Expected.Seq, 10))
		m.Header.Set(ChainHeader, p.Expected.String())
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// MessageID is the Nats-Msg-Id of a message holding events, in order: the
// event's id for one event; for several, the first id, the count and a hash
// of every id, so that [e1,e2] and [e1,e2,e3] never share an id. An id
// names one content: a message whose outcome is unknown must be sent again
// byte for byte (the same events, grouped the same way) or settled by
// reading the log.
func MessageID(events []Event) string {
	if len(events) == 1 {
		return events[0].ID
	}
	h := sha256.New()
	for _, ev := range events {
		h.Write([]byte(ev.ID))
		h.Write([]byte{0})
	}
	return fmt.Sprintf("%s+%d.%x", events[0].ID, len(events)-1, h.Sum(nil)[:12])
}

// publish sends msgs (one publish, or one atomic batch) and returns the
// sequence of the last one.
func (l *Log) publish(ctx context.Context, deadline time.Time, msgs []*nats.Msg) (uint64, error) {
	last := msgs[len(msgs)-1]
	if len(msgs) > 1 {
		batch := uuid.NewString()
		for i, m := range msgs {
			m.Header.Set("Nats-Batch-Id", batch)
			m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		}
		last.Header.Set("Nats-Batch-Commit", "1")
		for _, m := range msgs[:len(msgs)-1] {
			if err := l.nc.PublishMsg(m); err != nil {
				return 0, err
			}
		}
	}
	resp, err := l.request(ctx, deadline, last)
	if err != nil {
		return 0, err
	}
	seq, err := parseAck(resp.Data)
	if err != nil {
		return 0, err
	}
	if len(msgs) > 1 {
		// An atomic batch's ack also counts the messages it committed.
		var ack struct {
			Count int `json:"count"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil || ack.Count != len(msgs) {
			return 0, fmt.Errorf("ledger: batch ack %q does not count the %d messages sent", resp.Data, len(msgs))
		}
	}
	return seq, nil
}

// request sends m and waits for the reply, for at most attemptTimeout and
// not past deadline nor ctx. Without a cancellation to watch (ctx.Done() is
// nil, as in Mutate's commits) it waits on nats.go's pooled timer instead of
// making a context per attempt.
func (l *Log) request(ctx context.Context, deadline time.Time, m *nats.Msg) (*nats.Msg, error) {
	timeout := min(attemptTimeout, time.Until(deadline))
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	if ctx.Done() == nil {
		return l.nc.RequestMsg(m, timeout)
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return l.nc.RequestMsgWithContext(ctx, m)
}

// parseAck returns the sequence of a JetStream publish acknowledgement, or
// the error it carries. The usual ack, {"stream":"NAME","seq":N} with maybe
// more fields after seq, is read directly; anything else by encoding/json.
func parseAck(data []byte) (uint64, error) {
	if rest, ok := bytes.CutPrefix(data, []byte(`{"stream":"`)); ok {
		if i := bytes.IndexByte(rest, '"'); i > 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			if rest, ok := bytes.CutPrefix(rest[i+1:], []byte(`,"seq":`)); ok {
				n := 0
				for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
					n++
				}
				if n > 0 && n < len(rest) && (rest[n] == '}' || rest[n] == ',') {
					if seq, err := strconv.ParseUint(string(rest[:n]), 10, 64); err == nil && seq > 0 {
						return seq, nil
					}
				}
			}
		}
	}
	var ack struct {
		Stream string              `json:"stream"`
		Seq    uint64              `json:"seq"`
		Error  *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(data, &ack); err != nil {
		return 0, fmt.Errorf("%w: %q", jetstream.ErrInvalidJSAck, data)
	}
	if ack.Error != nil {
		return 0, ack.Error
	}
	if ack.Stream == "" || ack.Seq == 0 {
		return 0, fmt.Errorf("%w: %q", jetstream.ErrInvalidJSAck, data)
	}
	return ack.Seq, nil
}

// resolve reads each part's subject after its expected sequence to settle
// an append whose fence failed or whose ack was lost: if the events are
// there, it returns their sequences; if a newer epoch wrote, ErrFenced; if
// something else moved the log, ErrStale; if the subject ends before the
// expected sequence, ErrRewound; if nothing moved, errNotFound.
func (l *Log) resolve(ctx context.Context, parts []Part) ([]uint64, error) {
	out := make([]uint64, len(parts))
	missing := false
	for i, p := range parts {
		want := make(map[string]int, len(p.Events))
		for j, ev := range p.Events {
			want[ev.ID] = j
		}
		epoch := p.Events[0].Epoch
		seqs := make([]uint64, len(p.Events))
		found := 0
		var last, newer uint64
		other := false
		err := l.Read(ctx, p.Subject, p.Expected.Seq, 0, func(r Record) error {
			last = r.Seq
			if r.Err != nil {
				other = true
				return nil
			}
			if j, ok := want[r.Event.ID]; ok {
				seqs[j] = r.Seq
				found++
				return nil
			}
			if r.Event.Epoch > epoch {
				newer = max(newer, r.Event.Epoch)
			}
			other = true
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("ledger: read %s to settle an append: %w", p.Subject, err)
		}
		if found > 0 && found < len(p.Events) {
			// Part of this content under another grouping: it never
			// happens while a message id names one content; never fold it
			// as ours.
			other = true
		}
		switch {
		case found == len(p.Events):
			out[i] = seqs[0]
			for j := range p.Events {
				parts[i].Events[j].Seq = seqs[j]
			}
			continue
		case newer > 0:
			return nil, &ConflictError{Subject: p.Subject, Expected: p.Expected.Seq, Last: last, Epoch: newer, Kind: ErrFenced}
		case other:
			return nil, &ConflictError{Subject: p.Subject, Expected: p.Expected.Seq, Last: last, Kind: ErrStale}
		case p.Expected.Seq > 0:
			// Nothing after the fence: is the fence itself in the log? If
			// the subject ends before it, this append can never land.
			end, err := l.LastFromLeader(ctx, p.Subject)
			if err != nil {
				return nil, fmt.Errorf("ledger: read %s to settle an append: %w", p.Subject, err)
			}
			if end < p.Expected.Seq {
				return nil, &ConflictError{Subject: p.Subject, Expected: p.Expected.Seq, Last: end, Kind: ErrRewound}
			}
		}
		missing = true
	}
	if missing {
		return nil, errNotFound
	}
	return out, nil
}
