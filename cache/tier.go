package cache

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
)

// tier is one place bodies are kept, tried in order on a hit. get reports
// false for a body the tier does not have or one that fails its length or
// checksum; put reports whether the tier took the body.
type tier interface {
	get(o *object) ([]byte, bool)
	put(o *object, body []byte) bool
	del(o *object)
}

var (
	_ tier = (*memTier)(nil)
	_ tier = (*diskTier)(nil)
)

// memTier keeps bodies in memory within a byte budget, evicting by
// sampled LFU: a body's reads count up, an eviction compares evictSample
// bodies and drops the least read (the least recently used of equals),
// and the ones that stay have their counts halved, so a body read often
// long ago ages out. A burst of new bodies read once (a crawler, every
// URL new) evicts its own kind before a body read all day. Reads take one
// shard's read lock and allocate nothing.
type memTier struct {
	shards [shardCount]memShard
	budget int64
	// onDrop is told of every body eviction drops (not of del): without
	// a disk tier the object goes with it.
	onDrop func(*object)

	objects, bytes atomic.Int64
}

type memShard struct {
	mu sync.RWMutex
	// at maps an id to its entry's place in ents, which is dense so that
	// a sample is a few random slots.
	at   map[uint64]int
	ents []memEntry
}

type memEntry struct {
	o    *object
	body []byte
	// reads counts gets since the entry was last sampled, halved by each
	// sample that keeps it; atomic because gets share the read lock.
	reads atomic.Uint32
}

// memOverhead is charged per body on top of its bytes, for the entry
// and its place in the map.
const memOverhead = 128

// maxReads caps memEntry.reads: a body read that often is hot whatever
// its exact count, and a saturated count is only loaded, so a hot body's
// reads stop writing its entry's cache line on every hit.
const maxReads = 255

func newMemTier(budget int64, onDrop func(*object)) *memTier {
	m := &memTier{budget: budget, onDrop: onDrop}
	for i := range m.shards {
		m.shards[i].at = make(map[uint64]int)
	}
	return m
}

func (m *memTier) shard(id uint64) *memShard { return &m.shards[id%shardCount] }

func (m *memTier) get(o *object) ([]byte, bool) {
	s := m.shard(o.id)
	s.mu.RLock()
	i, ok := s.at[o.id]
	if !ok {
		s.mu.RUnlock()
		return nil, false
	}
	e := &s.ents[i]
	body := e.body
	if e.reads.Load() < maxReads {
		e.reads.Add(1)
	}
	s.mu.RUnlock()
	if int64(len(body)) != o.size {
		return nil, false
	}
	return body, true
}

// put stores body for o's id, replacing what the id had, and evicts
// others until the tier is back within its budget. It refuses only a body
// larger than the whole budget. The body is visible to get when put
// returns, so the index may name it at once.
func (m *memTier) put(o *object, body []byte) bool {
	cost := int64(len(body)) + memOverhead
	if cost > m.budget {
		return false
	}
	s := m.shard(o.id)
	s.mu.Lock()
	if i, ok := s.at[o.id]; ok {
		e := &s.ents[i]
		cost -= int64(len(e.body)) + memOverhead
		e.o, e.body = o, body
	} else {
		s.at[o.id] = len(s.ents)
		s.ents = append(s.ents, memEntry{o: o, body: body})
		m.objects.Add(1)
	}
	s.mu.Unlock()
	if m.bytes.Add(cost) > m.budget {
		m.evict(o.id)
	}
	return true
}

// evict drops sampled bodies, never keep's, until the tier is within its
// budget; a bounded number of fruitless samples ends it (the bodies over
// the budget are being dropped by others).
func (m *memTier) evict(keep uint64) {
	for misses := 0; m.bytes.Load() > m.budget && misses < 4*shardCount; {
		o := m.evictOne(keep)
		if o == nil {
			misses++
			continue
		}
		if m.onDrop != nil {
			m.onDrop(o)
		}
	}
}

// candidate is a sampled entry as it was when sampled.
type candidate struct {
	s     *memShard
	id    uint64
	reads uint32
	used  int64
}

// evictOne removes the least read of evictSample entries (the least
// recently used of equals) and returns its object, or nil. The sample
// starts in a random shard and goes on to the next while it is short, so
// that a shard with one body does not make it its own victim. Sampling
// halves the counts it reads: a body must keep being read to keep its
// place.
func (m *memTier) evictOne(keep uint64) *object {
	var sample [evictSample]candidate
	n := 0
	first := rand.IntN(shardCount)
	for k := 0; k < shardCount && n < evictSample; k++ {
		s := &m.shards[(first+k)%shardCount]
		s.mu.RLock()
		for range evictSample - n {
			if len(s.ents) == 0 {
				break
			}
			e := &s.ents[rand.IntN(len(s.ents))]
			if e.o.id == keep || slices.ContainsFunc(sample[:n], func(c candidate) bool { return c.id == e.o.id }) {
				continue
			}
			r := e.reads.Load()
			e.reads.Store(r / 2)
			sample[n] = candidate{s: s, id: e.o.id, reads: r, used: e.o.used.Load()}
			n++
		}
		s.mu.RUnlock()
	}
	if n == 0 {
		return nil
	}
	v := sample[0]
	for _, c := range sample[1:n] {
		if c.reads < v.reads || c.reads == v.reads && c.used < v.used {
			v = c
		}
	}
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	i, ok := v.s.at[v.id]
	if !ok {
		return nil
	}
	o := v.s.ents[i].o
	m.removeLocked(v.s, i)
	return o
}

// removeLocked takes entry i out of s, moving the last entry into its
// place.
func (m *memTier) removeLocked(s *memShard, i int) {
	e := &s.ents[i]
	delete(s.at, e.o.id)
	m.bytes.Add(-int64(len(e.body)) - memOverhead)
	m.objects.Add(-1)
	last := len(s.ents) - 1
	if i != last {
		s.ents[i].o, s.ents[i].body = s.ents[last].o, s.ents[last].body
		s.ents[i].reads.Store(s.ents[last].reads.Load())
		s.at[s.ents[i].o.id] = i
	}
	s.ents[last] = memEntry{}
	s.ents = s.ents[:last]
}

func (m *memTier) del(o *object) {
	s := m.shard(o.id)
	s.mu.Lock()
	if i, ok := s.at[o.id]; ok {
		m.removeLocked(s, i)
	}
	s.mu.Unlock()
}
