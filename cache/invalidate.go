package cache

import (
	"net/url"

	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
)

// invalidate drops what is stored for the target of an unsafe request
// answered 2xx or 3xx, and for its Location and Content-Location when they
// are on the same origin (RFC 9111 §4.4: never another origin's, so that
// one site cannot purge another's objects).
func (c *Cache) invalidate(scheme string, req *parser.Request, resp parser.Fields, ko *policy.KeyOptions) {
	uri := primaryKey(scheme, req.Host, req.Target, ko)
	c.dropURI(uri)
	base, err := url.Parse(uri)
	if err != nil {
		return
	}
	for _, name := range [...]string{"location", "content-location"} {
		v := resp.Get(name)
		if v == nil {
			continue
		}
		u, err := base.Parse(string(v))
		if err != nil || u.Scheme != base.Scheme || normalHost(u.Scheme, u.Host) != base.Host {
			continue
		}
		c.dropURI(primaryKey(u.Scheme, []byte(u.Host), []byte(u.RequestURI()), ko))
	}
}

// dropURI removes every variant of uri from the index and the tiers.
func (c *Cache) dropURI(uri string) int {
	s := c.ix.shard(uri)
	s.mu.Lock()
	var objs []*object
	if e, ok := s.uris[uri]; ok {
		for o := range e.all {
			objs = append(objs, o)
			s.unslotLocked(o)
		}
		delete(s.uris, uri)
	}
	s.mu.Unlock()
	c.forget(objs)
	if c.disk != nil && len(objs) > 0 {
		_ = c.disk.drop(objs, false)
	}
	return len(objs)
}

// forget drops objects already taken out of their shards from the totals,
// the tag index and the memory tier; the caller deletes their records on
// disk, in a batch or a range.
func (c *Cache) forget(objs []*object) {
	if len(objs) == 0 {
		return
	}
	for _, o := range objs {
		c.ix.account(o, -1)
	}
	c.ix.tagMu.Lock()
	c.ix.untagLocked(objs)
	c.ix.tagMu.Unlock()
	// The index no longer names these bodies, so nothing can be served
	// from them: freeing their memory need not hold up the caller.
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		for _, o := range objs {
			c.mem.del(o)
		}
	}()
}
