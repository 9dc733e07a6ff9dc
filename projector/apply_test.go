package projector_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

func TestApplyPerformsEachOp(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		ops  string // JSON array of ops
		want string
	}{
		{"add creates a member", `{"a":1}`, `[{"op":"add","path":"/b","value":2}]`, `{"a":1,"b":2}`},
		{"add overwrites an existing member", `{"a":1}`, `[{"op":"add","path":"/a","value":[1]}]`, `{"a":[1]}`},
		{"add inserts into an array", `[1,3]`, `[{"op":"add","path":"/1","value":2}]`, `[1,2,3]`},
		{"add at index 0 prepends", `[1]`, `[{"op":"add","path":"/0","value":0}]`, `[0,1]`},
		{"add at the array's length appends", `[1]`, `[{"op":"add","path":"/1","value":2}]`, `[1,2]`},
		{"add at dash appends", `{"a":[1]}`, `[{"op":"add","path":"/a/-","value":2}]`, `{"a":[1,2]}`},
		{"add at the root replaces a null document", `null`, `[{"op":"add","path":"","value":{"a":1}}]`, `{"a":1}`},
		{"add stores null", `{}`, `[{"op":"add","path":"/a","value":null}]`, `{"a":null}`},
		{"add unescapes ~1 to slash", `{}`, `[{"op":"add","path":"/a~1b","value":1}]`, `{"a/b":1}`},
		{"add unescapes ~0 to tilde", `{}`, `[{"op":"add","path":"/m~0n","value":1}]`, `{"m~n":1}`},
		{"add unescapes ~01 to a literal ~1", `{}`, `[{"op":"add","path":"/~01","value":1}]`, `{"~1":1}`},
		{"add with a lone slash names the empty key", `{}`, `[{"op":"add","path":"/","value":1}]`, `{"":1}`},
		{"a number-like token is a plain key in an object", `{}`, `[{"op":"add","path":"/01","value":1}]`, `{"01":1}`},
		{"a dash is a plain key in an object", `{}`, `[{"op":"add","path":"/-","value":1}]`, `{"-":1}`},
		{"remove deletes a member", `{"a":1,"b":2}`, `[{"op":"remove","path":"/a"}]`, `{"b":2}`},
		{"remove deletes an array element", `[1,2,3]`, `[{"op":"remove","path":"/1"}]`, `[1,3]`},
		{"remove ignores a value", `{"a":1}`, `[{"op":"remove","path":"/a","value":5}]`, `{}`},
		{"replace changes a member", `{"a":{"b":1}}`, `[{"op":"replace","path":"/a/b","value":"x"}]`, `{"a":{"b":"x"}}`},
		{"replace changes an array element", `[1,2]`, `[{"op":"replace","path":"/0","value":9}]`, `[9,2]`},
		{"replace at the root replaces the document", `{"a":1}`, `[{"op":"replace","path":"","value":[]}]`, `[]`},
		{"move renames a member", `{"a":1}`, `[{"op":"move","from":"/a","path":"/b"}]`, `{"b":1}`},
		{"move reorders an array", `[1,2,3]`, `[{"op":"move","from":"/0","path":"/2"}]`, `[2,3,1]`},
		{"move between containers", `{"a":[1,2],"b":{}}`, `[{"op":"move","from":"/a/1","path":"/b/x"}]`, `{"a":[1],"b":{"x":2}}`},
		{"move onto itself changes nothing", `{"a":1}`, `[{"op":"move","from":"/a","path":"/a"}]`, `{"a":1}`},
		{"move to the root replaces the document", `{"a":{"b":1}}`, `[{"op":"move","from":"/a","path":""}]`, `{"b":1}`},
		{"copy duplicates a member", `{"a":{"b":1}}`, `[{"op":"copy","from":"/a","path":"/c"}]`, `{"a":{"b":1},"c":{"b":1}}`},
		{"copy of the root into a member", `{"a":1}`, `[{"op":"copy","from":"","path":"/b"}]`, `{"a":1,"b":{"a":1}}`},
		{"changing a copy leaves the original alone", `{"a":{"b":[1]}}`,
			`[{"op":"copy","from":"/a","path":"/c"},{"op":"add","path":"/c/b/-","value":2},{"op":"add","path":"/a/x","value":3}]`,
			`{"a":{"b":[1],"x":3},"c":{"b":[1,2]}}`},
		{"test passes on an equal value", `{"a":[1,{"b":null}]}`, `[{"op":"test","path":"/a","value":[1,{"b":null}]}]`, `{"a":[1,{"b":null}]}`},
		{"test compares numbers by value", `{"a":1}`, `[{"op":"test","path":"/a","value":1.0e0}]`, `{"a":1}`},
		{"test on the root", `5`, `[{"op":"test","path":"","value":5}]`, `5`},
		{"inc adds an integer", `{"coins":10}`, `[{"op":"inc","path":"/coins","value":5}]`, `{"coins":15}`},
		{"inc subtracts a negative", `{"coins":10}`, `[{"op":"inc","path":"/coins","value":-15}]`, `{"coins":-5}`},
		{"inc keeps big integers exact", `{"n":9007199254740993}`, `[{"op":"inc","path":"/n","value":1}]`, `{"n":9007199254740994}`},
		{"inc reaches the largest int64 exactly", `{"n":9223372036854775806}`, `[{"op":"inc","path":"/n","value":1}]`, `{"n":9223372036854775807}`},
		{"inc past int64 falls back to float", `{"n":9223372036854775807}`, `[{"op":"inc","path":"/n","value":1}]`, `{"n":9223372036854776000}`},
		{"inc of floats adds in float64", `{"x":0.1}`, `[{"op":"inc","path":"/x","value":0.2}]`, `{"x":0.30000000000000004}`},
		{"inc of an integer and a float", `{"x":1}`, `[{"op":"inc","path":"/x","value":0.5}]`, `{"x":1.5}`},
		{"inc of an integer-valued float", `{"x":1e2}`, `[{"op":"inc","path":"/x","value":1}]`, `{"x":101}`},
		{"inc of huge numbers uses exponent form", `{"x":1e300}`, `[{"op":"inc","path":"/x","value":1e300}]`, `{"x":2e+300}`},
		{"inc on an array element", `[1,2]`, `[{"op":"inc","path":"/1","value":3}]`, `[1,5]`},
		{"inc on the root", `7`, `[{"op":"inc","path":"","value":1}]`, `8`},
		{"later ops see earlier ones", `{}`,
			`[{"op":"add","path":"/a","value":[]},{"op":"add","path":"/a/-","value":{"n":1}},{"op":"inc","path":"/a/0/n","value":1},{"op":"test","path":"/a/0/n","value":2}]`,
			`{"a":[{"n":2}]}`},
		{"many changes to one array in one call", `[0]`,
			`[{"op":"add","path":"/-","value":1},{"op":"add","path":"/-","value":2},{"op":"add","path":"/0","value":-1},{"op":"remove","path":"/1"},{"op":"replace","path":"/2","value":3}]`,
			`[-1,1,3]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := mustDecode(t, tt.doc)
			before := deepCopy(doc)
			got, err := projector.Apply(doc, parseOps(t, tt.ops))
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if want := mustDecode(t, tt.want); !projector.Equal(got, want) {
				t.Errorf("got %s, want %s", mustEncode(t, got), tt.want)
			}
			if s := mustEncode(t, got); s != mustEncode(t, mustDecode(t, tt.want)) {
				t.Errorf("got %s, want exactly %s", s, tt.want)
			}
			assertUnchanged(t, before, doc)
		})
	}
}

func TestApplyRejectsBadOps(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		ops   string
		want  error
		index int // of the failing op
	}{
		{"unknown op", `{}`, `[{"op":"increment","path":"/a","value":1}]`, projector.ErrUnknownOp, 0},
		{"op names are case-sensitive", `{}`, `[{"op":"ADD","path":"/a","value":1}]`, projector.ErrUnknownOp, 0},
		{"empty op", `{}`, `[{"path":"/a"}]`, projector.ErrUnknownOp, 0},
		{"path without a leading slash", `{"a":1}`, `[{"op":"replace","path":"a","value":1}]`, projector.ErrInvalidPath, 0},
		{"bad escape ~2", `{}`, `[{"op":"add","path":"/a~2","value":1}]`, projector.ErrInvalidPath, 0},
		{"tilde at the end", `{}`, `[{"op":"add","path":"/a~","value":1}]`, projector.ErrInvalidPath, 0},
		{"bad escape in from", `{"a":1}`, `[{"op":"copy","from":"/~x","path":"/b"}]`, projector.ErrInvalidPath, 0},
		{"from without a leading slash", `{"a":1}`, `[{"op":"move","from":"a","path":"/b"}]`, projector.ErrInvalidPath, 0},
		{"index with a leading zero", `[1,2]`, `[{"op":"replace","path":"/01","value":1}]`, projector.ErrInvalidPath, 0},
		{"negative index", `[1,2]`, `[{"op":"remove","path":"/-1"}]`, projector.ErrInvalidPath, 0},
		{"index with a plus sign", `[1,2]`, `[{"op":"remove","path":"/+1"}]`, projector.ErrInvalidPath, 0},
		{"fractional index", `[1,2]`, `[{"op":"remove","path":"/1.0"}]`, projector.ErrInvalidPath, 0},
		{"index that is a name", `[1,2]`, `[{"op":"add","path":"/x","value":1}]`, projector.ErrInvalidPath, 0},
		{"empty index", `[1,2]`, `[{"op":"add","path":"/","value":1}]`, projector.ErrInvalidPath, 0},
		{"remove the root", `{"a":1}`, `[{"op":"remove","path":""}]`, projector.ErrInvalidPath, 0},
		{"move into its own child", `{"a":{"b":1}}`, `[{"op":"move","from":"/a","path":"/a/b/c"}]`, projector.ErrInvalidPath, 0},
		{"move the root into a member", `{"a":1}`, `[{"op":"move","from":"","path":"/b"}]`, projector.ErrInvalidPath, 0},
		{"replace a missing member", `{"a":1}`, `[{"op":"replace","path":"/b","value":1}]`, projector.ErrPathNotFound, 0},
		{"remove a missing member", `{"a":1}`, `[{"op":"remove","path":"/b"}]`, projector.ErrPathNotFound, 0},
		{"add below a missing member", `{}`, `[{"op":"add","path":"/a/b","value":1}]`, projector.ErrPathNotFound, 0},
		{"add below a number", `{"coins":1}`, `[{"op":"add","path":"/coins/x","value":1}]`, projector.ErrPathNotFound, 0},
		{"add below null", `{"a":null}`, `[{"op":"add","path":"/a/x","value":1}]`, projector.ErrPathNotFound, 0},
		{"add to a null document", `null`, `[{"op":"add","path":"/a","value":1}]`, projector.ErrPathNotFound, 0},
		{"index out of range", `[1,2]`, `[{"op":"replace","path":"/2","value":1}]`, projector.ErrPathNotFound, 0},
		{"add past the end", `[1,2]`, `[{"op":"add","path":"/3","value":1}]`, projector.ErrPathNotFound, 0},
		{"huge index", `[1]`, `[{"op":"remove","path":"/99999999999999999999999"}]`, projector.ErrPathNotFound, 0},
		{"dash names no element for remove", `[1]`, `[{"op":"remove","path":"/-"}]`, projector.ErrPathNotFound, 0},
		{"dash names no element for replace", `[1]`, `[{"op":"replace","path":"/-","value":1}]`, projector.ErrPathNotFound, 0},
		{"dash in the middle of a path", `[[1]]`, `[{"op":"add","path":"/-/0","value":1}]`, projector.ErrPathNotFound, 0},
		{"move from a missing member", `{}`, `[{"op":"move","from":"/a","path":"/b"}]`, projector.ErrPathNotFound, 0},
		{"copy from a missing member", `{}`, `[{"op":"copy","from":"/a","path":"/b"}]`, projector.ErrPathNotFound, 0},
		{"move to a missing parent", `{"a":1}`, `[{"op":"move","from":"/a","path":"/x/y"}]`, projector.ErrPathNotFound, 0},
		{"test of a missing member", `{}`, `[{"op":"test","path":"/a","value":null}]`, projector.ErrPathNotFound, 0},
		{"inc of a missing member", `{}`, `[{"op":"inc","path":"/coins","value":1}]`, projector.ErrPathNotFound, 0},
		{"inc on a string", `{"coins":"10"}`, `[{"op":"inc","path":"/coins","value":1}]`, projector.ErrTypeMismatch, 0},
		{"inc on null", `{"coins":null}`, `[{"op":"inc","path":"/coins","value":1}]`, projector.ErrTypeMismatch, 0},
		{"inc on an object", `{"coins":{}}`, `[{"op":"inc","path":"/coins","value":1}]`, projector.ErrTypeMismatch, 0},
		{"inc on a boolean root", `true`, `[{"op":"inc","path":"","value":1}]`, projector.ErrTypeMismatch, 0},
		{"inc by a string", `{"coins":1}`, `[{"op":"inc","path":"/coins","value":"1"}]`, projector.ErrInvalidValue, 0},
		{"inc by null", `{"coins":1}`, `[{"op":"inc","path":"/coins","value":null}]`, projector.ErrInvalidValue, 0},
		{"inc past the largest float", `{"x":1.7e308}`, `[{"op":"inc","path":"/x","value":1.7e308}]`, projector.ErrOutOfRange, 0},
		{"inc of a number too big for float64", `{"x":1}`, `[{"op":"inc","path":"/x","value":1e400}]`, projector.ErrOutOfRange, 0},
		{"test of a different value", `{"a":1}`, `[{"op":"test","path":"/a","value":2}]`, projector.ErrTestFailed, 0},
		{"test of a different type", `{"a":1}`, `[{"op":"test","path":"/a","value":"1"}]`, projector.ErrTestFailed, 0},
		{"test of null against an empty array", `{"a":[]}`, `[{"op":"test","path":"/a","value":null}]`, projector.ErrTestFailed, 0},
		{"add without a value", `{}`, `[{"op":"add","path":"/a"}]`, projector.ErrInvalidValue, 0},
		{"replace without a value", `{"a":1}`, `[{"op":"replace","path":"/a"}]`, projector.ErrInvalidValue, 0},
		{"test without a value", `{"a":1}`, `[{"op":"test","path":"/a"}]`, projector.ErrInvalidValue, 0},
		{"inc without a value", `{"a":1}`, `[{"op":"inc","path":"/a"}]`, projector.ErrInvalidValue, 0},
		{"the failing op is named by its index", `{"a":1}`,
			`[{"op":"add","path":"/b","value":2},{"op":"inc","path":"/a","value":1},{"op":"remove","path":"/zzz"}]`,
			projector.ErrPathNotFound, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := mustDecode(t, tt.doc)
			before := deepCopy(doc)
			got, err := projector.Apply(doc, parseOps(t, tt.ops))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Apply: got error %v, want %v", err, tt.want)
			}
			var opErr *projector.OpError
			if !errors.As(err, &opErr) {
				t.Fatalf("error %T is not an *OpError", err)
			}
			if opErr.Index != tt.index {
				t.Errorf("OpError.Index = %d, want %d (%v)", opErr.Index, tt.index, err)
			}
			assertUnchanged(t, before, doc)
			assertUnchanged(t, before, got)
		})
	}
}

func TestApplyRejectsValuesThatAreNotJSON(t *testing.T) {
	for _, raw := range []string{`{`, `1 2`, `nul`, `"unterminated`, ` `} {
		_, err := projector.Apply(map[string]any{}, []ledger.Op{{Op: "add", Path: "/a", Value: json.RawMessage(raw)}})
		if !errors.Is(err, projector.ErrInvalidValue) {
			t.Errorf("value %q: got %v, want ErrInvalidValue", raw, err)
		}
	}
}

func TestOpErrorNamesIndexOpAndPath(t *testing.T) {
	doc := mustDecode(t, `{"coins":"ten"}`)
	ops := parseOps(t, `[{"op":"test","path":"","value":{"coins":"ten"}},{"op":"add","path":"/a","value":1},{"op":"inc","path":"/coins","value":1}]`)
	_, err := projector.Apply(doc, ops)
	want := "projector: op 2 (inc /coins): projector: type mismatch: value at /coins is a string, not a number"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}

	_, err = projector.Apply(doc, parseOps(t, `[{"op":"move","from":"/nope","path":""}]`))
	want = `projector: op 0 (move "" from /nope): projector: path not found: no value at /nope`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestApplyIsAllOrNothing(t *testing.T) {
	doc := mustDecode(t, `{"a":[1,2],"coins":5}`)
	ops := parseOps(t, `[{"op":"inc","path":"/coins","value":1},{"op":"add","path":"/a/-","value":3},{"op":"remove","path":"/a/9"}]`)
	got, err := projector.Apply(doc, ops)
	if err == nil {
		t.Fatal("Apply succeeded; want an error from op 2")
	}
	if mustEncode(t, got) != `{"a":[1,2],"coins":5}` {
		t.Errorf("got %s, want the document unchanged", mustEncode(t, got))
	}
}

func TestApplyWithoutOpsReturnsTheDocument(t *testing.T) {
	doc := map[string]any{"a": json.Number("1")}
	got, err := projector.Apply(doc, nil)
	if err != nil || reflect.ValueOf(got).Pointer() != reflect.ValueOf(doc).Pointer() {
		t.Errorf("Apply(doc, nil) = %v, %v; want doc itself", got, err)
	}
}

func TestApplySharesUntouchedSubtrees(t *testing.T) {
	doc := mustDecode(t, `{"big":{"x":[1,2,3]},"player":{"stats":{"coins":1},"bag":[{"id":1}]}}`)
	got, err := projector.Apply(doc, parseOps(t, `[{"op":"inc","path":"/player/stats/coins","value":1}]`))
	if err != nil {
		t.Fatal(err)
	}
	same := func(path string) bool {
		a, _ := projector.Get(doc, path)
		b, _ := projector.Get(got, path)
		return reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer()
	}
	for _, p := range []string{"/big", "/big/x", "/player/bag"} {
		if !same(p) {
			t.Errorf("%s was copied; want it shared", p)
		}
	}
	for _, p := range []string{"", "/player", "/player/stats"} {
		if same(p) {
			t.Errorf("%s is shared; want a copy (it is on the changed path)", p)
		}
	}
}

func TestApplyNeverModifiesItsInput(t *testing.T) {
	for seed := range uint64(300) {
		g := newGen(seed)
		doc := g.container(4)
		ops := make([]ledger.Op, 1+g.r.IntN(6))
		cur := doc
		for i := range ops {
			ops[i] = g.op(cur)
			if next, err := projector.Apply(cur, ops[i:i+1]); err == nil {
				cur = next
			}
		}
		before := deepCopy(doc)
		got, err := projector.Apply(doc, ops)
		assertUnchanged(t, before, doc)
		if err != nil {
			assertUnchanged(t, before, got)
		}
	}
}

func TestApplyInOneCallEqualsOpByOp(t *testing.T) {
	for seed := range uint64(300) {
		g := newGen(seed)
		doc := g.container(4)
		var ops []ledger.Op
		oneByOne := doc
		for range 1 + g.r.IntN(10) {
			op := g.op(oneByOne)
			next, err := projector.Apply(oneByOne, []ledger.Op{op})
			if err != nil {
				continue
			}
			ops = append(ops, op)
			oneByOne = next
		}
		before := deepCopy(doc)
		all, err := projector.Apply(doc, ops)
		if err != nil {
			t.Fatalf("seed %d: Apply of ops that applied one by one: %v", seed, err)
		}
		if !reflect.DeepEqual(all, oneByOne) {
			t.Fatalf("seed %d: in one call %s, one by one %s", seed, mustEncode(t, all), mustEncode(t, oneByOne))
		}
		assertUnchanged(t, before, doc)
	}
}

func TestApplyToleratesValuesOfOtherGoTypes(t *testing.T) {
	doc := map[string]any{"f": 1.5, "m": map[string]int{"a": 1}, "n": json.Number("x")}
	for _, op := range []string{
		`{"op":"inc","path":"/f","value":1}`,
		`{"op":"add","path":"/m/b","value":1}`,
		`{"op":"inc","path":"/n","value":1}`,
		`{"op":"test","path":"/f","value":2}`,
	} {
		if _, err := projector.Apply(doc, parseOps(t, "["+op+"]")); err == nil {
			t.Errorf("%s: Apply succeeded; want an error", op)
		}
	}
	got, err := projector.Apply(doc, parseOps(t, `[{"op":"test","path":"/f","value":1.5},{"op":"test","path":"/m","value":{"a":1}}]`))
	if err != nil {
		t.Errorf("test of foreign values by their JSON form: %v", err)
	}
	_ = got
}

func TestGetFollowsPointers(t *testing.T) {
	doc := mustDecode(t, `{"a/b":{"m~n":[10,{"":true}]}}`)
	v, err := projector.Get(doc, projector.Pointer("a/b", "m~n", "1", ""))
	if err != nil || v != true {
		t.Errorf("Get = %v, %v; want true", v, err)
	}
	if p := projector.Pointer("a/b", "m~n"); p != "/a~1b/m~0n" {
		t.Errorf("Pointer = %q, want /a~1b/m~0n", p)
	}
	if p := projector.Pointer(); p != "" {
		t.Errorf("Pointer() = %q, want the root \"\"", p)
	}
	if _, err := projector.Get(doc, "/a~1b/m~0n/2"); !errors.Is(err, projector.ErrPathNotFound) {
		t.Errorf("Get past the end: %v, want ErrPathNotFound", err)
	}
	if _, err := projector.Get(doc, "a"); !errors.Is(err, projector.ErrInvalidPath) {
		t.Errorf("Get without a slash: %v, want ErrInvalidPath", err)
	}
}

func TestApplyLimitsWhatCopiesDuplicate(t *testing.T) {
	// Each copy of the root into itself doubles the document's JSON.
	doubling := make([]ledger.Op, 40)
	for i := range doubling {
		doubling[i] = ledger.Op{Op: "copy", From: "", Path: "/-"}
	}
	_, err := projector.Apply([]any{"0123456789"}, doubling)
	if !errors.Is(err, projector.ErrTooLarge) {
		t.Fatalf("40 doublings: got %v, want ErrTooLarge", err)
	}
	var opErr *projector.OpError
	if errors.As(err, &opErr) && opErr.Index > 25 {
		t.Errorf("stopped at op %d; want it to stop near 2^22 bytes (op ~19)", opErr.Index)
	}
	if _, err := projector.Apply([]any{"0123456789"}, doubling[:10]); err != nil {
		t.Errorf("10 doublings: %v", err)
	}
}
