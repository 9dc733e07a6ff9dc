package projector

import (
	"encoding/json"
	"fmt"
	"maps"
	"unsafe"

	"github.com/profileledger/profileledger/ledger"
)

// Op names.
const (
	opAdd     = "add"
	opRemove  = "remove"
	opReplace = "replace"
	opMove    = "move"
	opCopy    = "copy"
	opTest    = "test"
	opInc     = "inc"
)

// MaxCopySize is the most that the "copy" ops of one Apply call may
// duplicate, in bytes of JSON (approximately). A copy shares the copied
// value instead of duplicating it in memory, so without a limit a short
// list of ops copying the root into itself would make a document whose JSON
// doubles with every op. 4 MiB is the size limit of a Roblox data store key.
const MaxCopySize = 4 << 20

// Apply applies ops to doc in order and returns the new document.
//
// Apply is deterministic and never modifies doc nor anything reachable from
// it: the containers on each changed path are copied and everything else is
// shared with doc (structural sharing), so the result must be treated as
// read-only too. It is all or nothing: if an op fails, Apply returns doc
// itself and an *OpError whose Err wraps ErrUnknownOp, ErrInvalidPath,
// ErrPathNotFound, ErrTypeMismatch, ErrTestFailed, ErrInvalidValue,
// ErrOutOfRange or ErrTooLarge (see MaxCopySize). No input makes it panic.
//
// The ops are RFC 6902 JSON Patch operations with RFC 6901 pointers, plus
// "inc", which adds its Value (a number) to the number at Path: two integers
// that fit int64 add exactly when the sum fits int64, anything else adds in
// float64 and fails if the sum is not finite. The target of "inc" must exist.
func Apply(doc any, ops []ledger.Op) (any, error) {
	if len(ops) == 0 {
		return doc, nil
	}
	// With more than one op, containers copied by an earlier op are changed
	// in place by later ones instead of being copied again.
	x := patcher{track: len(ops) > 1}
	cur := doc
	for i := range ops {
		next, err := x.apply(cur, ops[i])
		if err != nil {
			return doc, &OpError{Index: i, Op: ops[i], Err: err}
		}
		cur = next
	}
	return cur, nil
}

// Fold applies each event's ops to doc, event by event, and returns the
// result. Each event is all or nothing: if one fails, Fold returns the
// document as it was after the last event that applied and a *FoldError
// naming the failing event and wrapping the *OpError. Like Apply, Fold is
// deterministic and never modifies doc.
func Fold(doc any, events []ledger.Event) (any, error) {
	for i := range events {
		next, err := Apply(doc, events[i].Ops)
		if err != nil {
			return doc, &FoldError{Seq: events[i].Seq, ID: events[i].ID, Err: err}
		}
		doc = next
	}
	return doc, nil
}

// patcher applies the ops of one Apply call. It knows which containers it
// allocated itself during the call ("owned"): nobody else can see those, so
// they may be changed in place.
type patcher struct {
	track  bool
	owned  map[unsafe.Pointer]struct{}
	copied int // bytes duplicated by copy ops so far, as encodedSize counts
}

func (x *patcher) apply(doc any, op ledger.Op) (any, error) {
	var needsValue, needsFrom bool
	switch op.Op {
	case opAdd, opReplace, opTest, opInc:
		needsValue = true
	case opMove, opCopy:
		needsFrom = true
	case opRemove:
	default:
		return nil, fmt.Errorf("%w %s (want add, remove, replace, move, copy, test or inc)", ErrUnknownOp, quoteIfOdd(op.Op))
	}
	path, err := parsePointer(op.Path)
	if err != nil {
		return nil, err
	}
	var from pointer
	if needsFrom {
		if from, err = parsePointer(op.From); err != nil {
			return nil, err
		}
	}
	var value any
	if needsValue {
		if value, err = opValue(op); err != nil {
			return nil, err
		}
	}

	switch op.Op {
	case opAdd:
		return x.add(doc, path, value)
	case opRemove:
		return x.remove(doc, path)
	case opReplace:
		return x.update(doc, path, func(any) (any, error) { return value, nil })
	case opMove:
		if path.hasProperPrefix(from) {
			return nil, fmt.Errorf("%w: cannot move %s into its own child %s", ErrInvalidPath, showPath(from.raw), showPath(path.raw))
		}
		v, err := get(doc, from)
		if err != nil {
			return nil, err
		}
		if path.same(from) {
			return doc, nil
		}
		if doc, err = x.remove(doc, from); err != nil {
			return nil, err
		}
		return x.add(doc, path, v)
	case opCopy:
		v, err := get(doc, from)
		if err != nil {
			return nil, err
		}
		// Copies share structure, so a chain of copies could build a
		// document exponentially larger than its log: budget them.
		x.copied += encodedSize(v, MaxCopySize-x.copied, nil)
		if x.copied > MaxCopySize {
			return nil, fmt.Errorf("%w: the copies of one Apply exceed %d bytes", ErrTooLarge, MaxCopySize)
		}
		// v is about to be reachable twice, so nothing may change in place
		// any more: v may hold containers this patcher owns.
		clear(x.owned)
		return x.add(doc, path, v)
	case opTest:
		v, err := get(doc, path)
		if err != nil {
			return nil, err
		}
		if !Equal(v, value) {
			return nil, fmt.Errorf("%w: %s is %s, want %s", ErrTestFailed, where(path.raw), brief(v), brief(value))
		}
		return doc, nil
	default: // opInc
		n, ok := value.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%w: inc needs a number, got %s", ErrInvalidValue, describe(value))
		}
		return x.update(doc, path, func(old any) (any, error) {
			m, ok := old.(json.Number)
			if !ok {
				return nil, fmt.Errorf("%w: %s is %s, not a number", ErrTypeMismatch, where(path.raw), describe(old))
			}
			if !isNumber(m) {
				return nil, fmt.Errorf("%w: %s is %q, not a valid number", ErrTypeMismatch, where(path.raw), string(m))
			}
			return addNumbers(m, n)
		})
	}
}

// opValue decodes op.Value, which must be present and hold one JSON value.
func opValue(op ledger.Op) (any, error) {
	if len(op.Value) == 0 {
		return nil, fmt.Errorf("%w: %s needs a value and has none", ErrInvalidValue, op.Op)
	}
	v, err := decode(op.Value)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	return v, nil
}

// brief is v's JSON, shortened for a message.
func brief(v any) string {
	const max = 64
	data, err := Encode(v)
	if err != nil {
		return describe(v)
	}
	if len(data) > max {
		return string(data[:max]) + "..."
	}
	return string(data)
}

// add implements "add": set a member, insert into an array, or replace the
// whole document.
func (x *patcher) add(doc any, p pointer, v any) (any, error) {
	if p.isRoot() {
		return v, nil
	}
	return x.descend(doc, p, 0, func(parent any) (any, error) {
		switch kindOf(parent) {
		case kindObject:
			m := x.ownMap(parent.(map[string]any))
			m[p.last()] = v
			return m, nil
		case kindArray:
			s := parent.([]any)
			i, err := arrayIndex(s, p, len(p.toks)-1, true)
			if err != nil {
				return nil, err
			}
			return x.insert(s, i, v), nil
		}
		return nil, notContainer(parent, p, len(p.toks)-1)
	})
}

// remove implements "remove": the location must exist and is not the root.
func (x *patcher) remove(doc any, p pointer) (any, error) {
	if p.isRoot() {
		return nil, fmt.Errorf("%w: cannot remove the whole document (replace it instead)", ErrInvalidPath)
	}
	return x.descend(doc, p, 0, func(parent any) (any, error) {
		last := len(p.toks) - 1
		switch kindOf(parent) {
		case kindObject:
			m := parent.(map[string]any)
			if _, ok := m[p.last()]; !ok {
				return nil, fmt.Errorf("%w: no %s", ErrPathNotFound, where(p.raw))
			}
			m = x.ownMap(m)
			delete(m, p.last())
			return m, nil
		case kindArray:
			s := parent.([]any)
			i, err := arrayIndex(s, p, last, false)
			if err != nil {
				return nil, err
			}
			return x.delete(s, i), nil
		}
		return nil, notContainer(parent, p, last)
	})
}

// update replaces the existing value at p by fn of it.
func (x *patcher) update(doc any, p pointer, fn func(old any) (any, error)) (any, error) {
	if p.isRoot() {
		return fn(doc)
	}
	return x.descend(doc, p, 0, func(parent any) (any, error) {
		last := len(p.toks) - 1
		old, err := child(parent, p, last)
		if err != nil {
			return nil, err
		}
		v, err := fn(old)
		if err != nil {
			return nil, err
		}
		if m, ok := parent.(map[string]any); ok {
			m = x.ownMap(m)
			m[p.last()] = v
			return m, nil
		}
		s := x.ownSlice(parent.([]any)) // child succeeded: an array
		i, _ := arrayIndex(s, p, last, false)
		s[i] = v
		return s, nil
	})
}

// descend walks node, the value at the first i tokens of p, down to the
// parent of p's location, calls leaf with that parent, and returns node with
// the parent replaced by leaf's result, copying each container on the way
// unless it is owned. Nothing is changed if leaf fails.
func (x *patcher) descend(node any, p pointer, i int, leaf func(parent any) (any, error)) (any, error) {
	if i == len(p.toks)-1 {
		return leaf(node)
	}
	c, err := child(node, p, i)
	if err != nil {
		return nil, err
	}
	nc, err := x.descend(c, p, i+1, leaf)
	if err != nil {
		return nil, err
	}
	if m, ok := node.(map[string]any); ok {
		m = x.ownMap(m)
		m[p.toks[i]] = nc
		return m, nil
	}
	s := x.ownSlice(node.([]any)) // child succeeded: an array
	j, _ := arrayIndex(s, p, i, false)
	s[j] = nc
	return s, nil
}

// ownMap returns m if this patcher owns it, or else an owned copy.
func (x *patcher) ownMap(m map[string]any) map[string]any {
	if x.owns(mapID(m)) {
		return m
	}
	var c map[string]any
	if len(m) == 0 {
		c = make(map[string]any, 1)
	} else {
		c = maps.Clone(m)
	}
	x.own(mapID(c))
	return c
}

// ownSlice returns s if this patcher owns it, or else an owned copy.
func (x *patcher) ownSlice(s []any) []any {
	if x.owns(sliceID(s)) {
		return s
	}
	c := make([]any, len(s))
	copy(c, s)
	x.own(sliceID(c))
	return c
}

// insert returns s with v inserted at index i (0 <= i <= len(s)).
func (x *patcher) insert(s []any, i int, v any) []any {
	if x.owns(sliceID(s)) {
		s = append(s, nil)
		copy(s[i+1:], s[i:])
		s[i] = v
		x.own(sliceID(s)) // append may have moved it
		return s
	}
	c := make([]any, len(s)+1)
	copy(c, s[:i])
	c[i] = v
	copy(c[i+1:], s[i:])
	x.own(sliceID(c))
	return c
}

// delete returns s without the element at index i (0 <= i < len(s)).
func (x *patcher) delete(s []any, i int) []any {
	if x.owns(sliceID(s)) {
		copy(s[i:], s[i+1:])
		s[len(s)-1] = nil
		return s[:len(s)-1]
	}
	c := make([]any, len(s)-1)
	copy(c, s[:i])
	copy(c[i:], s[i+1:])
	x.own(sliceID(c))
	return c
}

func (x *patcher) owns(id unsafe.Pointer) bool {
	if id == nil || x.owned == nil {
		return false
	}
	_, ok := x.owned[id]
	return ok
}

func (x *patcher) own(id unsafe.Pointer) {
	if !x.track || id == nil {
		return
	}
	if x.owned == nil {
		x.owned = make(map[unsafe.Pointer]struct{})
	}
	x.owned[id] = struct{}{}
}
