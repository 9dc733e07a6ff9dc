// Package keys is the one encoding of profile keys into NATS names.
//
// A profile key is any non-empty, valid UTF-8 string of at most MaxKeyLen
// bytes. Encode turns it into a token that is at the same time a single NATS
// subject token and a valid JetStream KV key: bytes in [A-Za-z0-9-] are kept,
// every other byte (including "_") becomes "_" followed by two uppercase hex
// digits. So "user:123" becomes "user_3A123", "a.b" becomes "a_2Eb" and "_"
// becomes "_5F".
//
// The encoding is injective and reversible: Decode accepts exactly the
// tokens Encode can produce and returns the key they came from. Tokens never
// contain ".", "*", ">", "/", "=" or whitespace, so a key can never act as a
// subject separator or wildcard.
//
// The package is pure: no I/O, no goroutines.
package keys

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxKeyLen is the longest profile key, in bytes, before encoding. An encoded
// token is at most 3*MaxKeyLen bytes.
const MaxKeyLen = 256

// ErrInvalid is returned, wrapped with the reason, by Encode for a key that
// is not a valid profile key and by Decode for a token that Encode could not
// have produced.
var ErrInvalid = errors.New("keys: invalid key")

const (
	escape    = '_'
	upperHex  = "0123456789ABCDEF"
	maxEncLen = 3 * MaxKeyLen
)

// plain reports whether b is kept as is by Encode.
func plain(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-'
}

// Encode returns the token for key. The error wraps ErrInvalid and says what
// is wrong if key is empty, longer than MaxKeyLen bytes or not valid UTF-8.
func Encode(key string) (string, error) {
	if err := Check(key); err != nil {
		return "", err
	}
	n := len(key)
	for i := 0; i < len(key); i++ {
		if !plain(key[i]) {
			n += 2
		}
	}
	if n == len(key) {
		return key, nil
	}
	var b strings.Builder
	b.Grow(n)
	for i := 0; i < len(key); i++ {
		c := key[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte(escape)
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&0x0F])
	}
	return b.String(), nil
}

// Check reports whether key is a valid profile key: non-empty, at most
// MaxKeyLen bytes and valid UTF-8. The error wraps ErrInvalid.
func Check(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalid)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: %d bytes long, limit is %d", ErrInvalid, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalid)
	}
	return nil
}

// Decode returns the key that Encode turned into token. It is strict: it
// rejects every token Encode could not have produced (characters outside
// [A-Za-z0-9_-], an escape not followed by two uppercase hex digits, an
// escaped byte that did not need escaping, or a result that is not a valid
// key). The error wraps ErrInvalid.
func Decode(token string) (string, error) {
	if token == "" {
		return "", fmt.Errorf("%w: empty token", ErrInvalid)
	}
	if len(token) > maxEncLen {
		return "", fmt.Errorf("%w: token is %d bytes long, limit is %d", ErrInvalid, len(token), maxEncLen)
	}
	if !strings.Contains(token, "_") {
		for i := 0; i < len(token); i++ {
			if !plain(token[i]) {
				return "", fmt.Errorf("%w: token has byte %#02x at offset %d", ErrInvalid, token[i], i)
			}
		}
		if len(token) > MaxKeyLen {
			return "", fmt.Errorf("%w: %d bytes long, limit is %d", ErrInvalid, len(token), MaxKeyLen)
		}
		return token, nil
	}
	out := make([]byte, 0, len(token))
	for i := 0; i < len(token); i++ {
		c := token[i]
		if plain(c) {
			out = append(out, c)
			continue
		}
		if c != escape {
			return "", fmt.Errorf("%w: token has byte %#02x at offset %d", ErrInvalid, c, i)
		}
		if i+2 >= len(token) {
			return "", fmt.Errorf("%w: truncated escape at offset %d", ErrInvalid, i)
		}
		hi, ok1 := unhex(token[i+1])
		lo, ok2 := unhex(token[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("%w: escape at offset %d is not followed by two uppercase hex digits", ErrInvalid, i)
		}
		v := hi<<4 | lo
		if plain(v) {
			return "", fmt.Errorf("%w: escape at offset %d encodes %q, which is never escaped", ErrInvalid, i, v)
		}
		out = append(out, v)
		i += 2
	}
	key := string(out)
	if err := Check(key); err != nil {
		return "", err
	}
	return key, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
