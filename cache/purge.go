package cache

import (
	"errors"
	"maps"
	"strings"
	"time"

	"github.com/accel-proxy/accel/policy"
)

// A URL purge, a few objects, acts on the index and in one synced batch on
// disk before it returns. Tag and prefix purges, up to every object, are
// bans (ban.go): one synced record before they return, checked by every
// lookup, swept in the background. Either way the next request misses
// (or, soft, finds the object stale), also after a restart. A soft purge
// cuts an object's lifetime to its age at the purge, so
// stale-while-revalidate and stale-if-error still shield the origin while
// it is refetched.

// PurgeURL purges every variant of rawURL ("http://host/path?q"). Without
// a scheme ("host/path") both schemes are purged. The query is matched as
// given and, for routes that sort their query, sorted.
func (c *Cache) PurgeURL(rawURL string, soft bool) (int, error) {
	uris, err := purgeURIs(rawURL, true)
	if err != nil {
		return 0, err
	}
	c.purgeGen.Add(1)
	now := c.now()
	var objs []*object
	for _, uri := range uris {
		s := c.ix.shard(uri)
		s.mu.Lock()
		if e, ok := s.uris[uri]; ok {
			objs = s.takeLocked(uri, e, soft, now, objs)
		}
		s.mu.Unlock()
	}
	return len(objs), c.settlePurge(objs, soft)
}

// sortQuery shapes a purge URL as a route with sort_query keys it.
var sortQuery = policy.KeyOptions{SortQuery: true}

// purgeURIs are the keys rawURL may be stored under; with sorted, also its
// sorted-query form.
func purgeURIs(rawURL string, sorted bool) ([]string, error) {
	schemes := []string{"http", "https"}
	if scheme, rest, ok := strings.Cut(rawURL, "://"); ok {
		schemes, rawURL = []string{strings.ToLower(scheme)}, rest
	}
	host, target := rawURL, "/"
	if i := strings.IndexAny(rawURL, "/?"); i >= 0 {
		host, target = rawURL[:i], rawURL[i:]
		if target[0] == '?' {
			target = "/" + target
		}
	}
	if host == "" {
		return nil, errors.New("cache: purge URL has no host")
	}
	var uris []string
	for _, s := range schemes {
		u := s + "://" + normalHost(s, host)
		uris = append(uris, u+target)
		if alt := u + shapeQuery(target, &sortQuery); sorted && alt != u+target {
			uris = append(uris, alt)
		}
	}
	return uris, nil
}

// PurgePrefix purges every URL starting with prefix ("http://host/path";
// without a scheme, both schemes). It returns once the purge holds; the
// count is of the objects stored then.
func (c *Cache) PurgePrefix(prefix string, soft bool) (int, error) {
	// A bare host becomes "scheme://host/": every path of that host and
	// not of "hostname.example" too.
	prefixes, err := purgeURIs(prefix, false)
	if err != nil {
		return 0, err
	}
	c.purgeGen.Add(1)
	b := &ban{soft: soft, at: c.now().UnixNano(), prefixes: prefixes, maxID: c.nextID.Load()}
	n := c.ix.countPrefixed(prefixes, b.maxID)
	if err := c.addBan(b); err != nil {
		return 0, err
	}
	return n, nil
}

// PurgeTags purges every object tagged (Surrogate-Key, Cache-Tag) with one
// of tags. It returns once the purge holds; the count is of the objects
// stored then.
func (c *Cache) PurgeTags(tags []string, soft bool) (int, error) {
	c.purgeGen.Add(1)
	b := &ban{soft: soft, at: c.now().UnixNano(), tags: tags}
	ix := c.ix
	ix.tagMu.Lock()
	// Under tagMu every id up to maxID that is tagged is in the sets.
	b.maxID = c.nextID.Load()
	n := ix.countTaggedLocked(tags)
	if !soft {
		// The purged sets go whole; their objects are swept from them.
		b.taken = map[string]map[uint64]tagRef{}
		for _, t := range tags {
			if set := ix.tags[t]; set != nil {
				b.taken[t] = set
				delete(ix.tags, t)
			}
		}
	}
	ix.tagMu.Unlock()
	if err := c.addBan(b); err != nil {
		ix.tagMu.Lock()
		for t, set := range b.taken {
			maps.Copy(set, ix.tags[t])
			ix.tags[t] = set
		}
		ix.tagMu.Unlock()
		return 0, err
	}
	return n, nil
}

// PurgeAll purges every object.
func (c *Cache) PurgeAll(soft bool) (int, error) {
	c.purgeGen.Add(1)
	now := c.now()
	var objs []*object
	for i := range c.ix.shards {
		s := &c.ix.shards[i]
		s.mu.Lock()
		for uri, e := range s.uris {
			objs = s.takeLocked(uri, e, soft, now, objs)
		}
		s.mu.Unlock()
	}
	if soft || c.disk == nil {
		return len(objs), c.settlePurge(objs, soft)
	}
	c.forget(objs)
	if c.disk.dropAll() != nil {
		c.disk.setBehind()
	}
	return len(objs), nil
}

// takeLocked takes uri's variants out of s (hard) or replaces them with
// stale copies (soft), appending what it affected to objs.
func (s *shard) takeLocked(uri string, e uriEntry, soft bool, now time.Time, objs []*object) []*object {
	for o := range e.all {
		if soft {
			objs = append(objs, s.softenLocked(o, now, o.checked))
		} else {
			objs = append(objs, o)
			s.unslotLocked(o)
		}
	}
	if !soft {
		delete(s.uris, uri)
	}
	return objs
}

// softenLocked replaces o with a copy whose lifetime ends at, marked as
// having seen the bans up to checked.
func (s *shard) softenLocked(o *object, at time.Time, checked uint64) *object {
	n := o.clone()
	n.lifetime = min(o.lifetime, o.age(at))
	n.checked = checked
	e := s.uris[o.uri]
	e.set(n)
	s.uris[o.uri] = e
	s.reslotLocked(o, n)
	return n
}

// settlePurge finishes a purge of objs, already out of (or softened in)
// the index: totals, tags, tiers, and durably the disk.
func (c *Cache) settlePurge(objs []*object, soft bool) error {
	if !soft {
		c.forget(objs)
		if c.disk == nil || len(objs) == 0 {
			return nil
		}
		// One synced tombstone now; the records go in the background,
		// then the tombstone.
		// A purge the disk cannot take holds in memory: the disk is
		// cleared before it takes writes again.
		key, err := c.disk.tombstone(objs)
		if err != nil {
			return nil
		}
		c.bg.Add(1)
		go func() {
			defer c.bg.Done()
			if c.disk.drop(objs, false) == nil {
				_ = c.disk.remove(key, false)
			}
		}()
		return nil
	}
	if c.disk == nil || len(objs) == 0 {
		return nil
	}
	if c.disk.expire(objs, true) != nil {
		c.disk.setBehind()
	}
	return nil
}
