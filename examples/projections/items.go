package projections

import (
	"context"
	"slices"
	"sync"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
)

// Dupe is an item found live in two profiles at once (or twice in one).
type Dupe struct {
	// Item is the item's id.
	Item string `json:"item"`
	// Owners are the profiles holding it, sorted; one key twice if one
	// profile holds it twice.
	Owners []string `json:"owners"`
	// Key, Seq and EventID name the event that made it a dupe.
	Key     string `json:"key"`
	Seq     uint64 `json:"seq"`
	EventID string `json:"event_id"`
}

// ItemIndex is an item-owner index (item id -> profile key) of a store
// whose profiles hold unique items (gems, serial-numbered swords). It
// flags a dupe as the event that makes one is folded: an item added to a
// profile while another still holds it. An atomic trade's two halves are
// two messages; the half that adds an item may come before the half that
// removes it, so an item the trade's counterpart holds is judged once
// both halves are folded.
//
// The index lives in memory: run its projection with
// profileledger.ProjectFromStart, so that it is rebuilt from the log at
// each start. It is safe for concurrent use.
type ItemIndex[T any] struct {
	items  func(*T) []string
	onDupe func(Dupe)

	mu      sync.Mutex
	owners  map[string][]string // item -> keys holding it (a key twice if held twice)
	held    map[string][]string // key -> its items, as last folded
	at      map[string][2]uint64
	pending map[string][]pendingItem // trade id -> items to judge at its other half
	halves  map[string]string        // trade id -> the key of the half folded first
	dupes   []Dupe
}

type pendingItem struct {
	item string
	d    Dupe
}

// NewItemIndex returns an empty index of the items items returns for a
// profile's data; onDupe (if not nil) is called for each dupe found, on
// the projection's goroutine.
func NewItemIndex[T any](items func(*T) []string, onDupe func(Dupe)) *ItemIndex[T] {
	return &ItemIndex[T]{
		items: items, onDupe: onDupe,
		owners: map[string][]string{}, held: map[string][]string{}, at: map[string][2]uint64{},
		pending: map[string][]pendingItem{}, halves: map[string]string{},
	}
}

// Handle is the index's profileledger.Handler.
func (x *ItemIndex[T]) Handle(ctx context.Context, c *profileledger.Change[T]) error {
	after, err := c.After()
	if err != nil {
		return err
	}
	now := slices.Clone(x.items(&after))
	slices.Sort(now)
	x.mu.Lock()
	defer x.mu.Unlock()
	pos := [2]uint64{c.Event.Seq, uint64(c.Event.Index)}
	if last, ok := x.at[c.Key]; ok && (pos[0] < last[0] || pos[0] == last[0] && pos[1] <= last[1]) {
		return nil // folded already: a redelivery
	}
	x.at[c.Key] = pos
	was := x.held[c.Key]
	x.held[c.Key] = now
	for _, it := range was {
		x.owners[it] = removeOne(x.owners[it], c.Key)
		if len(x.owners[it]) == 0 {
			delete(x.owners, it)
		}
	}
	var added []string
	for _, it := range now {
		x.owners[it] = append(x.owners[it], c.Key)
		slices.Sort(x.owners[it])
		if !slices.Contains(was, it) || count(now, it) > count(was, it) {
			added = append(added, it)
		}
	}
	trade, with := c.Event.Meta[ledger.MetaTrade], c.Event.Meta[ledger.MetaWith]
	first, second := false, false
	if trade != "" && with != c.Key {
		if k, ok := x.halves[trade]; !ok {
			x.halves[trade], first = c.Key, true
		} else if k != c.Key {
			second = true
		}
	}
	for _, it := range added {
		owners := x.owners[it]
		if len(owners) < 2 {
			continue
		}
		d := Dupe{Item: it, Owners: slices.Clone(owners), Key: c.Key, Seq: c.Event.Seq, EventID: c.Event.ID}
		if first && len(owners) == 2 && slices.Contains(owners, with) {
			// The trade's other half, next in the log, may remove it.
			x.pending[trade] = append(x.pending[trade], pendingItem{it, d})
			continue
		}
		x.flag(d)
	}
	if second {
		// The first half's items: still in two places once both halves
		// are folded?
		for _, p := range x.pending[trade] {
			if owners := x.owners[p.item]; len(owners) > 1 {
				p.d.Owners = slices.Clone(owners)
				x.flag(p.d)
			}
		}
		delete(x.pending, trade)
		delete(x.halves, trade)
	}
	return nil
}

func (x *ItemIndex[T]) flag(d Dupe) {
	x.dupes = append(x.dupes, d)
	if x.onDupe != nil {
		x.onDupe(d)
	}
}

// Owners returns the profiles holding item, sorted (nil: nobody).
func (x *ItemIndex[T]) Owners(item string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.owners[item])
}

// Index returns a copy of the whole index: item -> profiles holding it.
func (x *ItemIndex[T]) Index() map[string][]string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make(map[string][]string, len(x.owners))
	for it, o := range x.owners {
		out[it] = slices.Clone(o)
	}
	return out
}

// Dupes returns every dupe found so far, in the order found.
func (x *ItemIndex[T]) Dupes() []Dupe {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.dupes)
}

func removeOne(s []string, v string) []string {
	if i := slices.Index(s, v); i >= 0 {
		return slices.Delete(slices.Clone(s), i, i+1)
	}
	return s
}

func count(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}
