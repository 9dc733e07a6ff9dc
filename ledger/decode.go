package ledger

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// decodeCanonical parses data if it is exactly what appendEvent writes for
// an event whose strings are plain (printable ASCII that needs no escape)
// and whose op values are numbers, true, false, null or plain strings:
// the members in appendEvent's order, no space, no escapes, numbers
// without leading zeros. It reports false for anything else, and the
// caller decodes with encoding/json; for every input it accepts, the
// result is the one encoding/json gives (FuzzDecodeReadsWhatEncodingJSONReads
// holds it to that). On a projection's path it is several times cheaper
// than encoding/json, which scans every byte through reflection.
func decodeCanonical(data []byte) (Event, bool) {
	p := canonParser{b: data}
	var e Event
	var ok bool
	if !p.lit(`{"v":`) {
		return Event{}, false
	}
	var v uint64
	if v, ok = p.uint(); !ok || v > 1<<31 {
		return Event{}, false
	}
	e.V = int(v)
	if !p.lit(`,"id":`) {
		return Event{}, false
	}
	if e.ID, ok = p.str(); !ok || !p.lit(`,"type":`) {
		return Event{}, false
	}
	if e.Type, ok = p.str(); !ok || !p.lit(`,"session":`) {
		return Event{}, false
	}
	if e.Session, ok = p.str(); !ok || !p.lit(`,"epoch":`) {
		return Event{}, false
	}
	if e.Epoch, ok = p.uint(); !ok || !p.lit(`,"time":`) {
		return Event{}, false
	}
	// time.Time.UnmarshalText parses what encoding/json's
	// time.Time.UnmarshalJSON parses between the quotes.
	ts, ok := p.rawStr()
	if !ok || e.Time.UnmarshalText(ts) != nil {
		return Event{}, false
	}
	if p.lit(`,"ops":[`) {
		for i := 0; ; i++ {
			if i > 0 && !p.lit(",") {
				return Event{}, false
			}
			var op Op
			if !p.lit(`{"op":`) {
				return Event{}, false
			}
			if op.Op, ok = p.str(); !ok || !p.lit(`,"path":`) {
				return Event{}, false
			}
			if op.Path, ok = p.str(); !ok {
				return Event{}, false
			}
			if p.lit(`,"from":`) {
				if op.From, ok = p.str(); !ok || op.From == "" {
					return Event{}, false
				}
			}
			if p.lit(`,"value":`) {
				if op.Value, ok = p.value(); !ok {
					return Event{}, false
				}
			}
			if !p.lit("}") {
				return Event{}, false
			}
			e.Ops = append(e.Ops, op)
			if p.lit("]") {
				break
			}
		}
	}
	if p.lit(`,"meta":{`) {
		e.Meta = make(map[string]string, 4)
		for i := 0; ; i++ {
			if i > 0 && !p.lit(",") {
				return Event{}, false
			}
			k, ok := p.str()
			if !ok || !p.lit(":") {
				return Event{}, false
			}
			if e.Meta[k], ok = p.str(); !ok {
				return Event{}, false
			}
			if p.lit("}") {
				break
			}
		}
	}
	if !p.lit("}") || p.i != len(p.b) {
		return Event{}, false
	}
	return e, true
}

// canonParser reads data from b[i:].
type canonParser struct {
	b []byte
	i int
}

// lit consumes s if it comes next.
func (p *canonParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// uint consumes an unsigned decimal without leading zeros that fits in 64
// bits.
func (p *canonParser) uint() (uint64, bool) {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	digits := p.b[start:p.i]
	if len(digits) == 0 || len(digits) > 1 && digits[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(digits), 10, 64)
	return n, err == nil
}

// rawStr consumes a plain string and returns its contents (not copied).
func (p *canonParser) rawStr() ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		c := p.b[j]
		switch {
		case c == '"':
			p.i = j + 1
			return p.b[start:j], true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, false // escapes, control or non-ASCII bytes: encoding/json's to judge
		}
	}
	return nil, false
}

// str consumes a plain string.
func (p *canonParser) str() (string, bool) {
	b, ok := p.rawStr()
	return string(b), ok
}

// value consumes an op value that simpleValue accepts (a number, true,
// false, null or a plain string) and returns a copy of its bytes.
func (p *canonParser) value() (json.RawMessage, bool) {
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '"' {
		if _, ok := p.rawStr(); !ok {
			return nil, false
		}
	} else {
		end := bytes.IndexAny(p.b[p.i:], ",}")
		if end < 0 {
			return nil, false
		}
		p.i += end
	}
	v := p.b[start:p.i]
	if !simpleValue(v) {
		return nil, false
	}
	return bytes.Clone(v), true
}
