package projector

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/profileledger/profileledger/ledger"
)

// ErrUnknownOp is returned for an op whose Op field is not one of "add",
// "remove", "replace", "move", "copy", "test" or "inc".
var ErrUnknownOp = errors.New("projector: unknown op")

// ErrInvalidPath is returned for a Path or From that is not an RFC 6901
// pointer (it does not start with "/", or has a "~" not followed by "0" or
// "1"), for an array index that is not a canonical decimal ("01", "+1", "x"),
// for removing the whole document, and for moving a value into its own child.
var ErrInvalidPath = errors.New("projector: invalid path")

// ErrPathNotFound is returned when a pointer does not lead to a location: a
// missing member, an array index out of range, or a step into a value that is
// neither an object nor an array.
var ErrPathNotFound = errors.New("projector: path not found")

// ErrTypeMismatch is returned when the value at the path has the wrong type
// for the op: "inc" on anything but a number.
var ErrTypeMismatch = errors.New("projector: type mismatch")

// ErrTestFailed is returned by a "test" op whose value is not equal to the
// value at its path.
var ErrTestFailed = errors.New("projector: test failed")

// ErrInvalidValue is returned when an op's Value is missing but needed, is
// not JSON, or (for "inc") is not a number.
var ErrInvalidValue = errors.New("projector: invalid value")

// ErrOutOfRange is returned by "inc" when the sum is not a finite float64.
var ErrOutOfRange = errors.New("projector: number out of range")

// ErrTooLarge is returned when the "copy" ops of one Apply call duplicate
// more than MaxCopySize bytes.
var ErrTooLarge = errors.New("projector: document too large")

// OpError is the error of Apply: the op at Index of its ops failed with Err,
// which wraps one of the Err* sentinels of this package.
type OpError struct {
	Index int       // position of the failing op in the slice given to Apply
	Op    ledger.Op // the failing op
	Err   error     // why it failed
}

// Error names the op's index, name and path, then the cause, e.g.
// "projector: op 2 (inc /coins): projector: type mismatch: value at /coins
// is a string, not a number".
func (e *OpError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "projector: op %d (%s %s", e.Index, quoteIfOdd(e.Op.Op), showPath(e.Op.Path))
	if e.Op.Op == opMove || e.Op.Op == opCopy {
		fmt.Fprintf(&b, " from %s", showPath(e.Op.From))
	}
	fmt.Fprintf(&b, "): %v", e.Err)
	return b.String()
}

// Unwrap returns Err.
func (e *OpError) Unwrap() error { return e.Err }

// FoldError is the error of Fold: the event with stream sequence Seq and id
// ID could not be applied. Err is the *OpError.
type FoldError struct {
	Seq uint64 // the event's stream sequence (its version)
	ID  string // the event's id
	Err error  // the *OpError of the failing op
}

// Error names the event by sequence and id, then the cause.
func (e *FoldError) Error() string {
	return fmt.Sprintf("projector: event %d (id %s): %v", e.Seq, quoteIfOdd(e.ID), e.Err)
}

// Unwrap returns Err.
func (e *FoldError) Unwrap() error { return e.Err }

// showPath renders a pointer for a message: "" is shown quoted so that it
// does not vanish, odd pointers are quoted, ordinary ones are shown as is.
func showPath(p string) string {
	if p == "" {
		return `""`
	}
	return quoteIfOdd(p)
}

// quoteIfOdd quotes s if it is empty or holds spaces, quotes or characters
// that are not printable, so that a message stays on one unambiguous line.
func quoteIfOdd(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == ' ' || r == '"' || r == '\\' || !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// where names a location in a message: "value at /a/b", or "document" for
// the whole document.
func where(p string) string {
	if p == "" {
		return "document"
	}
	return "value at " + quoteIfOdd(p)
}
