package projector

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/profileledger/profileledger/ledger"
)

// Diff returns ops that turn a into b: Equal(Apply(a, Diff(a, b)), b) holds
// for all documents, and Diff(a, a) is empty.
//
// Objects are compared member by member: a member only in a is removed, one
// only in b is added, one in both is compared in turn. Arrays keep their
// longest common prefix and suffix; the elements in between are compared
// pairwise by position, the surplus of a is removed and that of b added, or
// the whole array is replaced when that one op is smaller. Anything else that
// differs is replaced. Diff never emits "inc", "move", "copy" or "test".
//
// The result is deterministic: the ops for one object's members come in the
// order of their names (byte-wise, as encoding/json sorts keys). Diff does
// not modify a or b, and subtrees they share are skipped without a look.
// It assumes both are documents that Encode accepts; a value it cannot
// encode gets an op with no Value, which Apply rejects with ErrInvalidValue.
func Diff(a, b any) []ledger.Op {
	var d differ
	d.diff(a, b)
	if len(d.ops) == 0 {
		return nil
	}
	ops := make([]ledger.Op, len(d.ops))
	for i, o := range d.ops {
		ops[i] = ledger.Op{Op: o.op, Path: o.path}
		if o.op != opRemove {
			ops[i].Value = encodeValue(o.value)
		}
	}
	return ops
}

// differ accumulates the ops of one Diff call. Values are encoded only at
// the end, once it is known which ops survive: an array's ops may be
// replaced by one op for the whole array.
type differ struct {
	path  []byte // the pointer to the location being compared
	ops   []pendingOp
	sizes map[containerID]int // memo of encodedSize
}

// size is encodedSize, remembering the sizes of containers: nested arrays
// ask for the sizes of their elements again at every level.
func (d *differ) size(v any, limit int) int {
	if d.sizes == nil {
		d.sizes = make(map[containerID]int)
	}
	return encodedSize(v, limit, d.sizes)
}

// pendingOp is an op whose value is not encoded yet.
type pendingOp struct {
	op, path string
	value    any
	size     int // estimated size of the encoded op
}

func (d *differ) diff(a, b any) {
	ka, kb := kindOf(a), kindOf(b)
	switch {
	case ka == kindObject && kb == kindObject:
		d.objects(a.(map[string]any), b.(map[string]any))
	case ka == kindArray && kb == kindArray:
		d.arrays(a.([]any), b.([]any))
	case !Equal(a, b):
		d.emit(opReplace, b, d.size(b, math.MaxInt))
	}
}

// segment is the ops, d.ops[start:end], emitted for one object member.
type segment struct {
	key        string
	start, end int
}

func (d *differ) objects(a, b map[string]any) {
	if mapID(a) == mapID(b) {
		return
	}
	first, n := len(d.ops), len(d.path)
	var segs []segment
	for k, av := range a {
		start := len(d.ops)
		d.path = appendToken(d.path[:n], k)
		if bv, ok := b[k]; ok {
			d.diff(av, bv)
		} else {
			d.emit(opRemove, nil, 0)
		}
		if len(d.ops) > start {
			segs = append(segs, segment{k, start, len(d.ops)})
		}
	}
	for k, bv := range b {
		if _, ok := a[k]; ok {
			continue
		}
		start := len(d.ops)
		d.path = appendToken(d.path[:n], k)
		d.emit(opAdd, bv, d.size(bv, math.MaxInt))
		segs = append(segs, segment{k, start, len(d.ops)})
	}
	d.path = d.path[:n]
	if len(segs) < 2 {
		return
	}
	// Map iteration order is random; put the members' ops in name order.
	slices.SortFunc(segs, func(x, y segment) int { return strings.Compare(x.key, y.key) })
	sorted := make([]pendingOp, 0, len(d.ops)-first)
	for _, s := range segs {
		sorted = append(sorted, d.ops[s.start:s.end]...)
	}
	copy(d.ops[first:], sorted)
}

func (d *differ) arrays(a, b []any) {
	if sameSlice(a, b) {
		return
	}
	// Keep the longest common prefix and suffix. With equal lengths there is
	// nothing to align: comparing pairwise gives the same ops without
	// walking each element twice.
	p, s := 0, 0
	if len(a) != len(b) {
		for p < len(a) && p < len(b) && Equal(a[p], b[p]) {
			p++
		}
		for s < len(a)-p && s < len(b)-p && Equal(a[len(a)-1-s], b[len(b)-1-s]) {
			s++
		}
	}
	am, bm := a[p:len(a)-s], b[p:len(b)-s]
	first, n := len(d.ops), len(d.path)
	pairs := min(len(am), len(bm))
	for i := range pairs {
		d.path = appendIndex(d.path[:n], p+i)
		d.diff(am[i], bm[i])
	}
	for i := len(am) - 1; i >= pairs; i-- {
		d.path = appendIndex(d.path[:n], p+i)
		d.emit(opRemove, nil, 0)
	}
	for i := pairs; i < len(bm); i++ {
		d.path = appendIndex(d.path[:n], p+i)
		d.emit(opAdd, bm[i], d.size(bm[i], math.MaxInt))
	}
	d.path = d.path[:n]
	if len(d.ops)-first < 2 {
		return
	}
	// One replace of the whole array instead, if that is smaller. The
	// estimate of b's size stops as soon as it is no smaller.
	size := 0
	for _, o := range d.ops[first:] {
		size += o.size
	}
	if whole := d.size(b, size); opSize(len(d.path), whole) < size {
		d.ops = d.ops[:first]
		d.emit(opReplace, b, whole)
	}
}

// emit appends an op at the current path; size estimates its value's JSON.
func (d *differ) emit(op string, value any, size int) {
	path := string(d.path)
	d.ops = append(d.ops, pendingOp{op: op, path: path, value: value, size: opSize(len(path), size)})
}

// encodeValue is v's JSON, or nil if it cannot be encoded.
func encodeValue(v any) json.RawMessage {
	data, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return data
}

func appendIndex(b []byte, i int) []byte {
	return strconv.AppendInt(append(b, '/'), int64(i), 10)
}

// containerID identifies a map (n < 0) or the elements of a slice.
type containerID struct {
	p unsafe.Pointer
	n int
}

// encodedSize estimates the length of v's JSON, giving up as soon as it
// exceeds limit, so that its cost is bounded by limit and not by v. With a
// memo, it looks up and records the exact sizes of containers.
func encodedSize(v any, limit int, memo map[containerID]int) int {
	var id containerID
	switch v := v.(type) {
	case string:
		return len(v) + 2
	case json.Number:
		return len(v)
	case bool:
		return 5
	case []any:
		id = containerID{sliceID(v), len(v)}
	case map[string]any:
		id = containerID{mapID(v), -1}
	default:
		return 4 // null, or a foreign Go value
	}
	if memo != nil && id.p != nil {
		if n, ok := memo[id]; ok {
			return n
		}
	}
	n := 2
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			if n += 1 + encodedSize(e, limit-n, memo); n > limit {
				return n
			}
		}
	case map[string]any:
		for k, e := range v {
			if n += len(k) + 4 + encodedSize(e, limit-n, memo); n > limit {
				return n
			}
		}
	}
	if memo != nil && id.p != nil {
		memo[id] = n
	}
	return n
}

// opSize estimates the encoded size of an op, {"op":"replace","path":"","value":}
// around its path and value.
func opSize(path, value int) int { return 32 + path + value }
