package projector_test

import (
	"encoding/json"
	"testing"

	"github.com/profileledger/profileledger/projector"
)

func TestDecodeKeepsNumbersExact(t *testing.T) {
	doc := mustDecode(t, `{"big":123456789012345678901234567890,"f":0.1}`)
	m := doc.(map[string]any)
	if m["big"] != json.Number("123456789012345678901234567890") || m["f"] != json.Number("0.1") {
		t.Errorf("got %#v", m)
	}
}

func TestDecodeRejectsAnythingButOneJSONValue(t *testing.T) {
	for _, in := range []string{``, ` `, `{`, `{} {}`, `[1]]`, `1 x`, `{"a":}`} {
		if _, err := projector.Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%q) succeeded; want an error", in)
		}
	}
	if v, err := projector.Decode([]byte(" null \n")); err != nil || v != nil {
		t.Errorf("Decode(null) = %v, %v; want nil, nil", v, err)
	}
}

func TestEncodeSortsKeys(t *testing.T) {
	doc := mustDecode(t, `{"b":1,"a":[true,null,"x"],"c":{"z":1e3,"y":-0}}`)
	if got, want := mustEncode(t, doc), `{"a":[true,null,"x"],"b":1,"c":{"y":-0,"z":1e3}}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := projector.Encode(json.Number("not a number")); err == nil {
		t.Error("Encode of an invalid json.Number succeeded")
	}
}

func TestEqualComparesJSONValues(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{`1`, `1.0`, true},
		{`1`, `1e0`, true},
		{`10`, `1e1`, true},
		{`1`, `10e-1`, true},
		{`0`, `-0`, true},
		{`0`, `0.000e5`, true},
		{`-1.50`, `-15E-1`, true},
		{`0.001`, `1e-3`, true},
		{`123456789012345678901234567890`, `1.2345678901234567890123456789e29`, true},
		{`1e99999999999999999999999`, `10e99999999999999999999998`, true},
		{`1e99999999999999999999999`, `1e99999999999999999999998`, false},
		{`9007199254740993`, `9007199254740992`, false}, // equal as float64, not as numbers
		{`1`, `-1`, false},
		{`1`, `"1"`, false},
		{`0`, `false`, false},
		{`null`, `false`, false},
		{`null`, `null`, true},
		{`""`, `null`, false},
		{`"a"`, `"a"`, true},
		{`[1,2]`, `[1.0,2e0]`, true},
		{`[1,2]`, `[2,1]`, false},
		{`[1]`, `[1,1]`, false},
		{`[]`, `{}`, false},
		{`{"a":1,"b":[{}]}`, `{"b":[{}],"a":1.0}`, true},
		{`{"a":1}`, `{"a":1,"b":null}`, false},
		{`{"a":null}`, `{"b":null}`, false},
	}
	for _, tt := range tests {
		a, b := mustDecode(t, tt.a), mustDecode(t, tt.b)
		if got := projector.Equal(a, b); got != tt.want {
			t.Errorf("Equal(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := projector.Equal(b, a); got != tt.want {
			t.Errorf("Equal(%s, %s) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestEqualTreatsNilContainersAsNull(t *testing.T) {
	if !projector.Equal(map[string]any(nil), nil) || !projector.Equal([]any(nil), nil) {
		t.Error("a nil map or slice is not equal to null; encoding/json encodes both as null")
	}
	if projector.Equal(map[string]any{}, nil) {
		t.Error("an empty object equals null")
	}
}

func TestEqualComparesOtherGoValuesByTheirJSON(t *testing.T) {
	if !projector.Equal(float64(1), json.Number("1")) || !projector.Equal(map[string]int{"a": 1}, mustDecode(t, `{"a":1}`)) {
		t.Error("Go values are not compared by their JSON form")
	}
	if projector.Equal(float64(1), json.Number("2")) {
		t.Error("1.0 equals 2")
	}
}

func TestDecodeAcceptsOnlyJSONWhiteSpace(t *testing.T) {
	for _, in := range []string{" 1\n", "\t\r\ntrue ", " null"} {
		if _, err := projector.Decode([]byte(in)); err != nil {
			t.Errorf("Decode(%q): %v", in, err)
		}
	}
	for _, in := range []string{"\f1", "1\v", "\u00a0true", "+1", "01", "1.", ".5", "NaN"} {
		if _, err := projector.Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%q) succeeded; want an error", in)
		}
	}
}
