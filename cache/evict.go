package cache

import "math/rand/v2"

// evictSample is how many objects one eviction step compares: sampled LRU
// keeps eviction O(1) per object without a global list to lock on hits.
const evictSample = 8

// evict drops the least recently used of sampled objects, never stored
// (the one just stored), until the persistent tier's objects are back
// under nine tenths of what its bound leaves them (dataBound). The memory
// tier evicts by itself.
func (c *Cache) evict(stored *object) {
	if c.disk == nil {
		return
	}
	limit := dataBound(c.disk.bound)
	if c.ix.bytes.Load() <= limit || !c.evictMu.TryLock() {
		return
	}
	defer c.evictMu.Unlock()
	target := limit / 10 * 9
	var victims []*object
	var freed int64
	for misses := 0; c.ix.bytes.Load()-freed > target && misses < 4*shardCount; {
		oldest := c.ix.oldestOfSample(stored)
		if oldest == nil || !c.ix.shard(oldest.uri).remove(oldest) {
			misses++
			continue
		}
		freed += objectBytes(oldest)
		victims = append(victims, oldest)
		c.stats.evictions.Add(1)
	}
	c.forget(victims)
	_ = c.disk.drop(victims, false)
}

// oldestOfSample returns the least recently used of up to evictSample
// objects of a random shard, skip aside (the object whose store started
// the eviction: alone in its shard it would be its own sample), or nil.
// One shard, not a sample across shards: closer to LRU, that evicts the
// oldest objects, whose records sit in pebble's lowest levels, so their
// room comes back only after compactions and the files grew past the
// bound's slack (TestDiskBoundCountsPebbleFiles).
func (ix *index) oldestOfSample(skip *object) *object {
	var oldest *object
	n := 0
	s := &ix.shards[rand.IntN(shardCount)]
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.uris {
		for _, o := range e.variants {
			if o == skip {
				continue
			}
			if oldest == nil || o.used.Load() < oldest.used.Load() {
				oldest = o
			}
			if n++; n >= evictSample {
				return oldest
			}
		}
	}
	return oldest
}
