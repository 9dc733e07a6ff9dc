package profileledger

import (
	"encoding/json"
	"fmt"

	"github.com/profileledger/profileledger/ledger"
)

// Op is one explicit change for Session.Apply. Paths are RFC 6901 JSON
// Pointers into the profile's JSON form ("/coins", "/inventory/-").
type Op struct {
	op  ledger.Op
	err error
}

func valueOp(kind, path string, v any) Op {
	raw, err := json.Marshal(v)
	if err != nil {
		return Op{err: fmt.Errorf("%w: %s %s: value does not encode as JSON: %v", ErrInvalidInput, kind, path, err)}
	}
	return Op{op: ledger.Op{Op: kind, Path: path, Value: raw}}
}

// Number is the constraint of Inc's operand.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// Inc adds n to the number at path. The number must exist.
func Inc[N Number](path string, n N) Op { return valueOp("inc", path, n) }

// Set replaces the value at path, which must exist ("replace").
func Set(path string, v any) Op { return valueOp("replace", path, v) }

// Add adds v at path: a new object member, an array element inserted at an
// index, or appended with "/-".
func Add(path string, v any) Op { return valueOp("add", path, v) }

// Remove removes the value at path, which must exist.
func Remove(path string) Op { return Op{op: ledger.Op{Op: "remove", Path: path}} }

// Move moves the value at from to path.
func Move(from, path string) Op { return Op{op: ledger.Op{Op: "move", From: from, Path: path}} }

// Copy copies the value at from to path.
func Copy(from, path string) Op { return Op{op: ledger.Op{Op: "copy", From: from, Path: path}} }

// Test fails the whole Apply unless the value at path equals v.
func Test(path string, v any) Op { return valueOp("test", path, v) }

func ledgerOps(ops []Op) ([]ledger.Op, error) {
	out := make([]ledger.Op, len(ops))
	for i, o := range ops {
		if o.err != nil {
			return nil, o.err
		}
		if o.op.Op == "" {
			return nil, fmt.Errorf("%w: op %d is the zero Op", ErrInvalidInput, i)
		}
		out[i] = o.op
	}
	return out, nil
}
