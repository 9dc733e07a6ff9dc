package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/internal/retry"
	"github.com/profileledger/profileledger/ledger"
)

// historyBatch is how many messages one direct-get request for a key's
// snapshot history asks for: more than a bucket can keep
// (snapshots.MaxHistory), so one request reads a key's whole history.
const historyBatch = 128

// Headers by which KV marks a deleted or purged key, and by which the server
// marks a removed or expired one: markers, not snapshots.
const (
	kvOperationHeader = "KV-Operation"
	markerHeader      = jetstream.MarkerReasonHeader
)

// historyReader reads every stored revision of a key of the snapshot
// bucket with batched direct gets on one reply subscription, which it
// replaces after a read that did not end cleanly (a late reply of that read
// must not reach the next). Not safe for concurrent use.
//
// The snapshots package reads from the stream leader instead, because its
// Save must see its own last write. The auditor does not need that: it
// reads a profile's snapshots before its log, so a replica that lags only
// hides snapshots newer than the log it then reads.
type historyReader struct {
	nc  *nats.Conn
	api string // $JS.API.DIRECT.GET.KV_<bucket>
	sub *nats.Subscription
}

// read returns the values stored on subject, oldest first, without the
// delete and purge markers.
func (h *historyReader) read(ctx context.Context, subject string) ([]StoredSnapshot, error) {
	ctx, cancel := retry.WithDefaultTimeout(ctx, ledger.DefaultTimeout)
	defer cancel()
	if h.sub == nil {
		sub, err := h.nc.SubscribeSync(h.nc.NewInbox())
		if err != nil {
			return nil, fmt.Errorf("audit: read snapshots %s: %w", subject, err)
		}
		h.sub = sub
	}
	var out []StoredSnapshot
	next := uint64(1)
	for {
		req, _ := json.Marshal(struct {
			Seq     uint64 `json:"seq"`
			NextFor string `json:"next_by_subj"`
			Batch   int    `json:"batch"`
		}{next, subject, historyBatch})
		if err := h.nc.PublishRequest(h.api, h.sub.Subject, req); err != nil {
			return nil, h.fail(subject, err)
		}
		var last, pending uint64
	batch:
		for {
			m, err := h.sub.NextMsgWithContext(ctx)
			if err != nil {
				return nil, h.fail(subject, err)
			}
			switch m.Header.Get("Status") {
			case "":
			case "404":
				return out, nil // nothing (more) on the subject
			case "204": // end of batch
				pending, _ = strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
				break batch
			default:
				return nil, h.fail(subject, fmt.Errorf("status %s %s", m.Header.Get("Status"), m.Header.Get("Description")))
			}
			seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
			if err != nil {
				return nil, h.fail(subject, fmt.Errorf("direct get reply without a sequence: %w", err))
			}
			last = seq
			if m.Header.Get(kvOperationHeader) != "" || m.Header.Get(markerHeader) != "" {
				continue
			}
			out = append(out, StoredSnapshot{Revision: seq, Data: m.Data})
		}
		if pending == 0 || last == 0 {
			return out, nil
		}
		next = last + 1
	}
}

// fail drops the reply subscription of a read that did not end cleanly and
// returns its error.
func (h *historyReader) fail(subject string, err error) error {
	h.close()
	return fmt.Errorf("audit: read snapshots %s: %w", subject, err)
}

func (h *historyReader) close() {
	if h.sub != nil {
		h.sub.Unsubscribe()
		h.sub = nil
	}
}

// lookupWindow is how many direct gets by sequence are in flight at once.
const lookupWindow = 256

// seqReader looks up messages of a stream by sequence with direct gets,
// lookupWindow of them in flight at once on one reply subscription per
// call, each request with a reply subject of its own so that replies may
// come in any order (on a replicated stream several servers answer).
type seqReader struct {
	nc  *nats.Conn
	api string // $JS.API.DIRECT.GET.<stream>
}

// read returns the messages the stream holds at seqs; a sequence the
// stream does not hold (never did, or no longer: purged, deleted) is left
// out.
func (r *seqReader) read(ctx context.Context, seqs []uint64) ([]StreamMessage, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	ctx, cancel := retry.WithDefaultTimeout(ctx, ledger.DefaultTimeout)
	defer cancel()
	prefix := r.nc.NewInbox()
	sub, err := r.nc.SubscribeSync(prefix + ".*")
	if err != nil {
		return nil, fmt.Errorf("audit: look up messages: %w", err)
	}
	defer sub.Unsubscribe()
	var out []StreamMessage
	sent, answered := 0, 0
	for answered < len(seqs) {
		for ; sent < len(seqs) && sent-answered < lookupWindow; sent++ {
			req, _ := json.Marshal(struct {
				Seq uint64 `json:"seq"`
			}{seqs[sent]})
			if err := r.nc.PublishRequest(r.api, prefix+"."+strconv.Itoa(sent), req); err != nil {
				return nil, fmt.Errorf("audit: look up message %d: %w", seqs[sent], err)
			}
		}
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("audit: look up messages: %d of %d answered: %w", answered, len(seqs), err)
		}
		answered++
		switch m.Header.Get("Status") {
		case "":
		case "404":
			continue // not in the stream
		default:
			return nil, fmt.Errorf("audit: look up messages: status %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("audit: look up messages: direct get reply without a sequence: %w", err)
		}
		out = append(out, StreamMessage{Seq: seq, Subject: m.Header.Get(jetstream.SubjectHeader), MessageID: m.Header.Get(ledger.HeaderMessageID)})
	}
	return out, nil
}
