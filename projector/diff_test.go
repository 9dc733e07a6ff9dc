package projector_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/profileledger/profileledger/projector"
)

func TestDiffEmitsMinimalOps(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want string // JSON array of ops
	}{
		{"equal documents need no ops", `{"a":[1,{"b":null}]}`, `{"a":[1,{"b":null}]}`, `null`},
		{"numbers equal by value need no ops", `{"a":1}`, `{"a":1.0}`, `null`},
		{"a new document replaces null", `null`, `{"a":1}`, `[{"op":"replace","path":"","value":{"a":1}}]`},
		{"a changed scalar is replaced", `{"a":1}`, `{"a":2}`, `[{"op":"replace","path":"/a","value":2}]`},
		{"a changed type is replaced", `{"a":{}}`, `{"a":[]}`, `[{"op":"replace","path":"/a","value":[]}]`},
		{"members are removed, added and compared in name order",
			`{"a":1,"b":2,"c":{"x":1}}`, `{"b":2,"c":{"x":2},"d":4}`,
			`[{"op":"remove","path":"/a"},{"op":"replace","path":"/c/x","value":2},{"op":"add","path":"/d","value":4}]`},
		{"member names are escaped", `{"a/b":1}`, `{"a/b":2,"m~n":3}`,
			`[{"op":"replace","path":"/a~1b","value":2},{"op":"add","path":"/m~0n","value":3}]`},
		{"an appended element is added", `[1,2]`, `[1,2,3]`, `[{"op":"add","path":"/2","value":3}]`},
		{"an inserted element is added in place", `[1,3]`, `[1,2,3]`, `[{"op":"add","path":"/1","value":2}]`},
		{"a prepended element is added at 0", `[1,2]`, `[0,1,2]`, `[{"op":"add","path":"/0","value":0}]`},
		{"a dropped element is removed", `[1,2,3]`, `[1,3]`, `[{"op":"remove","path":"/1"}]`},
		{"dropped elements are removed from the back", `[1,2,3,"a value long enough that sending it again costs more than two removes"]`,
			`[1,"a value long enough that sending it again costs more than two removes"]`,
			`[{"op":"remove","path":"/2"},{"op":"remove","path":"/1"}]`},
		{"dropped elements are replaced when that is smaller", `[1,2,3,4]`, `[1,4]`, `[{"op":"replace","path":"","value":[1,4]}]`},
		{"a change inside an element stays inside it", `[{"n":1},{"n":2},{"n":3}]`, `[{"n":1},{"n":5},{"n":3}]`,
			`[{"op":"replace","path":"/1/n","value":5}]`},
		{"a wholly different array is replaced by one op", `{"a":[1,2,3]}`, `{"a":[4,5,6]}`,
			`[{"op":"replace","path":"/a","value":[4,5,6]}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := mustDecode(t, tt.a), mustDecode(t, tt.b)
			got, err := json.Marshal(projector.Diff(a, b))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("Diff(%s, %s)\ngot  %s\nwant %s", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestDiffThenApplyGivesTheTarget(t *testing.T) {
	for seed := range uint64(2000) {
		g := newGen(seed)
		a := g.doc(5)
		var b any
		if seed%4 == 0 {
			b = g.doc(5)
		} else {
			b = g.mutate(a, 5)
		}
		beforeA, beforeB := deepCopy(a), deepCopy(b)
		ops := projector.Diff(a, b)
		got, err := projector.Apply(a, ops)
		if err != nil {
			t.Fatalf("seed %d: Apply(a, Diff(a, b)): %v\na %s\nb %s", seed, err, mustEncode(t, a), mustEncode(t, b))
		}
		if !projector.Equal(got, b) {
			t.Fatalf("seed %d: Apply(a, Diff(a, b)) != b\na   %s\nb   %s\ngot %s", seed, mustEncode(t, a), mustEncode(t, b), mustEncode(t, got))
		}
		for _, op := range ops {
			if op.Op == "inc" {
				t.Fatalf("seed %d: Diff emitted inc", seed)
			}
		}
		if again := projector.Diff(a, b); !reflect.DeepEqual(again, ops) {
			t.Fatalf("seed %d: Diff is not deterministic", seed)
		}
		assertUnchanged(t, beforeA, a)
		assertUnchanged(t, beforeB, b)
	}
}

func TestDiffOfADocumentWithItselfIsEmpty(t *testing.T) {
	for seed := range uint64(500) {
		a := newGen(seed).doc(5)
		if ops := projector.Diff(a, a); len(ops) != 0 {
			t.Fatalf("seed %d: Diff(a, a) = %v", seed, ops)
		}
		if ops := projector.Diff(a, deepCopy(a)); len(ops) != 0 {
			t.Fatalf("seed %d: Diff(a, copy of a) = %v", seed, ops)
		}
	}
}

func TestDiffOfAnApplyResultIsSmall(t *testing.T) {
	a := mustDecode(t, `{"player":{"coins":1,"bag":[{"id":"sword"},{"id":"shield"}]},"other":{"x":[1,2,3]}}`)
	b, err := projector.Apply(a, parseOps(t, `[{"op":"inc","path":"/player/coins","value":1}]`))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(projector.Diff(a, b))
	if want := `[{"op":"replace","path":"/player/coins","value":2}]`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestDiffOfDeeplyNestedDocuments(t *testing.T) {
	// Nesting whose arrays change length at every level once took time
	// quadratic in the depth, encoding each level's array again.
	const depth = 3000
	nest := func(open, leaf, close string) string {
		return strings.Repeat(open, depth) + leaf + strings.Repeat(close, depth)
	}
	tests := map[string][2]string{
		"arrays":                    {nest("[", "1", "]"), nest("[", "2", "]")},
		"arrays growing":            {nest("[", "1", ",0]"), nest("[", "2", ",0,0]")},
		"objects":                   {nest(`{"a":`, "1", "}"), nest(`{"a":`, "2", "}")},
		"objects in arrays growing": {nest(`[{"a":`, "1", "},0]"), nest(`[{"a":`, "2", "},0,1]")},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			a, b := mustDecode(t, tt[0]), mustDecode(t, tt[1])
			got, err := projector.Apply(a, projector.Diff(a, b))
			if err != nil || !projector.Equal(got, b) {
				t.Fatalf("Apply(a, Diff(a, b)) is not b: %v", err)
			}
		})
	}
}
