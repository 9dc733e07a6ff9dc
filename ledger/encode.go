package ledger

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// appendEvent appends e's wire form to b. The bytes are exactly what
// encoding/json.Marshal(e) writes (the tests hold it to that); only the
// common cases are done here, the rest is handed to encoding/json:
//
//   - a string made only of printable ASCII that needs no escaping is
//     copied; any other string is quoted by encoding/json;
//   - an op's value is copied when it is a JSON number, true, false, null
//     or such a plain string; any other value (objects, arrays, strings
//     with escapes) is checked and compacted by encoding/json, which also
//     fails on a value that is not JSON.
//
// On Mutate's path this is a quarter of encoding/json's cost: the bulk of
// that is the byte-by-byte scan encoding/json makes of every raw value.
func appendEvent(b []byte, e *Event) ([]byte, error) {
	var err error
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(e.V), 10)
	b = append(b, `,"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"session":`...)
	b = appendString(b, e.Session)
	b = append(b, `,"epoch":`...)
	b = strconv.AppendUint(b, e.Epoch, 10)
	b = append(b, `,"time":"`...)
	if b, err = e.Time.AppendText(b); err != nil {
		return nil, fmt.Errorf("event time: %w", err)
	}
	b = append(b, '"')
	if len(e.Ops) > 0 {
		b = append(b, `,"ops":[`...)
		for i := range e.Ops {
			op := &e.Ops[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"op":`...)
			b = appendString(b, op.Op)
			b = append(b, `,"path":`...)
			b = appendString(b, op.Path)
			if op.From != "" {
				b = append(b, `,"from":`...)
				b = appendString(b, op.From)
			}
			if len(op.Value) > 0 {
				b = append(b, `,"value":`...)
				if b, err = appendRaw(b, op.Value); err != nil {
					return nil, fmt.Errorf("op %d (%s %s): %w", i, op.Op, op.Path, err)
				}
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(e.Meta) > 0 {
		keys := make([]string, 0, len(e.Meta))
		for k := range e.Meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"meta":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, e.Meta[k])
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// sizeHint is about the size of e's wire form when nothing in it needs
// escaping, so that appendEvent writes into one allocation.
func (e *Event) sizeHint() int {
	n := 128 + len(e.ID) + len(e.Type) + len(e.Session)
	for i := range e.Ops {
		n += 32 + len(e.Ops[i].Op) + len(e.Ops[i].Path) + len(e.Ops[i].From) + len(e.Ops[i].Value)
	}
	for k, v := range e.Meta {
		n += 6 + len(k) + len(v)
	}
	return n
}

// plain reports whether encoding/json writes s between quotes unchanged:
// printable ASCII other than the quote, the backslash and the three
// characters it escapes for HTML.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func appendString(b []byte, s string) []byte {
	if plain(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, _ := json.Marshal(s) // a string always encodes
	return append(b, q...)
}

// appendRaw appends a raw JSON value as encoding/json would: compacted,
// with <, > and & escaped, or an error if it is not JSON.
func appendRaw(b []byte, v json.RawMessage) ([]byte, error) {
	if simpleValue(v) {
		return append(b, v...), nil
	}
	c, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, c...), nil
}

// simpleValue reports whether v is, exactly and with no surrounding space,
// a JSON number, true, false, null, or a string of plain characters.
func simpleValue(v []byte) bool {
	switch {
	case len(v) == 0:
		return false
	case v[0] == '"':
		return len(v) >= 2 && v[len(v)-1] == '"' && plain(string(v[1:len(v)-1]))
	case v[0] == '-' || v[0] >= '0' && v[0] <= '9':
		return number(v)
	}
	s := string(v)
	return s == "true" || s == "false" || s == "null"
}

// number reports whether v is exactly one JSON number (RFC 8259 §6).
func number(v []byte) bool {
	i := 0
	if v[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(v) && v[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(v) && v[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(v)
}
