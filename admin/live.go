package admin

import (
	"hash/maphash"
	"sort"
	"sync"
	"time"
)

// topK counts the most frequent keys (hosts, paths) in bounded memory with
// the Space-Saving algorithm: at most size keys are kept; a new key
// replaces the least counted one and inherits its count, so a key's count
// is an overestimate by at most its err. The entries stay in their slots
// and a min-heap of slot numbers orders them by count, so that a new key
// costs O(log size) and its moves down the heap touch no table. The slots
// are found through a table of their own (linear probing), not a map: a
// new key replaces an entry, and the map's lookup, delete and insert were
// 1 us of the store path, where every request names a new path. Looking a
// known key up does not allocate. Its owner serialises the calls (see
// Metrics.targets).
type topK struct {
	size int
	seed maphash.Seed
	// places holds slot numbers plus one, zero where empty: twice size
	// rounded up to a power of two, so that probe runs stay short.
	places []int32
	slots  []topEntry
	heap   []int32 // slot numbers, least counted first
}

type topEntry struct {
	key    string
	hash   uint64
	n, err uint64
	pos    int32 // its place in heap
}

func newTopK(size int) topK {
	n := 1
	for n < 2*size {
		n <<= 1
	}
	return topK{size: size, seed: maphash.MakeSeed(), places: make([]int32, n),
		slots: make([]topEntry, 0, size), heap: make([]int32, 0, size)}
}

func topAdd(t *topK, key []byte) {
	h := maphash.Bytes(t.seed, key)
	i, found := t.find(key, h)
	if found {
		e := &t.slots[t.places[i]-1]
		e.n++
		t.down(int(e.pos))
		return
	}
	if len(t.slots) < t.size {
		s := int32(len(t.slots))
		t.slots = append(t.slots, topEntry{key: string(key), hash: h, n: 1, pos: int32(len(t.heap))})
		t.heap = append(t.heap, s)
		t.places[i] = s + 1
		t.up(len(t.heap) - 1)
		return
	}
	s := t.heap[0]
	e := &t.slots[s]
	t.remove(t.placeOf(s))
	*e = topEntry{key: string(key), hash: h, n: e.n + 1, err: e.n}
	// The removal may have moved the place the key goes to.
	i, _ = t.find(key, h)
	t.places[i] = s + 1
	t.down(0)
}

// find returns the place of key (hash h), or the empty place where its
// probe run ends.
func (t *topK) find(key []byte, h uint64) (place int, found bool) {
	mask := len(t.places) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		s := t.places[i]
		if s == 0 {
			return i, false
		}
		if e := &t.slots[s-1]; e.hash == h && e.key == string(key) {
			return i, true
		}
	}
}

// placeOf returns the place of slot s.
func (t *topK) placeOf(s int32) int {
	mask := len(t.places) - 1
	i := int(t.slots[s].hash) & mask
	for t.places[i] != s+1 {
		i = (i + 1) & mask
	}
	return i
}

// remove empties place i and moves back the entries after it in its
// probe run that may move (backward-shift deletion), so that every entry
// stays reachable from its home place and no run holds a hole.
func (t *topK) remove(i int) {
	mask := len(t.places) - 1
	for j := (i + 1) & mask; t.places[j] != 0; j = (j + 1) & mask {
		home := int(t.slots[t.places[j]-1].hash) & mask
		// The entry at j may fill i when its home is not after i in
		// the run: it is as far from j as i is, or farther.
		if (j-home)&mask >= (j-i)&mask {
			t.places[i] = t.places[j]
			i = j
		}
	}
	t.places[i] = 0
}

// count is the count of the entry at place i of the heap.
func (t *topK) count(i int) uint64 { return t.slots[t.heap[i]].n }

// up and down restore the heap after the count at i fell or grew.
func (t *topK) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if t.count(p) <= t.count(i) {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t *topK) down(i int) {
	for {
		least := i
		for _, c := range [2]int{2*i + 1, 2*i + 2} {
			if c < len(t.heap) && t.count(c) < t.count(least) {
				least = c
			}
		}
		if least == i {
			return
		}
		t.swap(i, least)
		i = least
	}
}

func (t *topK) swap(i, j int) {
	t.heap[i], t.heap[j] = t.heap[j], t.heap[i]
	t.slots[t.heap[i]].pos, t.slots[t.heap[j]].pos = int32(i), int32(j)
}

// TopEntry is one counted key in GET /stats.
type TopEntry struct {
	Key   string `json:"key"`
	Count uint64 `json:"count"`
}

// top returns the n most counted keys, most first.
func (t *topK) top(n int) []TopEntry {
	out := make([]TopEntry, 0, len(t.slots))
	for _, e := range t.slots {
		out = append(out, TopEntry{e.key, e.n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	return out[:min(n, len(out))]
}

// RecentError is one failed or refused request in GET /stats.
type RecentError struct {
	Time   time.Time `json:"time"`
	Status int       `json:"status"`
	Host   string    `json:"host"`
	Path   string    `json:"path"`
	Error  string    `json:"error"`
}

// recentErrors keeps the last errors in a ring.
type recentErrors struct {
	mu   sync.Mutex // guards the fields below
	ring [20]RecentError
	next int
	n    int
}

func (r *recentErrors) add(e RecentError) {
	r.mu.Lock()
	r.ring[r.next] = e
	r.next = (r.next + 1) % len(r.ring)
	r.n = min(r.n+1, len(r.ring))
	r.mu.Unlock()
}

// list returns the errors, newest first.
func (r *recentErrors) list() []RecentError {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RecentError, 0, r.n)
	for i := 1; i <= r.n; i++ {
		out = append(out, r.ring[(r.next-i+len(r.ring))%len(r.ring)])
	}
	return out
}

// targets are the status page's top lists, under one lock: every request
// counts in both, and one lock taken per request costs half of two.
type targets struct {
	mu           sync.Mutex // guards the fields below
	hosts, paths topK
}

// ObserveTarget counts a request's host and path for the status page's
// top lists.
func (m *Metrics) ObserveTarget(host, path []byte) {
	t := &m.targets
	t.mu.Lock()
	topAdd(&t.hosts, host)
	topAdd(&t.paths, path)
	t.mu.Unlock()
}

// topTargets returns the n most counted hosts and paths, most first.
func (m *Metrics) topTargets(n int) (hosts, paths []TopEntry) {
	t := &m.targets
	t.mu.Lock()
	hosts, paths = t.hosts.top(n), t.paths.top(n)
	t.mu.Unlock()
	return hosts, paths
}

// ObserveError records a failed (5xx, or broken) or refused request for
// the status page.
func (m *Metrics) ObserveError(status int, host, path, err string) {
	m.errors.add(RecentError{Time: time.Now(), Status: status, Host: host, Path: path, Error: err})
}
