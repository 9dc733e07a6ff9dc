package keys_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/profileledger/profileledger/internal/keys"
)

func TestEncodeTable(t *testing.T) {
	long := strings.Repeat("k", keys.MaxKeyLen)
	tests := []struct {
		name  string
		key   string
		token string // "" means Encode must fail
		why   string // substring of the error
	}{
		{"plain", "user-123", "user-123", ""},
		{"colon", "user:123", "user_3A123", ""},
		{"dot", "a.b", "a_2Eb", ""},
		{"dot star", "a.*", "a_2E_2A", ""},
		{"star", "*", "_2A", ""},
		{"gt", ">", "_3E", ""},
		{"space", "a b", "a_20b", ""},
		{"umlaut", "ü", "_C3_BC", ""},
		{"percent", "%41", "_2541", ""},
		{"underscore", "_", "_5F", ""},
		{"escaped-looking", "_5F", "_5F5F", ""},
		{"slash equals", "a/b=c", "a_2Fb_3Dc", ""},
		{"control chars", "\x00\t\n\x7f", "_00_09_0A_7F", ""},
		{"max length", long, long, ""},
		{"max length escaped", strings.Repeat(".", keys.MaxKeyLen), strings.Repeat("_2E", keys.MaxKeyLen), ""},
		{"empty", "", "", "empty"},
		{"too long", long + "k", "", "257 bytes long, limit is 256"},
		{"invalid utf8", "a\xffb", "", "not valid UTF-8"},
		{"lone continuation", "\x80", "", "not valid UTF-8"},
		{"surrogate", "\xed\xa0\x80", "", "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keys.Encode(tt.key)
			if tt.token == "" {
				if !errors.Is(err, keys.ErrInvalid) {
					t.Fatalf("Encode(%q) error = %v, want ErrInvalid", tt.key, err)
				}
				if !strings.Contains(err.Error(), tt.why) {
					t.Fatalf("Encode(%q) error = %q, want it to mention %q", tt.key, err, tt.why)
				}
				return
			}
			if err != nil {
				t.Fatalf("Encode(%q): %v", tt.key, err)
			}
			if got != tt.token {
				t.Fatalf("Encode(%q) = %q, want %q", tt.key, got, tt.token)
			}
			checkToken(t, got)
			back, err := keys.Decode(got)
			if err != nil {
				t.Fatalf("Decode(%q): %v", got, err)
			}
			if back != tt.key {
				t.Fatalf("Decode(%q) = %q, want %q", got, back, tt.key)
			}
		})
	}
}

func TestDecodeRejectsWhatEncodeCannotProduce(t *testing.T) {
	tests := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"lowercase hex", "_2e"},
		{"escaped letter", "_41"},
		{"escaped digit", "_30"},
		{"escaped dash", "_2D"},
		{"truncated escape", "a_2"},
		{"lone escape", "_"},
		{"non-hex escape", "_G0"},
		{"dot", "a.b"},
		{"star", "*"},
		{"gt", ">"},
		{"space", "a b"},
		{"slash", "a/b"},
		{"equals", "a=b"},
		{"raw non-ascii", "ü"},
		{"invalid utf8 result", "_FF"},
		{"truncated utf8 result", "_C3"},
		{"too long plain", strings.Repeat("k", keys.MaxKeyLen+1)},
		{"too long escaped", strings.Repeat("_2E", keys.MaxKeyLen+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := keys.Decode(tt.token)
			if !errors.Is(err, keys.ErrInvalid) {
				t.Fatalf("Decode(%q) = %q, %v; want ErrInvalid", tt.token, key, err)
			}
		})
	}
}

func TestDistinctKeysGiveDistinctTokens(t *testing.T) {
	candidates := []string{
		"a", "A", "a.b", "a_2Eb", "a_b", "a__b", "a.*", "a.>", "*", ">", "_", "_5F", "__",
		"a b", "a\tb", "ü", "u", "%", "%41", "A", "-", "a-b", "a/b", "a=b", ".", "..",
		"user:123", "user_3A123", "\x00", "0",
	}
	seen := make(map[string]string)
	for _, k := range candidates {
		tok, err := keys.Encode(k)
		if err != nil {
			t.Fatalf("Encode(%q): %v", k, err)
		}
		if prev, ok := seen[tok]; ok && prev != k {
			t.Fatalf("keys %q and %q both encode to %q", prev, k, tok)
		}
		seen[tok] = k
	}
}

func TestCheck(t *testing.T) {
	if err := keys.Check("ok"); err != nil {
		t.Fatalf("Check(ok): %v", err)
	}
	if err := keys.Check(""); !errors.Is(err, keys.ErrInvalid) {
		t.Fatalf("Check(\"\") = %v, want ErrInvalid", err)
	}
}

// checkToken fails t if tok is not a safe single subject token and KV key.
func checkToken(t testing.TB, tok string) {
	t.Helper()
	if tok == "" {
		t.Fatalf("empty token")
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
		if !ok {
			t.Fatalf("token %q has byte %q at offset %d", tok, c, i)
		}
	}
}

func FuzzKeyRoundTrip(f *testing.F) {
	for _, s := range []string{"a.b", "a.*", "*", ">", "a b", "ü", "%41", "_", "_5F", "\x00", "a\xffb", "", strings.Repeat("x", 257)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		tok, err := keys.Encode(key)
		valid := key != "" && len(key) <= keys.MaxKeyLen && utf8.ValidString(key)
		if !valid {
			if !errors.Is(err, keys.ErrInvalid) {
				t.Fatalf("Encode(%q) = %q, %v; want ErrInvalid", key, tok, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Encode(%q): %v", key, err)
		}
		checkToken(t, tok)
		back, err := keys.Decode(tok)
		if err != nil {
			t.Fatalf("Decode(Encode(%q)) = %v", key, err)
		}
		if back != key {
			t.Fatalf("Decode(Encode(%q)) = %q", key, back)
		}
	})
}

// FuzzDecodeStrict checks that every token Decode accepts is the encoding of
// the key it returns. With the round trip above, this makes Encode injective
// and Decode its exact inverse.
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{"a_2Eb", "_5F", "_5f", "_41", "a.b", "_", "_C3_BC", "_FF", "abc", "_2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		key, err := keys.Decode(tok)
		if err != nil {
			if !errors.Is(err, keys.ErrInvalid) {
				t.Fatalf("Decode(%q) error %v does not wrap ErrInvalid", tok, err)
			}
			return
		}
		again, err := keys.Encode(key)
		if err != nil {
			t.Fatalf("Decode(%q) = %q, which Encode rejects: %v", tok, key, err)
		}
		if again != tok {
			t.Fatalf("Decode(%q) = %q, which encodes to %q", tok, key, again)
		}
	})
}
