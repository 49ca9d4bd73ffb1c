package tlsstore

import (
	"container/list"
	"sync"
	"time"
)

// lru is a bounded in-process map with per-entry expiry, least recently
// used out first. It fronts remote backends (saving a round trip per
// resumption and riding out outages) and is the memory backend itself.
type lru struct {
	max int

	mu    sync.Mutex // guards the fields below
	order list.List  // of *lruEntry, most recently used at the front
	items map[string]*list.Element
}

type lruEntry struct {
	key     string
	value   []byte
	expires time.Time
}

func newLRU(max int) *lru {
	return &lru{max: max, items: make(map[string]*list.Element)}
}

// get returns the live value under key; an expired entry is dropped.
func (c *lru) get(key string, now time.Time) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(key, now)
}

func (c *lru) getLocked(key string, now time.Time) ([]byte, bool) {
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*lruEntry)
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		return nil, false
	}
	c.order.MoveToFront(el)
	return e.value, true
}

// put stores value under key until expires, evicting the least recently
// used entry when full. Callers never modify value afterwards.
func (c *lru) put(key string, value []byte, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, value, expires)
}

func (c *lru) putLocked(key string, value []byte, expires time.Time) {
	if el, ok := c.items[key]; ok {
		e := el.Value.(*lruEntry)
		e.value, e.expires = value, expires
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&lruEntry{key: key, value: value, expires: expires})
	if c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*lruEntry).key)
	}
}

// add stores value only if key holds no live entry, reporting whether it did.
func (c *lru) add(key string, value []byte, expires, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.getLocked(key, now); ok {
		return false
	}
	c.putLocked(key, value, expires)
	return true
}
