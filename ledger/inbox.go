package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/jserr"
	"github.com/profileledger/profileledger/internal/retry"
)

// ErrFull means a bounded subject (a profile's inbox) holds as many
// messages as it may. Nothing was appended.
var ErrFull = errors.New("ledger: subject full")

// Count returns how many messages subject holds after sequence after: one
// batched direct get of one message, whose reply says how many follow it.
func (l *Log) Count(ctx context.Context, subject string, after uint64) (uint64, error) {
	ctx, cancel := retry.WithDefaultTimeout(ctx, DefaultTimeout)
	defer cancel()
	inbox := l.nc.NewInbox()
	sub, err := l.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, fmt.Errorf("ledger: count %s: %w", subject, err)
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
		Batch   int    `json:"batch"`
	}{after + 1, subject, 1})
	if err := l.nc.PublishRequest(l.api+"DIRECT.GET."+l.name, inbox, req); err != nil {
		return 0, fmt.Errorf("ledger: count %s: %w", subject, err)
	}
	m, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return 0, fmt.Errorf("ledger: count %s: %w", subject, err)
	}
	switch m.Header.Get("Status") {
	case "404":
		return 0, nil
	case "":
		pending, err := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("ledger: count %s: no pending count in the reply", subject)
		}
		return pending + 1, nil
	}
	return 0, fmt.Errorf("ledger: count %s: status %s %s", subject, m.Header.Get("Status"), m.Header.Get("Description"))
}

// Inbox message headers.
const (
	HeaderMessageID = "Pl-Message-Id"   // the sender's id of the message
	HeaderMeta      = "Pl-Message-Meta" // the sender's metadata, JSON
)

// PublishBounded appends data to subject unless subject already holds
// limit messages, with msgID as Nats-Msg-Id (a retry with the same id
// within the stream's duplicate window is de-duplicated, and reports
// duplicate). The count and the append are one compare-and-set: the append
// expects the subject's last sequence seen when counting, and a race with
// another sender counts again. Errors: ErrFull; NATS errors when ctx ends.
func (l *Log) PublishBounded(ctx context.Context, subject, msgID string, hdr nats.Header, data []byte, limit int) (seq uint64, duplicate bool, err error) {
	ctx, cancel := retry.WithDefaultTimeout(ctx, DefaultTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		last, err := l.LastFromLeader(ctx, subject)
		if err != nil {
			return 0, false, err
		}
		var n uint64
		if last > 0 {
			if n, err = l.Count(ctx, subject, 0); err != nil {
				return 0, false, err
			}
		}
		if n >= uint64(limit) {
			return 0, false, fmt.Errorf("%w: %s holds %d messages, the limit", ErrFull, subject, n)
		}
		m := nats.NewMsg(subject)
		for k, v := range hdr {
			m.Header[k] = v
		}
		m.Header.Set(jetstream.MsgIDHeader, msgID)
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last, 10))
		m.Data = data
		ack, err := l.js.PublishMsg(ctx, m)
		switch {
		case err == nil:
			return ack.Sequence, ack.Duplicate, nil
		case jserr.IsWrongLastSequence(err):
			// Another sender (or our own retry that landed) got in first:
			// count again; a landed retry is then a duplicate.
		case jserr.Code(err) != 0 || ctx.Err() != nil:
			return 0, false, fmt.Errorf("ledger: append to %s: %w", subject, err)
		}
		if attempt == 0 {
			continue // the first race (a holder purging what it handled) is worth an immediate look
		}
		if !retry.Sleep(ctx, retry.Backoff(attempt, time.Millisecond, 100*time.Millisecond)) {
			return 0, false, fmt.Errorf("ledger: append to %s: %w (last error: %v)", subject, ctx.Err(), err)
		}
	}
}

// Immutable reports whether the stream denies delete or purge, as the
// server says now (an administrator may have changed it since the Log
// was made).
func (l *Log) Immutable(ctx context.Context) (bool, error) {
	ctx, cancel := retry.WithDefaultTimeout(ctx, DefaultTimeout)
	defer cancel()
	info, err := l.stream.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("ledger: stream %s: %w", l.name, err)
	}
	return info.Config.DenyDelete || info.Config.DenyPurge, nil
}

// PurgeThrough removes subject's messages up to and including sequence
// through.
func (l *Log) PurgeThrough(ctx context.Context, subject string, through uint64) error {
	ctx, cancel := retry.WithDefaultTimeout(ctx, DefaultTimeout)
	defer cancel()
	if err := l.stream.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(through+1)); err != nil {
		return fmt.Errorf("ledger: purge %s through %d: %w", subject, through, err)
	}
	return nil
}

// PurgeSubject removes every message of subject but the last keep.
func (l *Log) PurgeSubject(ctx context.Context, subject string, keep uint64) error {
	ctx, cancel := retry.WithDefaultTimeout(ctx, DefaultTimeout)
	defer cancel()
	opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSubject(subject)}
	if keep > 0 {
		opts = append(opts, jetstream.WithPurgeKeep(keep))
	}
	if err := l.stream.Purge(ctx, opts...); err != nil {
		return fmt.Errorf("ledger: purge %s: %w", subject, err)
	}
	return nil
}
