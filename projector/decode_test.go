package projector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// decodeStd is decode as it was before the hand-written parser: the
// reference that FuzzDecodeMatchesEncodingJSON compares decode with, and the
// baseline of BenchmarkDecode.
func decodeStd(data []byte) (any, error) {
	// Fast path for the commonest op values: a bare number or literal.
	switch s := string(bytes.Trim(data, " \t\r\n")); s {
	case "null":
		return nil, nil
	case "true":
		return true, nil
	case "false":
		return false, nil
	default:
		if _, ok := parseDecimal(s); ok {
			return json.Number(s), nil
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// checkSameAsStd fails unless decode and decodeStd agree on data: the same
// document, or errors with the same message, both io.ErrUnexpectedEOF or
// neither.
func checkSameAsStd(t *testing.T, data []byte) {
	t.Helper()
	got, err := decode(data)
	want, wantErr := decodeStd(data)
	switch {
	case err == nil && wantErr == nil:
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decode(%.300q) = %#.300v\nencoding/json gives %#.300v", data, got, want)
		}
	case err == nil || wantErr == nil:
		t.Fatalf("decode(%.300q) = %#.300v, %v\nencoding/json gives %#.300v, %v", data, got, err, want, wantErr)
	case err.Error() != wantErr.Error():
		t.Fatalf("decode(%.300q) fails with %q\nencoding/json with %q", data, err, wantErr)
	case errors.Is(err, io.ErrUnexpectedEOF) != errors.Is(wantErr, io.ErrUnexpectedEOF):
		t.Fatalf("decode(%.300q) fails with %#v\nencoding/json with %#v", data, err, wantErr)
	case got != nil:
		t.Fatalf("decode(%.300q) fails and returns %#.300v", data, got)
	}
}

// decodeCases are inputs on which decode must agree with encoding/json:
// the fuzzer's seeds and, with deepCases, TestDecodeMatchesEncodingJSON's
// cases.
func decodeCases() []string {
	cases := []string{
		// Empty, white space, literals.
		``, ` `, "\t\r\n ", `null`, ` true `, "false\n", `nul`, `nulL`, `tru`, `trUe`, `fals`, `falsE`,
		`truex`, `true false`, `nullnull`, `[true,false,null]`, `[nul]`, `[t]`, `{"a":f}`,
		"\f1", "1\v", "\u00a01", "\xef\xbb\xbf1", "1\x00", "\x00",
		// Numbers.
		`0`, `-0`, `-0.0`, `0e0`, `0E+0`, `0e-0`, `1`, `-1`, `12`, `123456789012345678901234567890`,
		`1e400`, `-1e400`, `1E-400`, `1.5e308`, `4.9e-324`, `0.1`, `1.0`, `10e-1`, `9223372036854775808`,
		`-`, `--1`, `+1`, `01`, `-01`, `00`, `1.`, `.5`, `1.e5`, `1e`, `1e+`, `1e-`, `1ee5`, `1e5.5`,
		`1.2.3`, `0x10`, `NaN`, `Infinity`, `-Infinity`, `1 2`, `[1 2]`, `[01]`, `[-]`, `[1.]`, `[1e]`,
		`[1e+]`, `[1.5e3x]`, `[0x]`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":01}`,
		`[0,1,2,3,4,5,6,7,8,9,10,-9]`,
		// Strings and escapes.
		`""`, `"a"`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\'"`, `"\a"`, `"\x41"`, `"\u0041"`,
		`"\u00e9\u00E9"`, `"\u0000"`, `"\u001f"`, `"\u12"`, `"\u12G4"`, `"\uZZZZ"`, `"\u"`, `"\`, `"abc`,
		`"\ud83d\ude00"`, `"\uD83D\uDE00"`, `"\ud83d"`, `"\ude00"`, `"\ude00\ud83d"`, `"\ud83d\ud83d\ude00"`,
		`"\ud83d\u0041"`, `"\ud83dx"`, `"\ud83d\n"`, `"\ud83d\u12"`, `"\ud83d\uZZZZ"`, `"\ud83d\ude0"`,
		`"\ud83d\"`, `"\uD800\uDC00"`, `"\uDBFF\uDFFF"`, `"\uFFFD"`, `"\uFEFF"`, `"\u2028\u2029"`,
		"\"\xff\"", "\"a\xffb\"", "\"\xc3\"", "\"\xc3\xa9\"", "\"\xe2\x82\"", "\"\xed\xa0\x80\"",
		"\"\xf4\x90\x80\x80\"", "\"\xc0\xaf\"", "\"\xef\xbf\xbd\"", "\"\x80\\n\x80\"", "\"é\\u00e9\xff\"",
		"\"\x7f\"", "\"\x1f\"", "\"\t\"", "\"a\nb\"", "\"\x00\"", `"\u0022"`, `"\u005c"`, `"a\"b"`,
		"\"" + strings.Repeat("\xff", 100) + "\"", "\"" + strings.Repeat("\\ud800", 50) + "\"",
		// Arrays and objects.
		`[]`, `[ ]`, `[`, `[ `, `]`, `[1,]`, `[,1]`, `[1,,2]`, `[1]]`, `[1}`, `[}`, `[[]`, `[[],[[]]]`,
		`{}`, `{ }`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a" 1}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`,
		`{1:2}`, `{a:1}`, `{'a':1}`, `{"a":1]`, `{"a":1}}`, `{} {}`, `{"a":1,"a":2}`, `{"a":{"b":1},"a":null}`,
		`{"":""}`, `{"\u0061":1,"a":2}`, "{\"\xff\":1,\"\\ufffd\":2}", `{"a":[1,{"b":[true,{"c":null}]}]}`,
		` { "a" : [ 1 , 2 ] , "b" : { } } `, "{\"a\"\n:\r1\t}", `[1]x`, `{}x`, `"a"x`, `"a""b"`, `[1] [`,
		`1 "abc`, `1 {`, `1 ]`, `1 ,`,
		`{"coins":10,"bag":["sword","shield"],"name":"Ann","stats":{"hp":100,"mp":-3.5e2}}`,
	}
	return cases
}

// deepCases are inputs nested up to and beyond encoding/json's limit.
func deepCases() []string {
	var cases []string
	for _, n := range []int{maxDepth - 1, maxDepth, maxDepth + 1, maxDepth + 5} {
		cases = append(cases,
			strings.Repeat("[", n)+strings.Repeat("]", n),
			strings.Repeat(`{"a":`, n)+"1"+strings.Repeat("}", n),
			strings.Repeat(`[{"a":`, n/2)+strings.Repeat("}]", n/2),
			strings.Repeat("[", n), // cut short
		)
	}
	return cases
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, in := range append(decodeCases(), deepCases()...) {
		checkSameAsStd(t, []byte(in))
	}
	for _, size := range []int{500, 4 << 10, 64 << 10} {
		doc := profileJSON(size, 0)
		checkSameAsStd(t, doc)
		// Every prefix of a small document: each is cut short somewhere.
		if size == 500 {
			for i := range doc {
				checkSameAsStd(t, doc[:i])
			}
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tt := range []struct{ in, msg string }{
		{``, "unexpected EOF"},
		{`[1,`, "unexpected EOF"},
		{`{"a":1} x`, "trailing data after the JSON value"},
		{`[1,]`, "invalid character ']' looking for beginning of value"},
		{"[\x80]", `invalid character '\u0080' looking for beginning of value`},
		{`{"a" 1}`, "invalid character '1' after object key"},
		{`"\'"`, `invalid character '\'' in string escape code`},
		{strings.Repeat("[", maxDepth+1), "invalid character '[' exceeded max depth"},
	} {
		_, err := Decode([]byte(tt.in))
		if want := "projector: decode: " + tt.msg; err == nil || err.Error() != want {
			t.Errorf("Decode(%.20q): %v; want %s", tt.in, err, want)
		}
	}
	if _, err := Decode(nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Decode(nil): %v; want io.ErrUnexpectedEOF", err)
	}
}

// TestDecodeInternsByKind decodes, twice, a document in which the same
// text is a key, a string and a number: each must keep its type, however
// the intern tables are filled.
func TestDecodeInternsByKind(t *testing.T) {
	in := []byte(`{"12":"12","a":12,"b":["12",12,{"12":12}],"":"","c":[""]}`)
	for range 2 {
		checkSameAsStd(t, in)
	}
}

// TestDecodeConcurrently decodes different documents at once (for the race
// detector: decodes share pooled scratch memory).
func TestDecodeConcurrently(t *testing.T) {
	docs := make([][]byte, 8)
	wants := make([]any, len(docs))
	for i := range docs {
		docs[i] = profileJSON(1<<10, i)
		var err error
		if wants[i], err = decodeStd(docs[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for j := range 50 {
				i := (g + j) % len(docs)
				got, err := decode(docs[i])
				if err != nil || !reflect.DeepEqual(got, wants[i]) {
					t.Errorf("decode(profile %d) = %v, %v", i, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestDecodeSlicesHaveNoSpareCapacity(t *testing.T) {
	v, err := Decode([]byte(`[[1,2,3],[],[{"a":[4]}]]`))
	if err != nil {
		t.Fatal(err)
	}
	var check func(v any)
	check = func(v any) {
		switch v := v.(type) {
		case []any:
			if v == nil || len(v) != cap(v) {
				t.Errorf("slice of len %d, cap %d, nil %t", len(v), cap(v), v == nil)
			}
			for _, e := range v {
				check(e)
			}
		case map[string]any:
			for _, e := range v {
				check(e)
			}
		}
	}
	check(v)
}

// FuzzDecodeMatchesEncodingJSON checks that decode accepts exactly what
// encoding/json's Decoder (decodeStd) accepts, and gives the same document
// or fails with the same message.
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, in := range decodeCases() {
		f.Add([]byte(in))
	}
	f.Add(profileJSON(500, 0))
	// Only two of deepCases: mutating and minimizing such long inputs is slow.
	f.Add([]byte(strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)))
	f.Add([]byte(strings.Repeat(`[{"a":`, maxDepth/2+1) + strings.Repeat("}]", maxDepth/2+1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSameAsStd(t, data)
	})
}

// profileJSON returns a game profile of at least size bytes, as Encode
// writes it: compact, keys sorted, a few escapes and non-ASCII strings.
// Profiles of different seeds have the same keys and enumerations but
// different ids and numbers.
func profileJSON(size, seed int) []byte {
	profile := map[string]any{
		"id":      fmt.Sprintf("player-%04d", seed),
		"name":    "Ann \"the Bold\" Émilie",
		"level":   json.Number("17"),
		"xp":      json.Number(fmt.Sprint(123456 + seed)),
		"coins":   json.Number(fmt.Sprint(9876 + 7*seed)),
		"gems":    json.Number("0"),
		"created": "2024-05-01T12:00:00Z",
		"banned":  false,
		"guild":   nil,
		"settings": map[string]any{
			"music": true, "sfx": false, "lang": "en-GB", "volume": json.Number("0.75"),
		},
		"stats": map[string]any{
			"wins": json.Number("112"), "losses": json.Number("31"), "ratio": json.Number("3.6129"),
		},
	}
	rarities := []string{"common", "rare", "epic", "légendaire"}
	item := func(i int) any {
		return map[string]any{
			"id":     fmt.Sprintf("item-%04d-%d", i, seed),
			"qty":    json.Number(fmt.Sprint(1 + i%7)),
			"power":  json.Number(fmt.Sprintf("%d.%d", 10+(i+seed)%90, seed%100)),
			"rarity": rarities[i%len(rarities)],
			"tags":   []any{"melee", fmt.Sprintf("set-%d", i%5)},
			"bound":  i%3 == 0,
		}
	}
	var items []any
	for {
		profile["inventory"] = items
		data, err := json.Marshal(profile)
		if err != nil {
			panic(err)
		}
		if len(data) >= size {
			return data
		}
		// Add about enough items (of some 100 bytes) to reach the size.
		for range max(1, (size-len(data))/200) {
			items = append(items, item(len(items)))
		}
	}
}

// BenchmarkDecode decodes a profile of each size with decode ("new") and
// decodeStd ("old").
//
// Decoding the same document again and again finds all its short strings
// in decode's intern tables, as when a session decodes its profile after
// each change; BenchmarkDecodeVaried measures the other extreme.
func BenchmarkDecode(b *testing.B) {
	benchmarkDecode(b, 1)
}

// BenchmarkDecodeVaried is BenchmarkDecode going round 64 profiles of each
// size that share their keys and enumerations but not their ids and numbers,
// too many for decode's intern tables to hold from one round to the next.
func BenchmarkDecodeVaried(b *testing.B) {
	benchmarkDecode(b, 64)
}

func benchmarkDecode(b *testing.B, profiles int) {
	for _, size := range []struct {
		name string
		n    int
	}{{"500B", 500}, {"4KiB", 4 << 10}, {"64KiB", 64 << 10}} {
		b.Run(size.name, func(b *testing.B) {
			docs := make([][]byte, profiles)
			total := 0
			for i := range docs {
				docs[i] = profileJSON(size.n, i)
				total += len(docs[i])
			}
			for _, impl := range []struct {
				name   string
				decode func([]byte) (any, error)
			}{{"new", decode}, {"old", decodeStd}} {
				b.Run(impl.name, func(b *testing.B) {
					b.SetBytes(int64(total / len(docs)))
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						if _, err := impl.decode(docs[i%len(docs)]); err != nil {
							b.Fatal(err)
						}
						i++
					}
				})
			}
		})
	}
}
