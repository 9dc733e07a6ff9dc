package snapshots

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reads go to the stream leader through the JetStream API
// ($JS.API.STREAM.MSG.GET), not through KeyValue.Get and KeyValue.History:
// on a replicated bucket those are answered by any replica (direct get,
// ordered consumer on a random peer), which may lag the last Save, so a
// Load right after a Save could miss it and Save's compare-and-set would
// spin on a stale revision.

// msgGetRequest is the body of $JS.API.STREAM.MSG.GET.<stream>.
type msgGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
}

type msgGetResponse struct {
	Error   *jetstream.APIError `json:"error,omitempty"`
	Message *storedMsg          `json:"message,omitempty"`
}

type storedMsg struct {
	Subject  string `json:"subject"`
	Sequence uint64 `json:"seq"`
	Header   []byte `json:"hdrs,omitempty"`
	Data     []byte `json:"data,omitempty"`
}

// Headers by which KV marks a deleted or purged key.
const (
	kvOperationHeader = "KV-Operation"
	markerReason      = jetstream.MarkerReasonHeader
)

// isMarker reports whether m is a KV delete or purge marker (or a server
// marker for a removed or expired key) rather than a value.
func (m *storedMsg) isMarker() bool {
	if len(m.Header) == 0 {
		return false
	}
	h, err := nats.DecodeHeadersMsg(m.Header)
	if err != nil {
		return false
	}
	return h.Get(kvOperationHeader) != "" || h.Get(markerReason) != ""
}

// getMsg asks the stream leader for one message; it returns nil, nil if
// there is none.
func (s *KV) getMsg(ctx context.Context, req msgGetRequest) (*storedMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	reply, err := s.nc.RequestWithContext(ctx, s.msgGetSubject, body)
	if err != nil {
		return nil, err
	}
	var resp msgGetResponse
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return nil, fmt.Errorf("bad JetStream response: %w", err)
	}
	if resp.Error != nil {
		if errors.Is(resp.Error, jetstream.ErrMsgNotFound) || resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return nil, nil
		}
		return nil, resp.Error
	}
	if resp.Message == nil {
		return nil, jetstream.ErrInvalidJetStreamResponse
	}
	return resp.Message, nil
}
