package projector_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/projector"
)

type textish struct{ v int }

func (t textish) MarshalText() ([]byte, error) { return []byte(fmt.Sprint("t", t.v)), nil }

type jsonish int

func (j *jsonish) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf(`{"j":%d}`, int(*j))), nil }

type inner struct {
	A int    `json:"a"`
	B string `json:"b,omitempty"`
	C []int  `json:"c"`
}

type Embedded struct{ E int }

type typedDoc struct {
	N     int                `json:"n"`
	U     uint8              // no tag: the field name
	F     float64            `json:"f"`
	S     string             `json:"s,omitempty"`
	Bs    []byte             `json:"bs"`
	P     *inner             `json:"p,omitempty"`
	Pi    *int               `json:"pi"`
	M     map[string]inner   `json:"m"`
	MI    map[string]int     `json:"mi,omitempty"`
	MK    map[int]string     `json:"mk"`
	L     []inner            `json:"l"`
	LS    []string           `json:"ls,omitempty"`
	Arr   [3]int             `json:"arr"`
	I     any                `json:"i"`
	T     textish            `json:"t"`
	TJ    jsonish            `json:"tj"`
	TP    *jsonish           `json:"tp"`
	Tm    time.Time          `json:"tm"`
	W     struct{ Embedded } `json:"w"`
	X     strish             `json:"x"`
	Skip  int                `json:"-"`
	unexp int
	Weird string            `json:"a/b~c"`
	Dash  int               `json:"-,"`
	Named map[tokenKey]bool `json:"named"`
	// The scalar shapes DiffValues diffs without reflection per element,
	// plain and named, and a look-alike it must not take for one.
	MS map[string]string   `json:"ms"`
	MB map[string]bool     `json:"mb"`
	LB []bool              `json:"lb"`
	NL names               `json:"nl"`
	NC counts              `json:"nc,omitempty"`
	ME map[string]tokenKey `json:"me"`
}

type tokenKey string

type (
	names  []string
	counts map[string]int64
)

// strish uses ",string", which the walk does not model: compared whole.
type strish struct {
	Str int `json:"str,string"`
}

func randStr(r *rand.Rand) string {
	return []string{"", "a", "b", "x/y", "~", "ü", "\xff", "<&>", "long string value"}[r.IntN(9)]
}

func randInner(r *rand.Rand) inner {
	in := inner{A: r.IntN(3), B: randStr(r)}
	if r.IntN(3) > 0 {
		for range r.IntN(4) {
			in.C = append(in.C, r.IntN(5))
		}
	}
	return in
}

func randDoc(r *rand.Rand) typedDoc {
	d := typedDoc{N: r.IntN(5), U: uint8(r.IntN(3)), S: randStr(r), Weird: randStr(r), Dash: r.IntN(2), X: strish{r.IntN(3)}, Skip: r.IntN(9), unexp: r.IntN(9)}
	d.F = []float64{0, math.Copysign(0, -1), 1.5, 1e21, 3}[r.IntN(5)]
	if r.IntN(2) == 0 {
		d.Bs = []byte(randStr(r))
	}
	if r.IntN(2) == 0 {
		in := randInner(r)
		d.P = &in
	}
	if r.IntN(2) == 0 {
		v := r.IntN(3)
		d.Pi = &v
	}
	if r.IntN(3) > 0 {
		d.M = map[string]inner{}
		for range r.IntN(4) {
			d.M[randStr(r)] = randInner(r)
		}
	}
	if r.IntN(2) == 0 {
		d.MI = map[string]int{}
		for range r.IntN(3) {
			d.MI[randStr(r)] = r.IntN(3)
		}
	}
	if r.IntN(2) == 0 {
		d.MK = map[int]string{r.IntN(3): randStr(r)}
	}
	if r.IntN(3) > 0 {
		for range r.IntN(4) {
			d.L = append(d.L, randInner(r))
		}
	}
	if r.IntN(2) == 0 {
		d.LS = []string{}
		for range r.IntN(3) {
			d.LS = append(d.LS, randStr(r))
		}
	}
	d.Arr = [3]int{r.IntN(2), r.IntN(2), r.IntN(2)}
	switch r.IntN(5) {
	case 0:
		d.I = r.IntN(3)
	case 1:
		d.I = randStr(r)
	case 2:
		d.I = randInner(r)
	case 3:
		d.I = map[string]any{"k": r.IntN(2)}
	}
	d.T = textish{r.IntN(3)}
	d.TJ = jsonish(r.IntN(3))
	if r.IntN(2) == 0 {
		j := jsonish(r.IntN(3))
		d.TP = &j
	}
	d.Tm = time.Unix(int64(r.IntN(3)), 0).UTC()
	d.W.E = r.IntN(2)
	if r.IntN(2) == 0 {
		d.Named = map[tokenKey]bool{tokenKey(randStr(r)): r.IntN(2) == 0}
	}
	if r.IntN(3) > 0 {
		d.MS, d.MB, d.NC, d.ME = map[string]string{}, map[string]bool{}, counts{}, map[string]tokenKey{}
		for range r.IntN(4) {
			d.MS[randStr(r)] = randStr(r)
			d.MB[randStr(r)] = r.IntN(2) == 0
			d.NC[randStr(r)] = int64(r.IntN(3)) - 1
			d.ME[randStr(r)] = tokenKey(randStr(r))
		}
	}
	if r.IntN(3) > 0 {
		for range r.IntN(4) {
			d.LB = append(d.LB, r.IntN(2) == 0)
			d.NL = append(d.NL, randStr(r))
		}
	}
	return d
}

func docOf(t *testing.T, v any) any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := projector.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestDiffValuesMatchesTheJSONDiff: for random pairs of values, the typed
// diff turns the JSON form of the first into the JSON form of the second.
func TestDiffValuesMatchesTheJSONDiff(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 30000 {
		a, b := randDoc(r), randDoc(r)
		if i%3 == 0 {
			b = a // often only a little differs: mutate a copy
			b.N++
			if b.M != nil && r.IntN(2) == 0 {
				m := map[string]inner{}
				for k, v := range a.M {
					m[k] = v
				}
				m["new"] = randInner(r)
				b.M = m
			}
			if a.MS != nil && r.IntN(2) == 0 {
				b.MS = maps.Clone(a.MS)
				b.MS[randStr(r)] = randStr(r)
				b.NL = append(slices.Clone(a.NL), randStr(r))
				if len(b.NL) > 1 {
					b.NL[0] = randStr(r)
				}
			}
		}
		ops, err := projector.DiffValues(a, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range ops {
			if op.Path == "" {
				t.Fatalf("case %d: the whole value was replaced: the walk did not run", i)
			}
		}
		got, err := projector.Apply(docOf(t, a), ops)
		if err != nil {
			t.Fatalf("case %d: applying %v: %v", i, ops, err)
		}
		if want := docOf(t, b); !projector.Equal(got, want) {
			ga, _ := projector.Encode(got)
			wb, _ := projector.Encode(want)
			t.Fatalf("case %d: ops %v\n got %s\nwant %s", i, ops, ga, wb)
		}
	}
}

func TestDiffValuesOfEqualValuesIsEmpty(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		a := randDoc(r)
		ops, err := projector.DiffValues(a, a)
		if err != nil || len(ops) != 0 {
			t.Fatalf("DiffValues(a, a) = %v, %v", ops, err)
		}
	}
}

func BenchmarkDiffValuesOneFieldOf64KiB(b *testing.B) {
	type profile struct {
		Coins int               `json:"coins"`
		Items map[string]string `json:"items"`
	}
	old := profile{Items: map[string]string{}}
	for i := range 1500 {
		old.Items[fmt.Sprint("item-", i)] = fmt.Sprintf("%032d", i)
	}
	nw := profile{Coins: 1, Items: maps.Clone(old.Items)} // a deep copy, as Mutate's
	b.Run("typed", func(b *testing.B) {
		for b.Loop() {
			projector.DiffValues(old, nw)
		}
	})
	b.Run("marshal+decode+diff", func(b *testing.B) {
		od, _ := json.Marshal(old)
		oldDoc, _ := projector.Decode(od)
		for b.Loop() {
			raw, _ := json.Marshal(nw)
			doc, _ := projector.Decode(raw)
			projector.Diff(oldDoc, doc)
		}
	})
}

// TestDiffValuesOfOneChangedEntryIsOneOp: a large map or slice of scalars
// with one entry changed, added or removed gives exactly that op.
func TestDiffValuesOfOneChangedEntryIsOneOp(t *testing.T) {
	type profile struct {
		Items  map[string]string `json:"items"`
		Counts counts            `json:"counts"`
		Names  names             `json:"names"`
	}
	old := profile{Items: map[string]string{}, Counts: counts{}}
	for i := range 500 {
		old.Items[fmt.Sprint("item-", i)] = fmt.Sprint(i)
		old.Counts[fmt.Sprint("c", i)] = int64(i)
		old.Names = append(old.Names, fmt.Sprint("n", i))
	}
	copyOf := func() profile {
		return profile{Items: maps.Clone(old.Items), Counts: maps.Clone(old.Counts), Names: slices.Clone(old.Names)}
	}
	cases := map[string]struct {
		change func(*profile)
		want   ledger.Op
	}{
		"map entry replaced": {func(p *profile) { p.Items["item-7"] = "x" }, ledger.Op{Op: "replace", Path: "/items/item-7", Value: []byte(`"x"`)}},
		"map entry added":    {func(p *profile) { p.Counts["new"] = 3 }, ledger.Op{Op: "add", Path: "/counts/new", Value: []byte(`3`)}},
		"map entry removed":  {func(p *profile) { delete(p.Items, "item-1") }, ledger.Op{Op: "remove", Path: "/items/item-1"}},
		"slice element":      {func(p *profile) { p.Names[42] = "forty-two" }, ledger.Op{Op: "replace", Path: "/names/42", Value: []byte(`"forty-two"`)}},
		"slice appended":     {func(p *profile) { p.Names = append(p.Names, "last") }, ledger.Op{Op: "add", Path: "/names/-", Value: []byte(`"last"`)}},
		"slice shortened":    {func(p *profile) { p.Names = p.Names[:499] }, ledger.Op{Op: "remove", Path: "/names/499"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			nw := copyOf()
			c.change(&nw)
			ops, err := projector.DiffValues(old, nw)
			if err != nil {
				t.Fatal(err)
			}
			if len(ops) != 1 || ops[0].Op != c.want.Op || ops[0].Path != c.want.Path || string(ops[0].Value) != string(c.want.Value) {
				t.Fatalf("ops %v, want [%v]", ops, c.want)
			}
		})
	}
}

// TestDiffValuesIsDeterministic: maps are walked in random order, the ops
// come out in key order every time.
func TestDiffValuesIsDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 200 {
		a, b := randDoc(r), randDoc(r)
		first, err := projector.DiffValues(a, b)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			again, _ := projector.DiffValues(a, b)
			if fmt.Sprint(again) != fmt.Sprint(first) {
				t.Fatalf("two diffs of one pair:\n%v\n%v", first, again)
			}
		}
	}
}
