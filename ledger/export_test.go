package ledger

// ParseAck is parseAck, for the black-box tests.
var ParseAck = parseAck

// PoolAfterClose gets a reply subscription as a read does, closes the Log
// (as Close racing that read does), puts the subscription back, and says
// whether it is still subscribed and how many the pool keeps.
func PoolAfterClose(l *Log) (subscribed bool, pooled int, err error) {
	rs, err := l.subs.get(l.nc)
	if err != nil {
		return false, 0, err
	}
	l.Close()
	l.subs.put(rs, true)
	l.subs.mu.Lock()
	defer l.subs.mu.Unlock()
	return rs.sub.IsValid(), len(l.subs.free), nil
}

// DecodeCanonical and DecodeJSON are DecodeEvent's fast path and its
// encoding/json decoding, for the tests that hold them to each other.
var (
	DecodeCanonical = decodeCanonical
	DecodeJSON      = decodeJSON
)
