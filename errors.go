package profileledger

import (
	"errors"
	"fmt"
)

// ErrLocked is returned by StartSession with NoWait when another session
// holds the profile, and wraps the context's error when a waiting start is
// cancelled before the profile became free.
var ErrLocked = errors.New("profileledger: profile is locked by another session")

// ErrSessionLost means the session is over without having ended cleanly: a
// newer session fenced it in the log (a steal, or a take-over after its lease
// expired), or its lease could not be renewed in time. Its queued mutations
// fail with it, and its data is no longer the profile's. A mutation whose
// append was already in flight when the session was declared lost returns
// that append's outcome: if it was acknowledged, it is in the log (the fence
// made sure no newer session had written), and the next session folds it.
var ErrSessionLost = errors.New("profileledger: session lost")

// ErrSessionEnded means the session ended cleanly (End, a hand-over, or
// Store.Close) and takes no more mutations.
var ErrSessionEnded = errors.New("profileledger: session ended")

// ErrHandedOver is what Err returns after the session handed its profile to
// another holder that asked for it. It also matches ErrSessionEnded.
var ErrHandedOver = fmt.Errorf("%w: handed over to another session", ErrSessionEnded)

// ErrClosed means the store was closed.
var ErrClosed = errors.New("profileledger: store closed")

// ErrInvalidKey means a profile key is empty, too long or not valid UTF-8.
var ErrInvalidKey = errors.New("profileledger: invalid key")

// ErrInvalidInput means a call's arguments were wrong (an empty event type,
// an op on a missing path, a value the profile's type cannot hold, ...).
// Nothing was appended and the session is still usable.
var ErrInvalidInput = errors.New("profileledger: invalid input")

// ErrTooLarge means an event or a snapshot is over its size limit. Nothing
// was appended.
var ErrTooLarge = errors.New("profileledger: too large")

// ErrUncertain means a mutation's append may or may not have landed: no
// acknowledgement arrived before its deadline. The session re-reads the log
// before its next append, so its data stays the log's.
var ErrUncertain = errors.New("profileledger: outcome unknown")

// ErrBadEvent means a profile's log holds a message that is not a valid
// event, or an event that does not fold, and the store is set to stop on it.
// The error names the sequence.
var ErrBadEvent = errors.New("profileledger: bad event in log")

// errLapsed: a session could not be registered under a heartbeat that
// lapsed while it started; StartSession contends again under the new one.
var errLapsed = errors.New("profileledger: this node's heartbeat lapsed")
