package profileledger

import (
	"container/list"
	"sync"
)

// foldEntry is one profile's fold as a projection last left it.
type foldEntry struct {
	key, token string
	l          loaded
	sinceSnap  int // events folded since the profile's last snapshot, as far as this fold knows
}

// foldCache keeps the folds of the most recently seen profiles, at most
// max of them: a store of a million profiles costs a projection max folds
// of memory, and a profile that fell out is loaded again (snapshot and log
// tail) at its next event.
type foldCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *foldEntry, most recent first
	byTok map[string]*list.Element
}

func newFoldCache(max int) *foldCache {
	return &foldCache{max: max, order: list.New(), byTok: make(map[string]*list.Element)}
}

func (c *foldCache) get(token string) *foldEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byTok[token]
	if !ok {
		return nil
	}
	c.order.MoveToFront(el)
	return el.Value.(*foldEntry)
}

// put keeps e, unless the cache holds a fold of the profile that is
// further along (e is an older message delivered again).
func (c *foldCache) put(e *foldEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byTok[e.token]; ok {
		if el.Value.(*foldEntry).l.fence.Seq > e.l.fence.Seq {
			return
		}
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	c.byTok[e.token] = c.order.PushFront(e)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byTok, last.Value.(*foldEntry).token)
	}
}

func (c *foldCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *foldCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.order.Init()
	clear(c.byTok)
}
