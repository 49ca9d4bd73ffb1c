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
//
// An object finds its body through its memPlace, which the copies of one
// id share (clone keeps it): no map from ids is looked up, on a hit nor on
// a store. A store's lookup and insert in a map of every body held were
// two cache misses, 0.6 µs of a store in perf.
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
	// ents is dense, so that a sample is a few random slots.
	ents []memEntry
}

// memPlace is where the memory tier holds the body of an id: at is the
// entry's index in its shard's ents plus one, 0 while the tier holds no
// body for it. It is made with the id and shared by the id's copies; the
// shard's lock guards at.
type memPlace struct{ at int32 }

// memEntry holds the body of e.o's id; e.o is the copy last stored, and
// its place is the id's.
type memEntry struct {
	o    *object
	body []byte
	// reads counts gets since the entry was last sampled, halved by each
	// sample that keeps it; atomic because gets share the read lock.
	reads atomic.Uint32
}

// memOverhead is charged per body on top of its bytes, for the entry
// and its place.
const memOverhead = 128

// maxReads caps memEntry.reads: a body read that often is hot whatever
// its exact count, and a saturated count is only loaded, so a hot body's
// reads stop writing its entry's cache line on every hit.
const maxReads = 255

func newMemTier(budget int64, onDrop func(*object)) *memTier {
	return &memTier{budget: budget, onDrop: onDrop}
}

func (m *memTier) shard(id uint64) *memShard { return &m.shards[id%shardCount] }

func (m *memTier) get(o *object) ([]byte, bool) {
	s := m.shard(o.id)
	s.mu.RLock()
	at := o.place.at
	if at == 0 {
		s.mu.RUnlock()
		return nil, false
	}
	e := &s.ents[at-1]
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
	if at := o.place.at; at != 0 {
		e := &s.ents[at-1]
		cost -= int64(len(e.body)) + memOverhead
		e.o, e.body = o, body
	} else {
		s.ents = append(s.ents, memEntry{o: o, body: body})
		o.place.at = int32(len(s.ents))
		m.objects.Add(1)
	}
	s.mu.Unlock()
	if m.bytes.Add(cost) > m.budget {
		m.evict(o.place)
	}
	return true
}

// evict drops sampled bodies, never keep's, until the tier is within its
// budget; a bounded number of fruitless samples ends it (the bodies over
// the budget are being dropped by others).
func (m *memTier) evict(keep *memPlace) {
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
	place *memPlace
	reads uint32
	used  int64
}

// evictOne removes the least read of evictSample entries (the least
// recently used of equals) and returns its object, or nil. The sample
// starts in a random shard and goes on to the next while it is short, so
// that a shard with one body does not make it its own victim. Sampling
// halves the counts it reads: a body must keep being read to keep its
// place.
func (m *memTier) evictOne(keep *memPlace) *object {
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
			if e.o.place == keep || slices.ContainsFunc(sample[:n], func(c candidate) bool { return c.place == e.o.place }) {
				continue
			}
			r := e.reads.Load()
			e.reads.Store(r / 2)
			sample[n] = candidate{s: s, place: e.o.place, reads: r, used: e.o.used.Load()}
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
	at := v.place.at
	if at == 0 {
		return nil
	}
	o := v.s.ents[at-1].o
	m.removeLocked(v.s, int(at-1))
	return o
}

// removeLocked takes entry i out of s, moving the last entry into its
// place.
func (m *memTier) removeLocked(s *memShard, i int) {
	e := &s.ents[i]
	e.o.place.at = 0
	m.bytes.Add(-int64(len(e.body)) - memOverhead)
	m.objects.Add(-1)
	last := len(s.ents) - 1
	if i != last {
		l := &s.ents[last]
		e.o, e.body = l.o, l.body
		e.reads.Store(l.reads.Load())
		e.o.place.at = int32(i + 1)
	}
	s.ents[last] = memEntry{}
	s.ents = s.ents[:last]
}

func (m *memTier) del(o *object) {
	s := m.shard(o.id)
	s.mu.Lock()
	if at := o.place.at; at != 0 {
		m.removeLocked(s, int(at-1))
	}
	s.mu.Unlock()
}
