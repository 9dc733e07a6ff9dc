package pltest

import (
	"context"
	"errors"

	"github.com/profileledger/profileledger"
)

// Outcome is what an error returned by Mutate, Apply or Trade means for
// the profile's log.
type Outcome int

const (
	// Acknowledged: the call returned nil; its event is in the log, once.
	Acknowledged Outcome = iota
	// Rejected: nothing was appended and nothing will be — the session was
	// lost or had ended before the append, the log fenced it, the input was
	// refused, or the context ended before anything was sent.
	Rejected
	// Uncertain: the event may or may not be in the log (its
	// acknowledgement never came: ErrUncertain, or an error OutcomeOf does
	// not know). It is there at most once.
	Uncertain
)

func (o Outcome) String() string {
	switch o {
	case Acknowledged:
		return "acknowledged"
	case Rejected:
		return "rejected"
	case Uncertain:
		return "uncertain"
	}
	return "no outcome"
}

// OutcomeOf returns what err, returned by Mutate, Apply or Trade, means for
// the log. It cannot tell the error of the caller's own function (which
// means nothing was appended) from others, and calls an error it does not
// know Uncertain, which is never wrong.
func OutcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return Acknowledged
	case errors.Is(err, profileledger.ErrUncertain):
		return Uncertain
	case errors.Is(err, profileledger.ErrSessionLost), errors.Is(err, profileledger.ErrSessionEnded):
		return Rejected // never sent, or fenced by the log
	case errors.Is(err, profileledger.ErrInvalidInput), errors.Is(err, profileledger.ErrTooLarge):
		return Rejected // refused before anything was sent
	case err == context.Canceled || err == context.DeadlineExceeded:
		return Rejected // returned bare only when nothing was sent
	}
	return Uncertain
}
