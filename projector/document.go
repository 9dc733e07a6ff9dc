package projector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"unsafe"
)

// Decode parses JSON into a document: nil, bool, json.Number, string, []any
// or map[string]any, nested. Numbers stay json.Number, so no digit is lost.
// Anything after the first JSON value, other than white space, is an error.
// Decode accepts what encoding/json accepts and decodes it as encoding/json
// does (invalid UTF-8 and lone surrogates become U+FFFD, a later duplicate
// key wins), failing with the same messages; an input that ends early is
// io.ErrUnexpectedEOF.
func Decode(data []byte) (any, error) {
	v, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("projector: decode: %w", err)
	}
	return v, nil
}

// Encode marshals a document to JSON as encoding/json does: object keys
// sorted, no white space. It fails on a json.Number that is not a JSON
// number and on Go values that encoding/json cannot marshal.
func Encode(doc any) ([]byte, error) {
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("projector: encode: %w", err)
	}
	return data, nil
}

// Equal reports whether two documents are equal as JSON values. Numbers are
// compared by exact decimal value, so "1", "1.0", "1e0" and "10e-1" are equal
// (and "-0" equals "0"); object member order does not matter. A nil
// map[string]any or []any is JSON null, as encoding/json encodes it. A Go
// value of any other type is compared by its JSON encoding.
func Equal(a, b any) bool {
	ka, kb := kindOf(a), kindOf(b)
	if ka == kindOther || kb == kindOther {
		return equalOther(a, b)
	}
	if ka != kb {
		return false
	}
	switch ka {
	case kindNull:
		return true
	case kindBool:
		return a.(bool) == b.(bool)
	case kindString:
		return a.(string) == b.(string)
	case kindNumber:
		return equalNumbers(a.(json.Number), b.(json.Number))
	case kindArray:
		x, y := a.([]any), b.([]any)
		if len(x) != len(y) {
			return false
		}
		if sameSlice(x, y) {
			return true
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case kindObject:
		x, y := a.(map[string]any), b.(map[string]any)
		if len(x) != len(y) {
			return false
		}
		if mapID(x) == mapID(y) {
			return true
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !Equal(xv, yv) {
				return false
			}
		}
		return true
	}
	return false
}

// equalOther compares values of which at least one is not a document type,
// by their JSON form; values that cannot be encoded are compared as Go
// values.
func equalOther(a, b any) bool {
	da, errA := json.Marshal(a)
	db, errB := json.Marshal(b)
	if errA != nil || errB != nil {
		return reflect.DeepEqual(a, b)
	}
	va, errA := decode(da)
	vb, errB := decode(db)
	if errA != nil || errB != nil {
		return bytes.Equal(da, db)
	}
	if kindOf(va) == kindOther || kindOf(vb) == kindOther {
		return false // cannot happen: decode returns document types only
	}
	return Equal(va, vb)
}

// kind is the JSON type of a document value.
type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
	kindOther // a Go value that is not one of the document types
)

// kindOf classifies v. A nil map or slice is null, as encoding/json encodes it.
func kindOf(v any) kind {
	switch v := v.(type) {
	case nil:
		return kindNull
	case bool:
		return kindBool
	case json.Number:
		return kindNumber
	case string:
		return kindString
	case []any:
		if v == nil {
			return kindNull
		}
		return kindArray
	case map[string]any:
		if v == nil {
			return kindNull
		}
		return kindObject
	}
	return kindOther
}

// describe names v's type for a message: "a string", "an object", ...
func describe(v any) string {
	switch kindOf(v) {
	case kindNull:
		return "null"
	case kindBool:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindArray:
		return "an array"
	case kindObject:
		return "an object"
	}
	return fmt.Sprintf("a Go %T (not a document type)", v)
}

// mapID is the identity of a map: two maps with the same identity are the
// same map.
func mapID(m map[string]any) unsafe.Pointer {
	return reflect.ValueOf(m).UnsafePointer()
}

// sliceID is the identity of a slice's backing array, or nil when it has
// none of its own (capacity 0: such slices may share a static address).
func sliceID(s []any) unsafe.Pointer {
	if cap(s) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(s))
}

// sameSlice reports whether x and y are the same elements of the same array.
func sameSlice(x, y []any) bool {
	return len(x) == len(y) && len(x) > 0 && unsafe.SliceData(x) == unsafe.SliceData(y)
}
