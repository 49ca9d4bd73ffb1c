package cache

import (
	"errors"
	"strings"
	"time"

	"accel/policy"
)

// Purges act on the index, shard by shard so that no lock is held for
// more than a sixty-fourth of the work, and on disk in one synced batch
// before they return: the next request misses (or, soft, finds the object
// stale), also after a restart. A soft purge cuts an object's lifetime to
// its current age, so stale-while-revalidate and stale-if-error still
// shield the origin while it is refetched.

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
		if e := s.uris[uri]; e != nil {
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
// without a scheme, both schemes).
func (c *Cache) PurgePrefix(prefix string, soft bool) (int, error) {
	// A bare host becomes "scheme://host/": every path of that host and
	// not of "hostname.example" too.
	prefixes, err := purgeURIs(prefix, false)
	if err != nil {
		return 0, err
	}
	c.purgeGen.Add(1)
	now := c.now()
	var objs []*object
	for i := range c.ix.shards {
		s := &c.ix.shards[i]
		s.mu.Lock()
		for uri, e := range s.uris {
			for _, p := range prefixes {
				if strings.HasPrefix(uri, p) {
					objs = s.takeLocked(uri, e, soft, now, objs)
					break
				}
			}
		}
		s.mu.Unlock()
	}
	return len(objs), c.settlePurge(objs, soft)
}

// PurgeTags purges every object tagged (Surrogate-Key, Cache-Tag) with one
// of tags. The tag index gives the objects directly: no scan.
func (c *Cache) PurgeTags(tags []string, soft bool) (int, error) {
	c.purgeGen.Add(1)
	byShard := map[*shard]map[uint64]string{}
	c.ix.tagMu.Lock()
	for _, t := range tags {
		for id, uri := range c.ix.tags[t] {
			s := c.ix.shard(uri)
			m := byShard[s]
			if m == nil {
				m = map[uint64]string{}
				byShard[s] = m
			}
			m[id] = uri
		}
	}
	c.ix.tagMu.Unlock()
	now := c.now()
	var objs []*object
	for s, ids := range byShard {
		s.mu.Lock()
		for id, uri := range ids {
			o := s.byID(uri, id)
			switch {
			case o == nil:
			case soft:
				objs = append(objs, s.softenLocked(o, now))
			case s.removeLocked(o):
				objs = append(objs, o)
			}
		}
		s.mu.Unlock()
	}
	return len(objs), c.settlePurge(objs, soft)
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
	return len(objs), c.disk.dropAll()
}

// takeLocked takes uri's variants out of s (hard) or replaces them with
// stale copies (soft), appending what it affected to objs.
func (s *shard) takeLocked(uri string, e *uriEntry, soft bool, now time.Time, objs []*object) []*object {
	for _, o := range e.variants {
		if soft {
			objs = append(objs, s.softenLocked(o, now))
		} else {
			objs = append(objs, o)
		}
	}
	if !soft {
		delete(s.uris, uri)
	}
	return objs
}

// softenLocked replaces o with a copy whose lifetime ends now.
func (s *shard) softenLocked(o *object, now time.Time) *object {
	n := o.clone()
	n.lifetime = min(o.lifetime, o.age(now))
	s.uris[o.uri].variants[o.variant] = n
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
		key, err := c.disk.tombstone(objs)
		if err != nil {
			return err
		}
		c.bg.Add(1)
		go func() {
			defer c.bg.Done()
			if c.disk.drop(objs, false) == nil {
				_ = c.disk.db.Delete(key, nil)
			}
		}()
		return nil
	}
	if c.disk == nil || len(objs) == 0 {
		return nil
	}
	return c.disk.expire(objs)
}
