package ledger_test

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/profileledger/profileledger/ledger"
)

// sameAsDecodeJSON checks that the fast path, where it accepts data,
// decodes exactly what encoding/json decodes, and accepts nothing that
// encoding/json refuses.
func sameAsDecodeJSON(t *testing.T, data []byte) (fast bool) {
	t.Helper()
	got, ok := ledger.DecodeCanonical(data)
	if !ok {
		return false
	}
	want, err := ledger.DecodeJSON(data)
	if err != nil {
		t.Fatalf("the fast path accepted what encoding/json refuses (%v):\n%s", err, data)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the fast path decoded\n%#v\nencoding/json\n%#v\nfrom\n%s", got, want, data)
	}
	return true
}

func TestDecodeReadsWhatEncodingJSONReads(t *testing.T) {
	at := time.Date(2026, 11, 21, 6, 49, 55, 123456789, time.UTC)
	strs := []string{"", "plain", `quo"te`, `back\slash`, "<b>&amp;</b>", "~", " ", "tab\there", "\x00\x1f\x7f", "ü ß 漢字", "bad\xffutf8", "/a~1b/~0c"}
	values := []string{`1`, `-0`, `0.5`, `-12.5e+3`, `1E9`, `true`, `false`, `null`, `"s"`, `""`, `"<&>"`, `"a\"b"`, `"ü"`, `{"a":1}`, `[1,"x"]`, `[]`}
	r := rand.New(rand.NewPCG(3, 4))
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	fast := 0
	for i := range 3000 {
		ev := ledger.Event{V: 1, ID: pick(strs) + "id", Type: pick(strs) + "t", Session: pick(strs), Epoch: uint64(r.Int64()), Time: at.Add(time.Duration(i) * time.Millisecond)}
		if i%7 == 0 {
			ev.Time = at.In(time.FixedZone("x", -5*3600))
		}
		for range r.IntN(4) {
			ev.Ops = append(ev.Ops, ledger.Op{Op: pick(strs), Path: pick(strs), From: pick(strs), Value: json.RawMessage(pick(values))})
		}
		if r.IntN(2) == 0 {
			ev.Meta = map[string]string{pick(strs): pick(strs), pick(strs) + "k": pick(strs)}
		}
		data, err := ev.Encode()
		if err != nil {
			continue
		}
		if sameAsDecodeJSON(t, data) {
			fast++
		}
		// DecodeEvent returns what encoding/json reads, whichever path.
		got, err := ledger.DecodeEvent(data)
		want, werr := ledger.DecodeJSON(data)
		if err != nil || werr != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("DecodeEvent(%s) = %+v, %v; encoding/json %+v, %v", data, got, err, want, werr)
		}
	}
	if fast == 0 {
		t.Fatalf("the fast path took %d of 3000 events", fast)
	}
	// The library's own events, as Mutate writes them, take the fast path.
	ev := ledger.Event{V: 1, ID: "0b8e4c1e-8f4a-4c59-9d8e-2f9a6c1d7e3b", Type: "coin", Session: "6f1d2e3c", Epoch: 3, Time: at,
		Ops:  []ledger.Op{{Op: "inc", Path: "/coins", Value: json.RawMessage("1")}, {Op: "add", Path: "/items/-", Value: json.RawMessage(`"sword"`)}},
		Meta: map[string]string{"node": "n1", "prev": "2"}}
	data, _ := ev.Encode()
	if !sameAsDecodeJSON(t, data) {
		t.Fatalf("a plain event did not take the fast path: %s", data)
	}
	// Near misses go to encoding/json, which decides.
	for _, s := range []string{
		`{"v":1,"id":"a","type":"t","session":"s","epoch":1,"time":"2026-01-01T00:00:00Z"} `,
		`{"v":1,"id":"a","type":"t","session":"s","epoch":01,"time":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"id":"a","type":"t","session":"s","epoch":1,"time":"2026-01-01T00:00:00Z","ops":[]}`,
		`{"v":1,"id":"a","type":"t","session":"s","epoch":1,"time":"2026-01-01T00:00:00Z","meta":{}}`,
		`{"v":1,"id":"a","type":"t","session":"s","epoch":1,"time":"2026-01-01T00:00:00Z","x":1}`,
		`{"v":1,"id":"a","type":"t","session":"s","epoch":1,"time":"yesterday"}`,
		`{"v":1,"id":"a","type":"t","session":"s","epoch":18446744073709551616,"time":"2026-01-01T00:00:00Z"}`,
		`{"v":1,"id":"a","type":"t","session":"s","epoch":1,"time":"2026-01-01T00:00:00Z","ops":[{"op":"add","path":"/a","value":1 }]}`,
	} {
		if sameAsDecodeJSON(t, []byte(s)) {
			t.Errorf("the fast path took a near miss: %s", s)
		}
	}
}

func FuzzDecodeReadsWhatEncodingJSONReads(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"a","type":"t","session":"s","epoch":1,"time":"2026-01-01T00:00:00Z","ops":[{"op":"inc","path":"/c","value":1}],"meta":{"k":"v"}}`))
	f.Add([]byte(`{"v":1,"id":"a","type":"t","session":"s","epoch":1,"time":"2026-01-01T00:00:00+05:30","ops":[{"op":"move","path":"/c","from":"/d"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) { sameAsDecodeJSON(t, data) })
}

// BenchmarkDecode: a Mutate's event decoded by DecodeEvent (the fast path)
// and by encoding/json.
func BenchmarkDecode(b *testing.B) {
	ev := ledger.Event{V: 1, ID: "0b8e4c1e-8f4a-4c59-9d8e-2f9a6c1d7e3b", Type: "coin", Session: "6f1d2e3c-4b5a-4978-8695-a4b3c2d1e0f9",
		Epoch: 3, Time: time.Now().UTC(), Ops: []ledger.Op{{Op: "inc", Path: "/coins", Value: json.RawMessage("1")}}}
	data, _ := ev.Encode()
	b.Run("DecodeEvent", func(b *testing.B) {
		for b.Loop() {
			if _, err := ledger.DecodeEvent(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := ledger.DecodeJSON(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
