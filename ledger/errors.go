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

// ErrRewound means an append was rejected because the profile's log ends
// before the version the writer expected to be its last: the stream was
// deleted, purged or restored from an older backup since the writer read
// it. It is a definite rejection (nothing was appended), and the writer's
// view of the profile is not the log's: it must not append again.
var ErrRewound = errors.New("ledger: the log is behind the writer's view (deleted, purged or restored)")

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
// matches ErrFenced, ErrStale or ErrRewound with errors.Is.
type ConflictError struct {
	// Subject is the subject whose fence failed.
	Subject string
	// Expected is the version the writer expected to be the last.
	Expected uint64
	// Last is the subject's last sequence at the time of the check, if known.
	Last uint64
	// Epoch is the highest epoch found after Expected (0 if none).
	Epoch uint64
	// Kind is ErrFenced, ErrStale or ErrRewound.
	Kind error
}

func (e *ConflictError) Error() string {
	switch {
	case errors.Is(e.Kind, ErrFenced):
		return fmt.Sprintf("%v: %s moved from version %d to %d, written by epoch %d", e.Kind, e.Subject, e.Expected, e.Last, e.Epoch)
	case errors.Is(e.Kind, ErrRewound):
		return fmt.Sprintf("%v: %s ends at version %d, the writer expected %d", e.Kind, e.Subject, e.Last, e.Expected)
	}
	return fmt.Sprintf("%v: %s moved from version %d to %d", e.Kind, e.Subject, e.Expected, e.Last)
}

// Unwrap returns the kind (ErrFenced, ErrStale or ErrRewound).
func (e *ConflictError) Unwrap() error { return e.Kind }
