package admin

import (
	"sort"
	"sync"
	"time"
)

// topK counts the most frequent keys (hosts, paths) in bounded memory with
// the Space-Saving algorithm: at most size keys are kept; a new key
// replaces the least counted one and inherits its count, so a key's count
// is an overestimate by at most its err. Looking a known key up does not
// allocate.
type topK struct {
	size int
	mu   sync.Mutex // guards m
	m    map[string]*topEntry
}

type topEntry struct {
	n, err uint64
}

func newTopK(size int) *topK { return &topK{size: size, m: make(map[string]*topEntry, size)} }

func topAdd[K ~string | ~[]byte](t *topK, key K) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.m[string(key)]; ok {
		e.n++
		return
	}
	if len(t.m) < t.size {
		t.m[string(key)] = &topEntry{n: 1}
		return
	}
	var minKey string
	var min *topEntry
	for k, e := range t.m {
		if min == nil || e.n < min.n {
			minKey, min = k, e
		}
	}
	delete(t.m, minKey)
	t.m[string(key)] = &topEntry{n: min.n + 1, err: min.n}
}

// TopEntry is one counted key in GET /stats.
type TopEntry struct {
	Key   string `json:"key"`
	Count uint64 `json:"count"`
}

// top returns the n most counted keys, most first.
func (t *topK) top(n int) []TopEntry {
	t.mu.Lock()
	out := make([]TopEntry, 0, len(t.m))
	for k, e := range t.m {
		out = append(out, TopEntry{k, e.n})
	}
	t.mu.Unlock()
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

// ObserveTarget counts a request's host and path for the status page's
// top lists.
func (m *Metrics) ObserveTarget(host, path []byte) {
	topAdd(m.topHosts, host)
	topAdd(m.topPaths, path)
}

// ObserveError records a failed (5xx, or broken) or refused request for
// the status page.
func (m *Metrics) ObserveError(status int, host, path, err string) {
	m.errors.add(RecentError{Time: time.Now(), Status: status, Host: host, Path: path, Error: err})
}
