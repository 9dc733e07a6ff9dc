package ledger_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/profileledger/profileledger/ledger"
)

// sameAsEncodingJSON checks that Event.Encode writes exactly what
// encoding/json.Marshal writes, and fails exactly when it fails.
func sameAsEncodingJSON(t *testing.T, ev ledger.Event) {
	t.Helper()
	want, wantErr := json.Marshal(&ev)
	got, err := ev.Encode()
	switch {
	case wantErr != nil && err == nil:
		t.Fatalf("encoding/json fails (%v), Encode wrote %s", wantErr, got)
	case wantErr == nil && err != nil:
		t.Fatalf("Encode failed (%v), encoding/json wrote %s", err, want)
	case wantErr == nil && !bytes.Equal(got, want):
		t.Fatalf("Encode wrote\n%s\nencoding/json wrote\n%s", got, want)
	}
}

func TestEncodeWritesWhatEncodingJSONWrites(t *testing.T) {
	at := time.Date(2026, 11, 21, 6, 49, 55, 123456789, time.UTC)
	base := func() ledger.Event {
		return ledger.Event{V: 1, ID: "0b8e4c1e-8f4a-4c59-9d8e-2f9a6c1d7e3b", Type: "name.changed", Session: "s", Epoch: 7, Time: at}
	}
	strs := []string{"", "plain", `quo"te`, `back\slash`, "<b>&amp;</b>", "a<b", "a>b", "a&b", "~", " ", "tab\there", "nl\n", "\x00\x1f\x7f", "x\x1fy", "del\x7f",
		"ü ß 漢字", "line\u2028sep\u2029", "bad\xffutf8", "/a~1b/~0c", "é\u00e9"}
	values := []string{`1`, `-0`, `0.5`, `-12.5e+3`, `1E9`, `true`, `false`, `null`, `"s"`, `""`, `"<&>"`, `"<"`, `">"`, `"&"`, `"~ "`, `"a\"b"`, `"\u00e9"`,
		`"ü"`, `{"a":1}`, `{ "a" : [1, 2] }`, `[]`, ` 1`, `1 `, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `tru`, `nul`, `{`, `"open`, `"a"b"`, `1 2`}
	t.Run("strings", func(t *testing.T) {
		for _, s := range strs {
			ev := base()
			ev.ID, ev.Type, ev.Session = s, s, s
			ev.Ops = []ledger.Op{{Op: s, Path: s, From: s}}
			ev.Meta = map[string]string{s: s, "z" + s: "v"}
			sameAsEncodingJSON(t, ev)
		}
	})
	t.Run("values", func(t *testing.T) {
		for _, v := range values {
			ev := base()
			ev.Ops = []ledger.Op{{Op: "replace", Path: "/x", Value: json.RawMessage(v)}}
			sameAsEncodingJSON(t, ev)
		}
	})
	t.Run("envelope", func(t *testing.T) {
		cases := map[string]func(*ledger.Event){
			"no ops, no meta": func(*ledger.Event) {},
			"empty ops slice": func(e *ledger.Event) { e.Ops = []ledger.Op{} },
			"several ops": func(e *ledger.Event) {
				e.Ops = []ledger.Op{{Op: "inc", Path: "/c", Value: []byte("1")}, {Op: "move", Path: "/a", From: "/b"}}
			},
			"meta sorted":       func(e *ledger.Event) { e.Meta = map[string]string{"reason": "end", "node": "n1", "a": "", "prev": "3"} },
			"zero time":         func(e *ledger.Event) { e.Time = time.Time{} },
			"zone offset":       func(e *ledger.Event) { e.Time = at.In(time.FixedZone("x", -5*3600-30*60)) },
			"year out of range": func(e *ledger.Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
			"largest numbers":   func(e *ledger.Event) { e.V, e.Epoch = -1<<63, 1<<64-1 },
		}
		for name, change := range cases {
			t.Run(name, func(t *testing.T) {
				ev := base()
				change(&ev)
				sameAsEncodingJSON(t, ev)
			})
		}
	})
	t.Run("random", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
		for range 2000 {
			ev := base()
			ev.Type = pick(strs)
			for range r.IntN(4) {
				ev.Ops = append(ev.Ops, ledger.Op{Op: pick(strs), Path: pick(strs), From: pick(strs), Value: json.RawMessage(pick(values))})
			}
			if r.IntN(2) == 0 {
				ev.Meta = map[string]string{pick(strs): pick(strs), pick(strs): pick(strs)}
			}
			sameAsEncodingJSON(t, ev)
		}
	})
}

func FuzzEncodeWritesWhatEncodingJSONWrites(f *testing.F) {
	f.Add("id", "type", "/path", `"value"`, "k", "v", int64(1700000000))
	f.Add(`"<\`, "\xff", "\u2028", `{ "a" : 1 }`, "", "&", int64(-62135596800))
	f.Add("a", "b", "/c", `-1.5e-3`, "k", "v", int64(253402300800))
	f.Fuzz(func(t *testing.T, id, typ, path, value, mk, mv string, unix int64) {
		ev := ledger.Event{V: 1, ID: id, Type: typ, Session: id, Epoch: 1, Time: time.Unix(unix, 0).UTC(),
			Ops: []ledger.Op{{Op: "add", Path: path, From: typ, Value: json.RawMessage(value)}}, Meta: map[string]string{mk: mv}}
		sameAsEncodingJSON(t, ev)
	})
}

// BenchmarkEncode: Mutate's event (one 256-byte string replaced) encoded by
// Encode and by encoding/json.
func BenchmarkEncode(b *testing.B) {
	value, _ := json.Marshal(fmt.Sprintf("%0256d", 7))
	ev := ledger.Event{V: 1, ID: "0b8e4c1e-8f4a-4c59-9d8e-2f9a6c1d7e3b", Type: "name.changed", Session: "6f1d2e3c-4b5a-4978-8695-a4b3c2d1e0f9",
		Epoch: 3, Time: time.Now().UTC(), Ops: []ledger.Op{{Op: "replace", Path: "/name", Value: value}}}
	b.Run("Encode", func(b *testing.B) {
		for b.Loop() {
			e := ev
			if _, err := e.Encode(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(&ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
