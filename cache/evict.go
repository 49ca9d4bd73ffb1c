package cache

import "math/rand/v2"

// evictSample is how many objects one eviction step compares: sampled LRU
// keeps eviction O(1) per object without a global list to lock on hits.
const evictSample = 8

// evict drops the least recently used of sampled objects until the
// persistent tier's objects are back under nine tenths of what its bound
// leaves them (dataBound). The memory tier evicts by itself.
func (c *Cache) evict() {
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
		oldest := c.ix.oldestOfSample()
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

// oldestOfSample returns the least recently used of evictSample objects
// taken from random shards. The sample spans shards: the few objects of
// one shard, the newest among them, must not be a sample of their own.
func (ix *index) oldestOfSample() *object {
	var oldest *object
	n := 0
	for tries := 0; n < evictSample && tries < shardCount; tries++ {
		s := &ix.shards[rand.IntN(shardCount)]
		s.mu.RLock()
	sample:
		for _, e := range s.uris {
			for _, o := range e.variants {
				if oldest == nil || o.used.Load() < oldest.used.Load() {
					oldest = o
				}
				if n++; n >= evictSample {
					break sample
				}
			}
		}
		s.mu.RUnlock()
	}
	return oldest
}
