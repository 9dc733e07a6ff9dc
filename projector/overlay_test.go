package projector_test

import (
	"testing"

	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

func TestOverlayKeepsMembersTheTypeDoesNotKnow(t *testing.T) {
	for _, tc := range []struct {
		name, stored, known, want string
	}{
		{"top-level member", `{"coins":1,"gems":7}`, `{"coins":2}`, `{"coins":2,"gems":7}`},
		{"nested member", `{"pet":{"name":"Rex","color":"red"}}`, `{"pet":{"name":"Max"}}`, `{"pet":{"color":"red","name":"Max"}}`},
		{"array elements of the same length", `{"items":[{"id":"a","r":1},{"id":"b","r":2}]}`, `{"items":[{"id":"a"},{"id":"b"}]}`, `{"items":[{"id":"a","r":1},{"id":"b","r":2}]}`},
		{"arrays of other lengths: known's", `{"items":[{"id":"a","r":1}]}`, `{"items":[{"id":"a"},{"id":"b"}]}`, `{"items":[{"id":"a"},{"id":"b"}]}`},
		{"known wins where both hold a member", `{"coins":1.0,"x":{"a":1}}`, `{"coins":1,"x":{"a":2}}`, `{"coins":1,"x":{"a":2}}`},
		{"a member known lacks that is not an object in known", `{"x":{"a":1}}`, `{"x":"s"}`, `{"x":"s"}`},
		{"stored null", `null`, `{"coins":1}`, `{"coins":1}`},
		{"unchanged", `{"a":[1,2],"b":{"c":true}}`, `{"a":[1,2],"b":{"c":true}}`, `{"a":[1,2],"b":{"c":true}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored, known := mustDecode(t, tc.stored), mustDecode(t, tc.known)
			knownBefore := mustEncode(t, known)
			storedBefore := mustEncode(t, stored)
			got := projector.Overlay(stored, known)
			if !projector.Equal(got, mustDecode(t, tc.want)) {
				t.Fatalf("Overlay(%s, %s) = %s, want %s", tc.stored, tc.known, mustEncode(t, got), tc.want)
			}
			if mustEncode(t, known) != knownBefore || mustEncode(t, stored) != storedBefore {
				t.Fatal("Overlay changed its arguments")
			}
		})
	}
}

type item struct {
	ID string `json:"id"`
}

// TestDiffValuesKeepsArrayElementsTheirIdentity: removing or inserting an
// element of a sequence of objects is one op at its index, so the elements
// after it (which may carry members the type does not know) keep their own.
func TestDiffValuesKeepsArrayElementsTheirIdentity(t *testing.T) {
	a, b, c, x := item{"a"}, item{"b"}, item{"c"}, item{"x"}
	for _, tc := range []struct {
		name     string
		old, new []item
		want     ledger.Op
	}{
		{"remove the first", []item{a, b, c}, []item{b, c}, ledger.Op{Op: "remove", Path: "/0"}},
		{"remove the middle", []item{a, b, c}, []item{a, c}, ledger.Op{Op: "remove", Path: "/1"}},
		{"insert at the front", []item{a, b}, []item{x, a, b}, ledger.Op{Op: "add", Path: "/0", Value: []byte(`{"id":"x"}`)}},
		{"append", []item{a, b}, []item{a, b, x}, ledger.Op{Op: "add", Path: "/-", Value: []byte(`{"id":"x"}`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, err := projector.DiffValues(tc.old, tc.new)
			if err != nil {
				t.Fatal(err)
			}
			if len(ops) != 1 || ops[0].Op != tc.want.Op || ops[0].Path != tc.want.Path || string(ops[0].Value) != string(tc.want.Value) {
				t.Fatalf("ops = %+v, want [%+v]", ops, tc.want)
			}
			// Lay the ops over a stored document whose elements carry a
			// member the type does not know: each must stay with its id.
			stored := mustDecode(t, mustEncode(t, tagged(tc.old)))
			got, err := projector.Apply(stored, ops)
			if err != nil {
				t.Fatal(err)
			}
			if want := mustDecode(t, mustEncode(t, tagged(tc.new))); !projector.Equal(got, want) {
				t.Fatalf("after %+v: %s, want %s", ops, mustEncode(t, got), mustEncode(t, want))
			}
		})
	}
}

// tagged is items as a newer type stores them: with a member derived from
// the id, which DiffValues's type does not know (new elements lack it).
func tagged(items []item) []map[string]any {
	out := make([]map[string]any, len(items))
	for i, it := range items {
		out[i] = map[string]any{"id": it.ID}
		if it.ID != "x" {
			out[i]["tag"] = "of " + it.ID
		}
	}
	return out
}
