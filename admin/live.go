package admin

import (
	"sort"
	"sync"
	"time"
)

// topK counts the most frequent keys (hosts, paths) in bounded memory with
// the Space-Saving algorithm: at most size keys are kept; a new key
// replaces the least counted one and inherits its count, so a key's count
// is an overestimate by at most its err. The entries stay in their slots
// and a min-heap of slot numbers orders them by count, so that a new key
// costs O(log size) and its moves down the heap touch no map: with the
// heap holding the entries and the map their places, each of the eight
// moves of a new key rewrote two map entries, about 1.5 % of the store
// path's CPU when every request names a new path. Looking a known key up
// does not allocate. Its owner serialises the calls (see Metrics.targets).
type topK struct {
	size  int
	at    map[string]int32 // key → its slot
	slots []topEntry
	heap  []int32 // slot numbers, least counted first
}

type topEntry struct {
	key    string
	n, err uint64
	pos    int32 // its place in heap
}

func newTopK(size int) topK {
	return topK{size: size, at: make(map[string]int32, size), slots: make([]topEntry, 0, size), heap: make([]int32, 0, size)}
}

func topAdd[K ~string | ~[]byte](t *topK, key K) {
	if s, ok := t.at[string(key)]; ok {
		t.slots[s].n++
		t.down(int(t.slots[s].pos))
		return
	}
	if len(t.slots) < t.size {
		s := int32(len(t.slots))
		t.slots = append(t.slots, topEntry{key: string(key), n: 1, pos: int32(len(t.heap))})
		t.heap = append(t.heap, s)
		t.at[t.slots[s].key] = s
		t.up(len(t.heap) - 1)
		return
	}
	s := t.heap[0]
	e := &t.slots[s]
	delete(t.at, e.key)
	*e = topEntry{key: string(key), n: e.n + 1, err: e.n}
	t.at[e.key] = s
	t.down(0)
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
