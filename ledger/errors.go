package ledger

import (
	"errors"
	"fmt"
)

// ErrFenced means an append was rejected because a newer session (a higher
// epoch) has appended to the profile since the writer last read it. The
// writer's session is over; it must not retry.
var ErrFenced = errors.New("ledger: fenced by a newer session")

// ErrStale means an append was rejected because the profile's log moved on
// since the writer last read it, but not by a newer session (for example a
// foreign message on the subject). The writer should read the tail and decide.
var ErrStale = errors.New("ledger: stale view of the log")

// ErrTooLarge means an event's encoded size is over the log's limit. Nothing
// was appended.
var ErrTooLarge = errors.New("ledger: event too large")

// ErrUncertain means the outcome of an append is unknown: no acknowledgement
// arrived and reading the log could not settle it either. The caller must
// read the log before deciding anything.
var ErrUncertain = errors.New("ledger: append outcome unknown")

// ErrStreamConfig means an existing stream's configuration does not fit.
var ErrStreamConfig = errors.New("ledger: incompatible stream configuration")

// ConflictError is returned when the log's fence rejected an append. It
// matches ErrFenced or ErrStale with errors.Is.
type ConflictError struct {
	// Subject is the subject whose fence failed.
	Subject string
	// Expected is the version the writer expected to be the last.
	Expected uint64
	// Last is the subject's last sequence at the time of the check, if known.
	Last uint64
	// Epoch is the highest epoch found after Expected (0 if none).
	Epoch uint64
	// Kind is ErrFenced or ErrStale.
	Kind error
}

func (e *ConflictError) Error() string {
	if errors.Is(e.Kind, ErrFenced) {
		return fmt.Sprintf("%v: %s moved from version %d to %d, written by epoch %d", e.Kind, e.Subject, e.Expected, e.Last, e.Epoch)
	}
	return fmt.Sprintf("%v: %s moved from version %d to %d", e.Kind, e.Subject, e.Expected, e.Last)
}

// Unwrap returns the kind (ErrFenced or ErrStale).
func (e *ConflictError) Unwrap() error { return e.Kind }
