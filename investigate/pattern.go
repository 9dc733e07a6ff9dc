package investigate

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/profileledger/profileledger/projector"
)

// Pattern is a JSON pointer whose tokens may be "*", matching any member
// of an object or element of an array: /inventory/*/id. The empty pattern
// matches every value anywhere in a document.
type Pattern struct {
	raw    string
	tokens []string // unescaped; "*" is the wildcard
}

// ParsePattern parses a pattern ("" or starting with "/").
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, nil
	}
	if !strings.HasPrefix(s, "/") {
		return Pattern{}, fmt.Errorf("investigate: pattern %q does not start with /", s)
	}
	toks := strings.Split(s[1:], "/")
	for i, t := range toks {
		toks[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(t)
	}
	return Pattern{raw: s, tokens: toks}, nil
}

func (p Pattern) String() string { return p.raw }

// Match calls fn with the pointer and value of every location of doc that
// the pattern matches (for the empty pattern: every value, containers
// included, except the root).
func (p Pattern) Match(doc any, fn func(ptr string, v any)) {
	if p.raw == "" {
		walkAll(doc, "", fn)
		return
	}
	match(doc, "", p.tokens, fn)
}

func match(v any, at string, toks []string, fn func(string, any)) {
	if len(toks) == 0 {
		fn(at, v)
		return
	}
	t, rest := toks[0], toks[1:]
	switch x := v.(type) {
	case map[string]any:
		if t == "*" {
			for k, c := range x {
				match(c, at+projector.Pointer(k), rest, fn)
			}
		} else if c, ok := x[t]; ok {
			match(c, at+projector.Pointer(t), rest, fn)
		}
	case []any:
		if t == "*" {
			for i, c := range x {
				match(c, at+"/"+strconv.Itoa(i), rest, fn)
			}
		} else if i, err := strconv.Atoi(t); err == nil && i >= 0 && i < len(x) {
			match(x[i], at+"/"+t, rest, fn)
		}
	}
}

func walkAll(v any, at string, fn func(string, any)) {
	if at != "" {
		fn(at, v)
	}
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			walkAll(c, at+projector.Pointer(k), fn)
		}
	case []any:
		for i, c := range x {
			walkAll(c, at+"/"+strconv.Itoa(i), fn)
		}
	}
}
