package cache

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/accel-proxy/accel/parser"
)

// shardCount spreads the index over locks so that a purge walking one
// shard, or a store, holds up only a sliver of the traffic.
const shardCount = 64

// index is the authority on what is stored: every object, by primary and
// secondary key, and by tag. Tiers hold bodies only.
type index struct {
	seed   maphash.Seed
	shards [shardCount]shard

	tagMu sync.Mutex
	tags  map[string]map[uint64]tagRef // tag → object id → where; tagMu guards it

	// bans are the tag and prefix purges not yet swept; nil when none.
	bans atomic.Pointer[banSet]

	objects atomic.Int64
	bytes   atomic.Int64 // bodies and metadata of indexed objects
	meta    atomic.Int64 // what the index itself holds in memory (objectMeta)
}

// tagRef says where a tagged object is indexed, so that a purge goes
// straight to it instead of searching its URI's variants.
type tagRef struct {
	id           uint64
	uri, variant string
}

type shard struct {
	mu sync.RWMutex
	// uris holds the entries by value: one allocation less per URI.
	uris map[string]uriEntry // mu guards it, the entries and objs
	// objs holds every indexed object of the shard, densely, so that
	// eviction samples it at random positions: iterating the map from a
	// random start crossed the empty slots that the store path's churn
	// leaves, 6 % of its CPU.
	objs []slotted
}

// slotted is an indexed object with a hint of when it was last used: at
// most its used, never more. Eviction compares the hints of a sample,
// which sit together in objs, and reads the used of the one it picks
// only: reading each sampled object's own field was a cache miss per
// sample, 1.1 µs of a store in perf with the index full. Hits write used
// alone; a hint is brought up to date when eviction finds it behind.
type slotted struct {
	o    *object
	hint int64 // unix ns; atomic: samplers hold the read lock only
}

// slotLocked adds o to s.objs.
func (s *shard) slotLocked(o *object) {
	o.slot = len(s.objs)
	s.objs = append(s.objs, slotted{o, o.used.Load()})
}

// unslotLocked takes o out of s.objs, moving the last object into its
// place.
func (s *shard) unslotLocked(o *object) {
	last := s.objs[len(s.objs)-1]
	s.objs[o.slot], last.o.slot = last, o.slot
	s.objs[len(s.objs)-1] = slotted{}
	s.objs = s.objs[:len(s.objs)-1]
}

// reslotLocked puts next in cur's place in s.objs (same id: an update).
func (s *shard) reslotLocked(cur, next *object) {
	next.slot = cur.slot
	s.objs[cur.slot] = slotted{next, next.used.Load()}
}

// uriEntry holds the variants of one URI. vary is the Vary of the newest
// stored response: variants are selected by it, and a response that names
// other fields replaces the variants selected by the old ones.
type uriEntry struct {
	vary []string
	// one is the only variant while there is at most one, the common case
	// (no Vary): a map per URI was two of the store path's allocations.
	// more holds them all once a second one came, and then one is nil.
	one  *object
	more map[string]*object
}

// get returns the variant stored under the secondary key variant.
func (e uriEntry) get(variant string) *object {
	if e.more != nil {
		return e.more[variant]
	}
	if e.one != nil && e.one.variant == variant {
		return e.one
	}
	return nil
}

// find is get for a key in bytes, which it does not copy.
func (e uriEntry) find(variant []byte) *object {
	if e.more != nil {
		return e.more[string(variant)]
	}
	if e.one != nil && e.one.variant == string(variant) {
		return e.one
	}
	return nil
}

// set stores o as its variant, in place of the one there.
func (e *uriEntry) set(o *object) {
	switch {
	case e.more != nil:
		e.more[o.variant] = o
	case e.one == nil || e.one.variant == o.variant:
		e.one = o
	default:
		e.more = map[string]*object{e.one.variant: e.one, o.variant: o}
		e.one = nil
	}
}

// del removes the variant stored under variant.
func (e *uriEntry) del(variant string) {
	if e.more != nil {
		delete(e.more, variant)
	} else if e.one != nil && e.one.variant == variant {
		e.one = nil
	}
}

// len is the number of variants.
func (e uriEntry) len() int {
	if e.more != nil {
		return len(e.more)
	}
	if e.one != nil {
		return 1
	}
	return 0
}

// all yields every variant; the loop body may set or delete them.
func (e uriEntry) all(yield func(*object) bool) {
	if e.more == nil {
		if e.one != nil {
			yield(e.one)
		}
		return
	}
	for _, o := range e.more {
		if !yield(o) {
			return
		}
	}
}

func newIndex() *index {
	ix := &index{seed: maphash.MakeSeed(), tags: map[string]map[uint64]tagRef{}}
	for i := range ix.shards {
		ix.shards[i].uris = map[string]uriEntry{}
	}
	return ix
}

func (ix *index) shard(uri string) *shard {
	return &ix.shards[ix.shardIndex(uri)]
}

func (ix *index) shardIndex(uri string) uint64 {
	return maphash.String(ix.seed, uri) % shardCount
}

// lookup finds the variant of uri that a request with fields fs selects,
// and what the bans do to it. *sec holds the route's extras on entry and
// the whole secondary key on return, built in place so that a hit with a
// reused buffer allocates nothing. uriKnown distinguishes a vary-miss from
// a uri-miss; vary is the known uri's Vary names. The bans are read under
// the shard's lock: a sweep retires a ban only after taking that lock to
// remove the ban's objects, so an object found here is never checked
// against too few.
func (ix *index) lookup(uri string, sec *[]byte, fs parser.Fields) (o *object, vary []string, uriKnown bool, v verdict) {
	s := ix.shard(uri)
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.uris[uri]
	if !ok {
		return nil, nil, false, v
	}
	if len(e.vary) > 0 {
		*sec = appendVaryKey(*sec, e.vary, fs)
	}
	o = e.find(*sec)
	if bs := ix.bans.Load(); o != nil && bs != nil {
		v = bs.check(o)
	}
	return o, e.vary, true, v
}

// sibling returns the object stored under uri and the exact secondary
// key, for a compressed sibling (compress.go); the key is looked up
// without being copied.
func (ix *index) sibling(uri string, key []byte) *object {
	s := ix.shard(uri)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e, ok := s.uris[uri]; ok {
		return e.find(key)
	}
	return nil
}

// latest returns the most recently stored complete response of uri in
// any variant, the compressed codings aside; nil when there is none.
func (ix *index) latest(uri string) *object {
	s := ix.shard(uri)
	s.mu.RLock()
	defer s.mu.RUnlock()
	var last *object
	if e, ok := s.uris[uri]; ok {
		for o := range e.all {
			if o.enc == "" && o.status == 200 && (last == nil || o.inserted > last.inserted) {
				last = o
			}
		}
	}
	return last
}

// objectBytes estimates what o costs on disk: its body and its metadata.
func objectBytes(o *object) int64 {
	n := o.size + int64(64+len(o.uri)+len(o.variant))
	for _, f := range o.fields {
		n += int64(len(f.Name) + len(f.Value) + 2)
	}
	for _, t := range o.tags {
		n += int64(len(t) + 1)
	}
	return n
}

// metaOverhead is the memory an indexed object costs beyond its keys and
// fields: the object, its map entries and its tier item, measured with a
// heap profile of 100 000 stored 1 KiB objects (about 640 bytes each).
const metaOverhead = 640

// objectMeta is what o costs the heap while it is indexed, whether its
// body is in memory or on disk.
func objectMeta(o *object) int64 {
	n := int64(metaOverhead + len(o.uri) + len(o.variant) + len(o.wire) + len(o.targeted))
	for _, f := range o.fields {
		n += int64(len(f.Name) + len(f.Value))
	}
	for _, t := range o.tags {
		n += int64(len(t))
	}
	return n
}

// insert indexes o and returns the objects it displaced: the old object
// of its variant, or every variant when the Vary names changed.
func (ix *index) insert(o *object) (displaced []*object) {
	o.costed()
	s := ix.shard(o.uri)
	s.mu.Lock()
	e := s.uris[o.uri]
	if !slices.Equal(e.vary, o.vary) {
		for old := range e.all {
			displaced = append(displaced, old)
		}
		e.one, e.more = nil, nil
		e.vary = o.vary
	} else if old := e.get(o.variant); old != nil {
		displaced = append(displaced, old)
	}
	for _, old := range displaced {
		s.unslotLocked(old)
	}
	e.set(o)
	s.uris[o.uri] = e
	s.slotLocked(o)
	s.mu.Unlock()
	ix.account(o, 1)
	for _, old := range displaced {
		ix.account(old, -1)
	}
	ix.tag(o, displaced)
	return displaced
}

// account adds (sign 1) or removes (-1) o from the totals.
func (ix *index) account(o *object, sign int64) {
	ix.objects.Add(sign)
	ix.bytes.Add(sign * o.diskCost)
	ix.meta.Add(sign * o.memCost)
}

// costed sets o's costs, before o is indexed and shared.
func (o *object) costed() {
	o.diskCost, o.memCost = objectBytes(o), objectMeta(o)
}

// tag adds o to its tags' sets and removes the displaced objects.
func (ix *index) tag(o *object, displaced []*object) {
	ix.tagMu.Lock()
	defer ix.tagMu.Unlock()
	ix.untagLocked(displaced)
	if o == nil {
		return
	}
	for _, t := range o.tags {
		set := ix.tags[t]
		if set == nil {
			set = map[uint64]tagRef{}
			ix.tags[t] = set
		}
		set[o.id] = tagRef{o.id, o.uri, o.variant}
	}
}

func (ix *index) untagLocked(objs []*object) {
	for _, o := range objs {
		for _, t := range o.tags {
			if set := ix.tags[t]; set != nil {
				delete(set, o.id)
				if len(set) == 0 {
					delete(ix.tags, t)
				}
			}
		}
	}
}

// replace indexes next in place of cur (same id: a 304 update or a soft
// purge) if cur is still indexed.
func (ix *index) replace(cur, next *object) bool {
	next.costed()
	s := ix.shard(cur.uri)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.uris[cur.uri]
	if !ok || e.get(cur.variant) != cur {
		return false
	}
	e.set(next)
	s.uris[cur.uri] = e
	s.reslotLocked(cur, next)
	ix.bytes.Add(next.diskCost - cur.diskCost)
	ix.meta.Add(next.memCost - cur.memCost)
	return true
}

// remove drops o if it is still indexed.
func (ix *index) remove(o *object) bool {
	s := ix.shard(o.uri)
	s.mu.Lock()
	ok := s.removeLocked(o)
	s.mu.Unlock()
	if ok {
		ix.account(o, -1)
		ix.tag(nil, []*object{o})
	}
	return ok
}

// take removes and returns the object indexed with o's keys and id (o
// may be a copy decoded from disk), nil when there is none.
func (ix *index) take(o *object) *object {
	s := ix.shard(o.uri)
	s.mu.Lock()
	var cur *object
	if e, ok := s.uris[o.uri]; ok {
		if cur = e.get(o.variant); cur != nil && cur.id == o.id {
			s.removeLocked(cur)
		} else {
			cur = nil
		}
	}
	s.mu.Unlock()
	return cur
}

// removeLocked drops o from s if o (by id) is indexed there.
func (s *shard) removeLocked(o *object) bool {
	e, ok := s.uris[o.uri]
	if !ok {
		return false
	}
	cur := e.get(o.variant)
	if cur == nil || cur.id != o.id {
		return false
	}
	e.del(o.variant)
	s.unslotLocked(cur)
	if e.len() == 0 {
		delete(s.uris, o.uri)
	} else {
		s.uris[o.uri] = e
	}
	return true
}

// countTaggedLocked counts the objects tagged with any of tags, each once.
func (ix *index) countTaggedLocked(tags []string) int {
	n := 0
	for i, t := range tags {
		if slices.Contains(tags[:i], t) {
			continue
		}
		for id := range ix.tags[t] {
			if !slices.ContainsFunc(tags[:i], func(u string) bool { _, ok := ix.tags[u][id]; return ok }) {
				n++
			}
		}
	}
	return n
}

// countPrefixed counts the objects up to maxID whose URI starts with one
// of prefixes, under read locks only, so that hits go on meanwhile.
func (ix *index) countPrefixed(prefixes []string, maxID uint64) int {
	n := 0
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.RLock()
		for uri, e := range s.uris {
			if slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(uri, p) }) {
				for o := range e.all {
					if o.id <= maxID {
						n++
					}
				}
			}
		}
		s.mu.RUnlock()
	}
	return n
}
