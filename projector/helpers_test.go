package projector_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

// mustDecode decodes s or fails the test.
func mustDecode(tb testing.TB, s string) any {
	tb.Helper()
	v, err := projector.Decode([]byte(s))
	if err != nil {
		tb.Fatalf("Decode(%s): %v", s, err)
	}
	return v
}

// mustEncode encodes v or fails the test.
func mustEncode(tb testing.TB, v any) string {
	tb.Helper()
	data, err := projector.Encode(v)
	if err != nil {
		tb.Fatalf("Encode: %v", err)
	}
	return string(data)
}

// deepCopy copies a document so that nothing is shared with the original.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return v
		}
		c := make(map[string]any, len(v))
		for k, x := range v {
			c[k] = deepCopy(x)
		}
		return c
	case []any:
		if v == nil {
			return v
		}
		c := make([]any, len(v))
		for i, x := range v {
			c[i] = deepCopy(x)
		}
		return c
	}
	return v
}

// assertUnchanged fails if doc differs in any way (even "1" vs "1.0") from
// before, a deep copy taken earlier.
func assertUnchanged(tb testing.TB, before, doc any) {
	tb.Helper()
	if !reflect.DeepEqual(before, doc) {
		tb.Fatalf("input was modified:\nbefore %s\nafter  %s", mustEncode(tb, before), mustEncode(tb, doc))
	}
}

// parseOps parses a JSON array of ops, as ledger encodes them.
func parseOps(tb testing.TB, s string) []ledger.Op {
	tb.Helper()
	var ops []ledger.Op
	if err := json.Unmarshal([]byte(s), &ops); err != nil {
		tb.Fatalf("ops %s: %v", s, err)
	}
	return ops
}

// gen makes random documents and ops from a seeded source, so that a failure
// can be reproduced from its seed.
type gen struct{ r *rand.Rand }

func newGen(seed uint64) gen { return gen{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

// keys are member names, chosen to exercise pointer escaping and array-like
// names.
var keys = []string{"a", "b", "c", "coins", "x/y", "~", "~1", "a~0b", "", "-", "0", "01", "ü", "a b", "/"}

var numbers = []string{
	"0", "1", "-1", "42", "-0", "9007199254740993", "9223372036854775807", "-9223372036854775808",
	"1.5", "-2.25", "1e3", "1.0", "0.1", "1E-7", "123456789012345678901234567890", "3.14159",
}

func (g gen) scalar() any {
	switch g.r.IntN(6) {
	case 0:
		return nil
	case 1:
		return g.r.IntN(2) == 0
	case 2:
		return json.Number(numbers[g.r.IntN(len(numbers))])
	case 3:
		return json.Number(strconv.Itoa(g.r.IntN(2000) - 1000))
	case 4:
		return keys[g.r.IntN(len(keys))]
	default:
		return fmt.Sprintf("s%d", g.r.IntN(100))
	}
}

// doc returns a random document nested at most depth levels.
func (g gen) doc(depth int) any {
	n := g.r.IntN(10)
	switch {
	case depth <= 0 || n < 4:
		return g.scalar()
	case n < 7:
		m := map[string]any{}
		for range g.r.IntN(6) {
			m[keys[g.r.IntN(len(keys))]] = g.doc(depth - 1)
		}
		return m
	default:
		s := make([]any, g.r.IntN(6))
		for i := range s {
			s[i] = g.doc(depth - 1)
		}
		return s
	}
}

// container returns a random object or array.
func (g gen) container(depth int) any {
	for {
		if d := g.doc(depth); d != nil {
			switch d.(type) {
			case map[string]any, []any:
				return d
			}
		}
	}
}

// mutate returns a changed deep copy of v: a few members added, removed or
// changed, elements inserted or dropped, so that Diff sees similar documents.
func (g gen) mutate(v any, depth int) any {
	if g.r.IntN(8) == 0 {
		return g.doc(depth)
	}
	switch v := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) { // in a fixed order, for reproducible seeds
			x := v[k]
			switch g.r.IntN(6) {
			case 0: // drop
			case 1:
				c[k] = g.mutate(x, depth-1)
			default:
				c[k] = deepCopy(x)
			}
		}
		if g.r.IntN(3) == 0 {
			c[keys[g.r.IntN(len(keys))]] = g.doc(depth - 1)
		}
		return c
	case []any:
		c := make([]any, 0, len(v)+1)
		for _, x := range v {
			switch g.r.IntN(8) {
			case 0: // drop
			case 1:
				c = append(c, g.doc(depth-1), deepCopy(x))
			case 2:
				c = append(c, g.mutate(x, depth-1))
			default:
				c = append(c, deepCopy(x))
			}
		}
		return c
	}
	return g.scalar()
}

// paths lists the pointers of every location in v, the root included.
func paths(v any, prefix string, out []string) []string {
	out = append(out, prefix)
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			out = paths(x, prefix+projector.Pointer(k), out)
		}
	case []any:
		for i, x := range v {
			out = paths(x, prefix+"/"+strconv.Itoa(i), out)
		}
	}
	return out
}

// op returns a random op against doc: mostly one that applies, sometimes one
// that does not.
func (g gen) op(doc any) ledger.Op {
	ps := paths(doc, "", nil)
	// Sort for determinism: paths walks maps in random order.
	slices.Sort(ps)
	pick := func() string { return ps[g.r.IntN(len(ps))] }
	value := func() json.RawMessage {
		data, err := json.Marshal(g.doc(2))
		if err != nil {
			panic(err)
		}
		return data
	}
	switch g.r.IntN(8) {
	case 0: // add a new member or element
		return ledger.Op{Op: "add", Path: pick() + projector.Pointer(keys[g.r.IntN(len(keys))]), Value: value()}
	case 1:
		return ledger.Op{Op: "add", Path: pick() + "/-", Value: value()}
	case 2:
		return ledger.Op{Op: "remove", Path: pick()}
	case 3:
		return ledger.Op{Op: "replace", Path: pick(), Value: value()}
	case 4:
		return ledger.Op{Op: "move", From: pick(), Path: pick()}
	case 5:
		return ledger.Op{Op: "copy", From: pick(), Path: pick()}
	case 6:
		p := pick()
		v, _ := projector.Get(doc, p)
		data, _ := json.Marshal(v)
		if g.r.IntN(4) == 0 {
			data = value()
		}
		return ledger.Op{Op: "test", Path: p, Value: data}
	default:
		return ledger.Op{Op: "inc", Path: pick(), Value: json.RawMessage(numbers[g.r.IntN(len(numbers))])}
	}
}

// events returns n events that all apply one after the other from nil, made
// of random ops and of diffs between random documents.
func (g gen) events(tb testing.TB, n int) []ledger.Event {
	tb.Helper()
	var doc any
	var evs []ledger.Event
	for len(evs) < n {
		var ops []ledger.Op
		if g.r.IntN(3) == 0 {
			ops = projector.Diff(doc, g.mutate(doc, 4))
		} else {
			for range 1 + g.r.IntN(4) {
				ops = append(ops, g.op(doc))
			}
		}
		next, err := projector.Apply(doc, ops)
		if err != nil {
			continue
		}
		doc = next
		evs = append(evs, ledger.Event{V: 1, ID: fmt.Sprintf("ev%d", len(evs)+1), Type: "test", Epoch: 1, Ops: ops, Seq: uint64(len(evs) + 1)})
	}
	return evs
}
