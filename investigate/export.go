package investigate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/ledger"
)

// ExportOptions select what Export writes.
type ExportOptions struct {
	// Key exports one profile only ("" : every profile).
	Key string
	// Since skips events the server stored before it.
	Since time.Time
	// AfterSeq resumes an export: only events with a sequence above it.
	// Sequences are the store's stream sequences, shared by all profiles
	// and growing in the order events were stored, so the Seq of the last
	// line written is the cursor to resume from.
	AfterSeq uint64
}

// ExportLine is one line of Export's output: one event of one profile.
// A message on a profile's subject that is not an event is a line with
// Bad set and no Event.
type ExportLine struct {
	Key    string        `json:"key"`
	Seq    uint64        `json:"seq"`
	Index  int           `json:"index,omitempty"`
	Stored time.Time     `json:"stored"`
	Event  *ledger.Event `json:"event,omitempty"`
	Bad    string        `json:"bad,omitempty"`
}

// ExportResult says how far Export came.
type ExportResult struct {
	// Events is how many lines were written, and LastSeq the sequence of
	// the last: the cursor (AfterSeq) to resume from.
	Events  int
	LastSeq uint64
}

// Export writes the store's events as JSON Lines (ExportLine), in the
// order the server stored them, through the last event stored when it
// began. It streams (one ordered consumer, no more than a batch in
// memory). If it stops early (ctx, a write error) the result's LastSeq is
// the cursor to resume from: every line up to it was written.
func Export(ctx context.Context, js jetstream.JetStream, store string, w io.Writer, o ExportOptions) (ExportResult, error) {
	var res ExportResult
	n, err := names.New(store)
	if err != nil {
		return res, err
	}
	filter := n.EventsPrefix() + "*"
	if o.Key != "" {
		tok, err := keys.Encode(o.Key)
		if err != nil {
			return res, err
		}
		filter = n.Events(tok)
	}
	stream, err := js.Stream(ctx, n.Stream)
	if err != nil {
		return res, fmt.Errorf("investigate: store %s: %w", store, err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case o.AfterSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, o.AfterSeq+1
	case !o.Since.IsZero():
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &o.Since
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return res, fmt.Errorf("investigate: export %s: %w", store, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return res, fmt.Errorf("investigate: export %s: %w", store, err)
	}
	if info.NumPending == 0 {
		return res, nil
	}
	sinfo, err := stream.Info(ctx)
	if err != nil {
		return res, fmt.Errorf("investigate: export %s: %w", store, err)
	}
	last := sinfo.State.LastSeq
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	keyJSON := map[string][]byte{} // subject -> the key as a JSON string
	err = consume(ctx, cons, last, func(m jetstream.Msg, meta *jetstream.MsgMetadata) error {
		seq := meta.Sequence.Stream
		if !o.Since.IsZero() && meta.Timestamp.Before(o.Since) {
			return nil
		}
		kj, ok := keyJSON[m.Subject()]
		if !ok {
			tok, _ := n.Token(m.Subject())
			key, _ := keys.Decode(tok)
			kj, _ = json.Marshal(key)
			if len(keyJSON) < 1<<16 {
				keyJSON[m.Subject()] = kj
			}
		}
		// The events are written as they are stored, once DecodeMessage
		// has confirmed that they are events.
		data := m.Data()
		events, derr := ledger.DecodeMessage(data)
		var raws []json.RawMessage
		switch {
		case derr != nil:
			bad, _ := json.Marshal(derr.Error())
			line = appendLine(line[:0], kj, seq, 0, meta.Timestamp, "bad", bad)
			if _, err := bw.Write(line); err != nil {
				return err
			}
			res.Events++
		case len(events) == 1:
			raws = []json.RawMessage{data}
		default:
			if err := json.Unmarshal(data, &raws); err != nil {
				return err
			}
		}
		for i, r := range raws {
			if bytes.ContainsAny(r, "\r\n") { // one line per event
				var c bytes.Buffer
				if err := json.Compact(&c, r); err != nil {
					return err
				}
				r = c.Bytes()
			}
			line = appendLine(line[:0], kj, seq, i, meta.Timestamp, "event", r)
			if _, err := bw.Write(line); err != nil {
				return err
			}
			res.Events++
		}
		res.LastSeq = seq
		return nil
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return res, err
}

// appendLine appends one JSON Lines record of ExportLine's shape.
func appendLine(b, key []byte, seq uint64, index int, stored time.Time, field string, value []byte) []byte {
	b = append(b, `{"key":`...)
	b = append(b, key...)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	if index > 0 {
		b = append(b, `,"index":`...)
		b = strconv.AppendInt(b, int64(index), 10)
	}
	b = append(b, `,"stored":"`...)
	b = stored.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","`...)
	b = append(b, field...)
	b = append(b, `":`...)
	b = append(b, value...)
	return append(b, '}', '\n')
}

// consume calls fn with each message of cons until the one that had none
// pending after it when it was delivered, or the stream's sequence last.
func consume(ctx context.Context, cons jetstream.Consumer, last uint64, fn func(jetstream.Msg, *jetstream.MsgMetadata) error) error {
	for ctx.Err() == nil {
		batch, err := cons.FetchNoWait(1024)
		if err != nil {
			return err
		}
		got, done := 0, false
		var ferr error
		for m := range batch.Messages() {
			got++
			if done || ferr != nil {
				continue // drain the batch, so that its fetch ends
			}
			meta, err := m.Metadata()
			if err != nil {
				ferr = err
				continue
			}
			if err := fn(m, meta); err != nil {
				ferr = err
				continue
			}
			done = meta.NumPending == 0 || meta.Sequence.Stream >= last
		}
		if ferr != nil {
			return ferr
		}
		if done {
			return nil
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return err
		}
		if got == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return ctx.Err()
}
