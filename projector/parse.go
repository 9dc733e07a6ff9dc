package projector

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math/bits"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is decode's JSON parser: a recursive descent over the input that
// builds the document directly. It accepts exactly what encoding/json's
// Decoder accepts and produces what the Decoder with UseNumber produces into
// an any, byte for byte (FuzzDecodeMatchesEncodingJSON checks both against
// the Decoder), including its error messages:
//
//   - strings are unescaped as encoding/json's unquote does: \uXXXX pairs
//     that form a valid surrogate pair become one rune, any other surrogate
//     escape becomes U+FFFD, and each byte that is not part of valid UTF-8
//     becomes U+FFFD; control characters below U+0020 are syntax errors;
//   - numbers must match the JSON number grammar and keep their exact text;
//   - an object's later duplicate key wins;
//   - more than maxDepth nested arrays and objects is an error;
//   - an input that ends inside the value is io.ErrUnexpectedEOF, as is one
//     that is empty or all white space;
//   - anything but white space after the value is errTrailing.

// maxDepth is encoding/json's maxNestingDepth: how deeply arrays and objects
// may nest.
const maxDepth = 10000

var errTrailing = errors.New("trailing data after the JSON value")

// parser holds the state of one decode.
type parser struct {
	data  []byte
	i     int // next byte to read
	depth int // arrays and objects open around data[i]
	err   error
	*scratch
}

// scratch is a parser's memory that outlives a decode, kept in scratchPool
// for the next one.
type scratch struct {
	// Stacks of the elements and members of the open arrays and objects,
	// shared by all levels: a container's own start at its mark, and are
	// copied out into a slice or map of the exact size when it closes.
	elems   []any
	members []member
	buf     []byte // a string being unescaped

	// How much of elems and members a decode has used, to be cleared.
	elemsUsed, membersUsed int

	// Recently seen short keys, strings and numbers, by hash. Documents
	// repeat keys (arrays of similar objects, one schema for every profile)
	// and values (enumerations, small numbers): sharing one string or box
	// saves allocations, while decoding and in the documents kept. Entries
	// are immutable, so any decode may use any other's.
	keys    [internSize]internEntry // v unused
	strs    [internSize]internEntry // v a string
	numbers [internSize]internEntry // v a json.Number
}

// internEntry is an intern table's entry: text, its hash's tag (0 if the
// entry is empty) and, for values, text in an any.
type internEntry struct {
	tag  uint32
	text string
	v    any
}

type member struct {
	key string
	val any
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// Bounds on what a pooled scratch keeps of the memory a decode grew.
const (
	maxPooledStack = 1 << 12
	maxPooledBuf   = 1 << 16
)

// putScratch returns s to the pool, holding no document's values.
func putScratch(s *scratch) {
	clear(s.elems[:max(s.elemsUsed, len(s.elems))])
	clear(s.members[:max(s.membersUsed, len(s.members))])
	s.elemsUsed, s.membersUsed = 0, 0
	s.elems, s.members, s.buf = s.elems[:0], s.members[:0], s.buf[:0]
	if cap(s.elems) > maxPooledStack {
		s.elems = nil
	}
	if cap(s.members) > maxPooledStack {
		s.members = nil
	}
	if cap(s.buf) > maxPooledBuf {
		s.buf = nil
	}
	scratchPool.Put(s)
}

// decode is Decode without the error prefix, for callers that add their own.
func decode(data []byte) (any, error) {
	p := parser{data: data, scratch: scratchPool.Get().(*scratch)}
	v, err := p.document()
	putScratch(p.scratch)
	return v, err
}

// document parses the data as one JSON value followed by nothing but white
// space.
func (p *parser) document() (any, error) {
	p.skipSpace()
	if p.i == len(p.data) {
		return nil, io.ErrUnexpectedEOF
	}
	v := p.value()
	if p.err != nil {
		return nil, p.err
	}
	p.skipSpace()
	if p.i != len(p.data) {
		return nil, errTrailing
	}
	return v, nil
}

// internBits is log2 of the size of each intern table, maxIntern the
// longest text interned.
const (
	internBits = 8
	internSize = 1 << internBits
	maxIntern  = 32
)

// hash hashes b, of at most maxIntern bytes, for the intern tables: the
// index of its entry and a tag, never 0, to tell most other texts from it
// without reading them. It reads at most 32 bytes, enough for a table.
func hash(b []byte) (index, tag uint32) {
	n := len(b)
	x := uint64(n)
	switch {
	case n > 16:
		x ^= binary.LittleEndian.Uint64(b[8:]) * 0xff51afd7ed558ccd
		x ^= binary.LittleEndian.Uint64(b[n-16:]) * 0xc4ceb9fe1a85ec53
		fallthrough
	case n >= 8:
		x ^= binary.LittleEndian.Uint64(b) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(b[n-8:]), 31)
	case n >= 4:
		x ^= uint64(binary.LittleEndian.Uint32(b))<<8 ^ uint64(binary.LittleEndian.Uint32(b[n-4:]))<<32
	case n > 0:
		x ^= uint64(b[0])<<8 | uint64(b[n/2])<<16 | uint64(b[n-1])<<24
	}
	x *= 0x9e3779b97f4a7c15
	return uint32(x >> (64 - internBits)), uint32(x) | 1
}

// key returns b as a string, interned.
func (p *parser) key(b []byte) string {
	if len(b) > maxIntern {
		return string(b)
	}
	i, tag := hash(b)
	e := &p.keys[i]
	if e.tag == tag && e.text == string(b) {
		return e.text
	}
	e.tag, e.text = tag, string(b)
	return e.text
}

// str returns b as a string in an any, interned.
func (p *parser) str(b []byte) any {
	if len(b) > maxIntern {
		return string(b)
	}
	i, tag := hash(b)
	e := &p.strs[i]
	if e.tag == tag && e.text == string(b) {
		return e.v
	}
	e.tag, e.text = tag, string(b)
	e.v = e.text
	return e.v
}

// num returns b as a json.Number in an any, interned.
func (p *parser) num(b []byte) any {
	if len(b) == 1 {
		return smallInts[b[0]-'0']
	}
	if len(b) > maxIntern {
		return json.Number(b)
	}
	i, tag := hash(b)
	e := &p.numbers[i]
	if e.tag == tag && e.text == string(b) {
		return e.v
	}
	e.tag, e.text = tag, string(b)
	e.v = json.Number(e.text)
	return e.v
}

// fail records a syntax error at data[i], worded as encoding/json words it
// (context says what was expected), and returns nil for the caller to
// return.
func (p *parser) fail(i int, context string) any {
	p.err = errors.New("invalid character " + quoteChar(p.data[i]) + " " + context)
	return nil
}

// eof records that the input ended inside the value.
func (p *parser) eof() any {
	p.err = io.ErrUnexpectedEOF
	return nil
}

// quoteChar formats c as encoding/json's syntax errors do.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

// skipSpace advances past JSON white space.
func (p *parser) skipSpace() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// smallInts are the one-digit numbers, boxed once.
var smallInts = [10]any{
	json.Number("0"), json.Number("1"), json.Number("2"), json.Number("3"), json.Number("4"),
	json.Number("5"), json.Number("6"), json.Number("7"), json.Number("8"), json.Number("9"),
}

// value parses the value at data[i], which must exist and not be white
// space. On error it sets p.err and returns nil.
func (p *parser) value() any {
	switch c := p.data[p.i]; c {
	case '{':
		return p.object()
	case '[':
		return p.array()
	case '"':
		b, ok := p.string()
		if !ok {
			return nil
		}
		return p.str(b)
	case 't':
		return p.literal("true", true)
	case 'f':
		return p.literal("false", false)
	case 'n':
		return p.literal("null", nil)
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return p.number()
		}
		return p.fail(p.i, "looking for beginning of value")
	}
}

// literal parses the literal word, which starts at data[i], as v.
func (p *parser) literal(word string, v any) any {
	d := p.data[p.i:]
	if len(d) >= len(word) && string(d[:len(word)]) == word {
		p.i += len(word)
		return v
	}
	for j := 1; j < len(word); j++ {
		if j == len(d) {
			return p.eof()
		}
		if d[j] != word[j] {
			return p.fail(p.i+j, "in literal "+word+" (expecting "+quoteChar(word[j])+")")
		}
	}
	panic("unreachable")
}

// number parses the number at data[i], which starts with '-' or a digit.
func (p *parser) number() any {
	d := p.data
	start, i := p.i, p.i
	if d[i] == '-' {
		i++
		if i == len(d) {
			return p.eof()
		}
	}
	switch c := d[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		i++
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return p.fail(i, "in numeric literal")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i == len(d) {
			return p.eof()
		}
		if d[i] < '0' || d[i] > '9' {
			return p.fail(i, "after decimal point in numeric literal")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i == len(d) {
			return p.eof()
		}
		if d[i] < '0' || d[i] > '9' {
			return p.fail(i, "in exponent of numeric literal")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	p.i = i
	return p.num(d[start:i])
}

// plain marks the bytes that stand for themselves in a string: ASCII but
// for control characters, '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// string parses the string at data[i], which starts with '"', and returns
// its unescaped text: in data or in p.buf, valid until the next call. On
// error it sets p.err and returns false.
func (p *parser) string() ([]byte, bool) {
	d := p.data
	start := p.i + 1
	i := start
	for i < len(d) {
		if plain[d[i]] {
			i++
			continue
		}
		c := d[i]
		if c == '"' {
			p.i = i + 1
			return d[start:i], true
		}
		if c < utf8.RuneSelf {
			break // an escape or a control character
		}
		r, size := utf8.DecodeRune(d[i:])
		if r == utf8.RuneError && size == 1 {
			break // invalid UTF-8, to be replaced
		}
		i += size
	}
	return p.unescape(start, i)
}

// unescape parses the rest of the string that started at data[start] and
// needs unescaping from data[i] on.
func (p *parser) unescape(start, i int) ([]byte, bool) {
	d := p.data
	b := append(p.buf[:0], d[start:i]...)
	for i < len(d) {
		c := d[i]
		switch {
		case plain[c]:
			j := i + 1
			for j < len(d) && plain[d[j]] {
				j++
			}
			b = append(b, d[i:j]...)
			i = j
		case c == '"':
			p.i = i + 1
			p.buf = b
			return b, true
		case c == '\\':
			i++
			if i == len(d) {
				p.eof()
				return nil, false
			}
			switch d[i] {
			case '"', '\\', '/':
				b = append(b, d[i])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := p.hex4(i + 1)
				if !ok {
					return nil, false
				}
				i += 4
				if utf16.IsSurrogate(r) {
					// As encoding/json: a valid pair is one rune, anything
					// else U+FFFD, and the next escape is then read alone.
					if r2, ok := peekHex4(d, i+1); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							b = utf8.AppendRune(b, dec)
							i += 7
							continue
						}
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
			default:
				p.fail(i, "in string escape code")
				return nil, false
			}
			i++
		case c < ' ':
			p.fail(i, "in string literal")
			return nil, false
		default: // not ASCII
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, d[i:i+size]...)
			}
			i += size
		}
	}
	p.eof()
	return nil, false
}

// hex4 parses the four hex digits of a \u escape at data[i:].
func (p *parser) hex4(i int) (rune, bool) {
	var r rune
	for j := i; j < i+4; j++ {
		if j == len(p.data) {
			p.eof()
			return 0, false
		}
		h := hexValue(p.data[j])
		if h < 0 {
			p.fail(j, "in \\u hexadecimal character escape")
			return 0, false
		}
		r = r<<4 | h
	}
	return r, true
}

// peekHex4 reports the rune of the \uXXXX escape at d[i:], if there is one.
func peekHex4(d []byte, i int) (rune, bool) {
	if len(d)-i < 6 || d[i] != '\\' || d[i+1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range d[i+2 : i+6] {
		h := hexValue(c)
		if h < 0 {
			return 0, false
		}
		r = r<<4 | h
	}
	return r, true
}

func hexValue(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// next skips white space and returns the byte after it, or sets p.err and
// returns false at the end of the data.
func (p *parser) next() (byte, bool) {
	d, i := p.data, p.i
	for ; i < len(d); i++ {
		if c := d[i]; c > ' ' || c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			p.i = i
			return c, true
		}
	}
	p.i = i
	p.err = io.ErrUnexpectedEOF
	return 0, false
}

// array parses the array at data[i], which starts with '['.
func (p *parser) array() any {
	if p.depth++; p.depth > maxDepth {
		return p.fail(p.i, "exceeded max depth")
	}
	p.i++
	c, ok := p.next()
	if !ok {
		return nil
	}
	if c == ']' {
		p.i++
		p.depth--
		return []any{}
	}
	mark := len(p.elems)
	for {
		v := p.value()
		if p.err != nil {
			return nil
		}
		p.elems = append(p.elems, v)
		if c, ok = p.next(); !ok {
			return nil
		}
		p.i++
		if c == ']' {
			break
		}
		if c != ',' {
			return p.fail(p.i-1, "after array element")
		}
		if _, ok = p.next(); !ok {
			return nil
		}
	}
	elems := p.elems[mark:]
	a := make([]any, len(elems))
	copy(a, elems)
	p.elemsUsed = max(p.elemsUsed, len(p.elems))
	p.elems = p.elems[:mark]
	p.depth--
	return a
}

// object parses the object at data[i], which starts with '{'.
func (p *parser) object() any {
	if p.depth++; p.depth > maxDepth {
		return p.fail(p.i, "exceeded max depth")
	}
	p.i++
	c, ok := p.next()
	if !ok {
		return nil
	}
	if c == '}' {
		p.i++
		p.depth--
		return map[string]any{}
	}
	// Members go straight into a map of the smallest size; those beyond
	// what it holds wait on p.members for a map that fits them all.
	m := make(map[string]any)
	n, mark := 0, len(p.members)
	for {
		if c != '"' {
			return p.fail(p.i, "looking for beginning of object key string")
		}
		b, ok := p.string()
		if !ok {
			return nil
		}
		k := p.key(b)
		if c, ok = p.next(); !ok {
			return nil
		}
		if c != ':' {
			return p.fail(p.i, "after object key")
		}
		p.i++
		if _, ok = p.next(); !ok {
			return nil
		}
		v := p.value()
		if p.err != nil {
			return nil
		}
		if n++; n <= smallMap {
			m[k] = v // a later duplicate wins
		} else {
			p.members = append(p.members, member{k, v})
		}
		if c, ok = p.next(); !ok {
			return nil
		}
		p.i++
		if c == '}' {
			break
		}
		if c != ',' {
			return p.fail(p.i-1, "after object key:value pair")
		}
		if c, ok = p.next(); !ok {
			return nil
		}
	}
	if n > smallMap {
		if n > 2*smallMap {
			// Better one map of the right size than growing m many times.
			big := make(map[string]any, n)
			for k, v := range m {
				big[k] = v
			}
			m = big
		}
		for _, kv := range p.members[mark:] {
			m[kv.key] = kv.val // in order: a later duplicate wins
		}
		p.membersUsed = max(p.membersUsed, len(p.members))
		p.members = p.members[:mark]
	}
	p.depth--
	return m
}

// smallMap is how many members a map made without a size hint holds before
// it grows (a swiss table's group).
const smallMap = 8
