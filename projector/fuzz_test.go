package projector_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

var sentinels = []error{
	projector.ErrUnknownOp, projector.ErrInvalidPath, projector.ErrPathNotFound, projector.ErrTypeMismatch,
	projector.ErrTestFailed, projector.ErrInvalidValue, projector.ErrOutOfRange, projector.ErrTooLarge,
}

// FuzzApply applies random ops to a random document: Apply must not panic,
// must not modify its input, must fail only with an *OpError wrapping a
// sentinel and then return the document unchanged, and on success must agree
// with applying the ops one by one.
func FuzzApply(f *testing.F) {
	f.Add(`{"coins":10,"bag":["sword"]}`, `[{"op":"inc","path":"/coins","value":5},{"op":"add","path":"/bag/-","value":"shield"}]`)
	f.Add(`{"a":{"b":[1,2,{"c":"d"}]}}`, `[{"op":"move","from":"/a/b/2","path":"/a/x"},{"op":"copy","from":"/a","path":"/a/x/y"},{"op":"remove","path":"/a/b/0"}]`)
	f.Add(`[1,2,3]`, `[{"op":"copy","from":"","path":"/-"},{"op":"add","path":"/3/0","value":0},{"op":"test","path":"/0","value":1.0}]`)
	f.Add(`{"a~b":{"c/d":1}}`, `[{"op":"replace","path":"/a~0b/c~1d","value":2},{"op":"inc","path":"/a~0b/c~1d","value":1e308}]`)
	f.Add(`{"n":9223372036854775807}`, `[{"op":"inc","path":"/n","value":1},{"op":"inc","path":"/n","value":-1.5e3}]`)
	f.Add(`null`, `[{"op":"add","path":"","value":{}},{"op":"add","path":"/01","value":[]},{"op":"add","path":"/01/0","value":1}]`)
	f.Add(`{"x":[[]]}`, `[{"op":"move","from":"/x/0","path":"/x/0/-"}]`)
	f.Add(`{}`, `[{"op":"bogus"},{"op":"add","path":"/~2"}]`)
	f.Fuzz(func(t *testing.T, docJSON, opsJSON string) {
		doc, err := projector.Decode([]byte(docJSON))
		if err != nil {
			return
		}
		var ops []ledger.Op
		if err := json.Unmarshal([]byte(opsJSON), &ops); err != nil {
			return
		}
		before := deepCopy(doc)
		got, err := projector.Apply(doc, ops)
		assertUnchanged(t, before, doc)
		if err != nil {
			assertUnchanged(t, before, got)
			var opErr *projector.OpError
			if !errors.As(err, &opErr) || opErr.Index < 0 || opErr.Index >= len(ops) {
				t.Fatalf("error %v is not an *OpError with a valid index", err)
			}
			if !isSentinel(err) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		data, err := projector.Encode(got)
		if err != nil {
			t.Fatalf("result cannot be encoded: %v", err)
		}
		oneByOne := doc
		for i := range ops {
			if oneByOne, err = projector.Apply(oneByOne, ops[i:i+1]); err != nil {
				t.Fatalf("op %d fails alone after succeeding in a batch: %v", i, err)
			}
		}
		if !reflect.DeepEqual(got, oneByOne) {
			t.Fatalf("batch %s, one by one %s", data, mustEncode(t, oneByOne))
		}
		assertUnchanged(t, before, doc)
	})
}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzDiff checks Apply(a, Diff(a, b)) == b and Diff(a, a) == nil for any
// two JSON documents.
func FuzzDiff(f *testing.F) {
	f.Add(`{"a":1,"b":[1,2,3]}`, `{"b":[1,3],"c":{"~/":null}}`)
	f.Add(`[1,2,3,4,5]`, `[0,1,2,4,5,6]`)
	f.Add(`[{"n":1},{"n":2}]`, `[{"n":2},{"n":1},{}]`)
	f.Add(`1`, `1.0`)
	f.Add(`null`, `{"":""}`)
	f.Add(`{"a":[[1],[2]]}`, `{"a":[[1,2],[2,1]]}`)
	f.Add(`"x"`, `[]`)
	f.Fuzz(func(t *testing.T, aJSON, bJSON string) {
		a, errA := projector.Decode([]byte(aJSON))
		b, errB := projector.Decode([]byte(bJSON))
		if errA != nil || errB != nil {
			return
		}
		beforeA, beforeB := deepCopy(a), deepCopy(b)
		ops := projector.Diff(a, b)
		got, err := projector.Apply(a, ops)
		if err != nil {
			t.Fatalf("Apply(a, Diff(a, b)): %v\nops %v", err, ops)
		}
		if !projector.Equal(got, b) {
			t.Fatalf("Apply(a, Diff(a, b)) = %s, want %s", mustEncode(t, got), bJSON)
		}
		if ops := projector.Diff(a, a); len(ops) != 0 {
			t.Fatalf("Diff(a, a) = %v", ops)
		}
		assertUnchanged(t, beforeA, a)
		assertUnchanged(t, beforeB, b)
	})
}
