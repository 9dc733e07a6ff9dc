package projector_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

// doc64KiB returns a document of about 64 KiB: 16 sections of 16 groups of
// 13 fields, and the pointer to one field deep inside it.
func doc64KiB(tb testing.TB) (doc any, field string) {
	tb.Helper()
	sections := map[string]any{}
	for s := range 16 {
		groups := map[string]any{}
		for g := range 16 {
			fields := map[string]any{}
			for f := range 13 {
				if f%2 == 0 {
					fields[fmt.Sprintf("field%d", f)] = json.Number(fmt.Sprint(s*1000 + g*10 + f))
				} else {
					fields[fmt.Sprintf("field%d", f)] = fmt.Sprintf("value-%d-%d", s, g)
				}
			}
			groups[fmt.Sprintf("group%02d", g)] = fields
		}
		sections[fmt.Sprintf("section%02d", s)] = groups
	}
	if n := len(mustEncode(tb, sections)); n < 60<<10 || n > 70<<10 {
		tb.Fatalf("document is %d bytes, want about 64 KiB", n)
	}
	return sections, "/section07/group11/field4"
}

func BenchmarkApplyOneFieldOf64KiB(b *testing.B) {
	doc, field := doc64KiB(b)
	ops := []ledger.Op{{Op: "replace", Path: field, Value: json.RawMessage(`42`)}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := projector.Apply(doc, ops); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDiffOneFieldChanged64KiB(b *testing.B) {
	a, field := doc64KiB(b)
	ops := []ledger.Op{{Op: "replace", Path: field, Value: json.RawMessage(`42`)}}
	shared, err := projector.Apply(a, ops)
	if err != nil {
		b.Fatal(err)
	}
	bench := func(b *testing.B, target any) {
		b.ReportAllocs()
		for b.Loop() {
			if d := projector.Diff(a, target); len(d) != 1 {
				b.Fatalf("Diff = %v, want one op", d)
			}
		}
	}
	// A separate copy, as when a mutated Go value is converted back to a
	// document: Diff has to compare every field.
	b.Run("copy", func(b *testing.B) { bench(b, deepCopy(shared)) })
	// The result of Apply, which shares all but the changed path with a.
	b.Run("shared", func(b *testing.B) { bench(b, shared) })
}
