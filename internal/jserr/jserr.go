// Package jserr is the one place that knows JetStream's numeric error codes.
package jserr

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// Codes JetStream answers with that nats.go names no constant for.
const (
	// AtomicDuplicate: an atomic batch holds a message id already in the
	// stream; the batch is rejected whole, not de-duplicated.
	AtomicDuplicate jetstream.ErrorCode = 10201
)

// Code returns err's JetStream error code, or 0 if err is not an API error.
func Code(err error) jetstream.ErrorCode {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode
	}
	return 0
}

// IsWrongLastSequence reports whether err is JetStream's answer to a failed
// expected-last-sequence check: 10071 on one server (it names the actual
// last sequence), 10164 on a replicated stream (it does not).
func IsWrongLastSequence(err error) bool {
	c := Code(err)
	return c == jetstream.JSErrCodeStreamWrongLastSequence || c == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// IsAtomicDuplicate reports whether err rejected an atomic batch for a
// duplicate message id.
func IsAtomicDuplicate(err error) bool { return Code(err) == AtomicDuplicate }

// IsTooLarge reports whether err rejected a message over the stream's size limit.
func IsTooLarge(err error) bool {
	return Code(err) == jetstream.JSErrCodeStreamMessageExceedsMaximum
}
