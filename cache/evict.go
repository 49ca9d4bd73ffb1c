package cache

import (
	"math/rand/v2"
	"sync/atomic"
)

// evictSample is how many objects one eviction step compares: sampled LRU
// keeps eviction O(1) per object without a global list to lock on hits.
const evictSample = 8

// metaBudget is the part of Config.MemoryBytes the index may hold
// (objectMeta), bodyBudget the memory tier's: without a bound on the
// index, a disk tier of small objects grows the heap past the memory
// setting (1 GiB of 1 KiB objects indexes a million of them), and the
// soft memory limit derived from it makes the collector run without end.
func metaBudget(mem int64) int64 { return mem / 4 }

func bodyBudget(mem int64) int64 { return mem - metaBudget(mem) }

// evict drops the least recently used of sampled objects, never stored
// (the one just stored), until the persistent tier's objects are back
// under nine tenths of what its bound leaves them (dataBound) and the
// index under nine tenths of its budget. The memory tier evicts bodies by
// itself.
func (c *Cache) evict(stored *object) {
	limit, metaLimit := int64(-1), metaBudget(c.cfg.MemoryBytes)
	if c.disk != nil {
		limit = dataBound(c.disk.bound)
	}
	// over reports whether the index, less what was freed, holds more than
	// the fraction tenths of its bounds.
	var freed, freedMeta int64
	over := func(tenths int64) bool {
		return limit >= 0 && c.ix.bytes.Load()-freed > limit/10*tenths ||
			c.ix.meta.Load()-freedMeta > metaLimit/10*tenths
	}
	if !over(10) || !c.evictMu.TryLock() {
		return
	}
	defer c.evictMu.Unlock()
	var victims []*object
	for misses := 0; over(9) && misses < 4*shardCount; {
		s, oldest := c.ix.oldestOfSample(stored)
		if oldest == nil {
			misses++
			continue
		}
		switch s.evict(oldest) {
		case evictGone:
			misses++
		case evictDone:
			freed += oldest.diskCost
			freedMeta += oldest.memCost
			victims = append(victims, oldest)
			c.stats.evictions.Add(1)
		}
	}
	c.forget(victims)
	if c.disk != nil {
		_ = c.disk.drop(victims, false)
	}
}

// oldestOfSample returns the object with the oldest hint of evictSample
// at random places in a random shard, skip aside (the object whose store
// started the eviction: alone in its shard it would be its own sample),
// and that shard; nil when the shard is empty. One shard, not a sample
// across shards: one lock taken. The objects themselves are not read.
func (ix *index) oldestOfSample(skip *object) (*shard, *object) {
	var oldest *object
	var oldestHint int64
	s := &ix.shards[rand.IntN(shardCount)]
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.objs) == 0 {
		return s, nil
	}
	for range evictSample {
		e := &s.objs[rand.IntN(len(s.objs))]
		if e.o == skip {
			continue
		}
		if h := atomic.LoadInt64(&e.hint); oldest == nil || h < oldestHint {
			oldest, oldestHint = e.o, h
		}
	}
	return s, oldest
}

// An evictResult says what shard.evict did.
type evictResult int

const (
	evictDone    evictResult = iota // removed
	evictGone                       // no longer indexed
	evictTouched                    // used since its hint: kept, hint updated
)

// evict removes o, the object with the oldest hint of a sample, if it is
// still indexed and was not used since its hint was set. Then its used is
// the oldest of the sample: every other's is at least its hint. When it
// was used since, its hint catches up and it stays, so that a sample
// never evicts an object on a stale hint.
func (s *shard) evict(o *object) evictResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.slot >= len(s.objs) || s.objs[o.slot].o != o {
		return evictGone
	}
	e := &s.objs[o.slot]
	if used := o.used.Load(); used > e.hint {
		atomic.StoreInt64(&e.hint, used)
		return evictTouched
	}
	if !s.removeLocked(o) {
		return evictGone
	}
	return evictDone
}
