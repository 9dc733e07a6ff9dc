package projector

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Pointer returns the RFC 6901 JSON Pointer to the location reached by
// following tokens (object member names or array indexes) from the root,
// escaping "~" as "~0" and "/" as "~1". Pointer() is "", the whole document.
func Pointer(tokens ...string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(escapeToken(t))
	}
	return b.String()
}

var tokenEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escapeToken(t string) string {
	if !strings.ContainsAny(t, "~/") {
		return t
	}
	return tokenEscaper.Replace(t)
}

// appendToken appends "/" and the escaped token t to b.
func appendToken(b []byte, t string) []byte {
	b = append(b, '/')
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '~':
			b = append(b, '~', '0')
		case '/':
			b = append(b, '~', '1')
		default:
			b = append(b, t[i])
		}
	}
	return b
}

// Get returns the value at the RFC 6901 pointer path in doc. The result is
// shared with doc: treat it as read-only. Errors wrap ErrInvalidPath or
// ErrPathNotFound.
func Get(doc any, path string) (any, error) {
	p, err := parsePointer(path)
	if err != nil {
		return nil, err
	}
	return get(doc, p)
}

// pointer is a parsed RFC 6901 JSON Pointer.
type pointer struct {
	raw  string   // as written
	toks []string // unescaped reference tokens
	ends []int    // raw[:ends[i]] is the pointer to toks[i]
}

// parsePointer parses s, failing with ErrInvalidPath when s is neither ""
// nor starts with "/", or when a "~" is not followed by "0" or "1".
func parsePointer(s string) (pointer, error) {
	p := pointer{raw: s}
	if s == "" {
		return p, nil
	}
	if s[0] != '/' {
		return pointer{}, fmt.Errorf("%w: %s does not start with \"/\"", ErrInvalidPath, strconv.Quote(s))
	}
	n := strings.Count(s, "/")
	p.toks = make([]string, 0, n)
	p.ends = make([]int, 0, n)
	start := 1
	for i := 1; i <= len(s); i++ {
		if i < len(s) && s[i] != '/' {
			continue
		}
		tok, ok := unescapeToken(s[start:i])
		if !ok {
			return pointer{}, fmt.Errorf("%w: %s has a \"~\" not followed by \"0\" or \"1\"", ErrInvalidPath, strconv.Quote(s))
		}
		p.toks = append(p.toks, tok)
		p.ends = append(p.ends, i)
		start = i + 1
	}
	return p, nil
}

// unescapeToken turns "~1" into "/" and "~0" into "~", and reports false for
// any other use of "~".
func unescapeToken(t string) (string, bool) {
	i := strings.IndexByte(t, '~')
	if i < 0 {
		return t, true
	}
	var b strings.Builder
	b.Grow(len(t))
	b.WriteString(t[:i])
	for ; i < len(t); i++ {
		c := t[i]
		if c != '~' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(t) {
			return "", false
		}
		i++
		switch t[i] {
		case '0':
			b.WriteByte('~')
		case '1':
			b.WriteByte('/')
		default:
			return "", false
		}
	}
	return b.String(), true
}

// isRoot reports whether p is "", the whole document.
func (p pointer) isRoot() bool { return len(p.toks) == 0 }

// last is the final token: the member name or index within the parent.
func (p pointer) last() string { return p.toks[len(p.toks)-1] }

// upTo is the pointer to the location after the first n tokens.
func (p pointer) upTo(n int) string {
	if n == 0 {
		return ""
	}
	return p.raw[:p.ends[n-1]]
}

// hasProperPrefix reports whether q is a proper prefix of p, token by token.
func (p pointer) hasProperPrefix(q pointer) bool {
	return len(q.toks) < len(p.toks) && slices.Equal(p.toks[:len(q.toks)], q.toks)
}

// same reports whether p and q name the same location.
func (p pointer) same(q pointer) bool { return slices.Equal(p.toks, q.toks) }

// arrayIndex resolves token i of p within array s. With end set (for "add"),
// "-" and len(s) name the position after the last element. A token that is
// not a canonical decimal is ErrInvalidPath; an index out of range is
// ErrPathNotFound.
func arrayIndex(s []any, p pointer, i int, end bool) (int, error) {
	tok := p.toks[i]
	if tok == "-" {
		if end {
			return len(s), nil
		}
		return 0, fmt.Errorf("%w: no %s (\"-\" is past the end of the array)", ErrPathNotFound, where(p.upTo(i+1)))
	}
	if !canonicalIndex(tok) {
		return 0, fmt.Errorf("%w: %s is not an array index in %s", ErrInvalidPath, strconv.Quote(tok), showPath(p.raw))
	}
	n, err := strconv.Atoi(tok)
	limit := len(s)
	if end {
		limit++
	}
	if err != nil || n >= limit {
		return 0, fmt.Errorf("%w: no %s (the array has %d elements)", ErrPathNotFound, where(p.upTo(i+1)), len(s))
	}
	return n, nil
}

// canonicalIndex reports whether t is "0" or a decimal without leading zeros.
func canonicalIndex(t string) bool {
	if t == "" || (t[0] == '0' && len(t) > 1) {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return false
		}
	}
	return true
}

// get returns the value at p in doc.
func get(doc any, p pointer) (any, error) {
	v := doc
	for i := range p.toks {
		c, err := child(v, p, i)
		if err != nil {
			return nil, err
		}
		v = c
	}
	return v, nil
}

// child returns the value named by token i of p in node, the value at the
// first i tokens of p.
func child(node any, p pointer, i int) (any, error) {
	switch kindOf(node) {
	case kindObject:
		v, ok := node.(map[string]any)[p.toks[i]]
		if !ok {
			return nil, fmt.Errorf("%w: no %s", ErrPathNotFound, where(p.upTo(i+1)))
		}
		return v, nil
	case kindArray:
		s := node.([]any)
		j, err := arrayIndex(s, p, i, false)
		if err != nil {
			return nil, err
		}
		return s[j], nil
	}
	return nil, notContainer(node, p, i)
}

// notContainer is the error for stepping into node, the value at the first
// i tokens of p, which is neither an object nor an array.
func notContainer(node any, p pointer, i int) error {
	return fmt.Errorf("%w: %s is %s, not an object or array", ErrPathNotFound, where(p.upTo(i)), describe(node))
}
