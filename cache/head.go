package cache

import (
	"bytes"
	"strconv"
	"time"

	"github.com/accel-proxy/accel/parser"
)

// headUpdate applies an origin's 200 to a HEAD to the stored GET response
// the request selects (RFC 9111 §4.3.5): when every validator the HEAD
// response carries (ETag, Last-Modified) matches the stored one, and its
// Content-Length, if any, is the stored body's length, the stored fields
// and freshness are updated from it as from a 304; otherwise the stored
// response is made stale, so that its next use revalidates. A HEAD
// response with no validator proves nothing about the body: stale too.
func (k *call) headUpdate(fs parser.Fields, requested, received time.Time) {
	c := k.c
	o, _, _ := c.lookup(k.uri, k.extras, k.req.Fields)
	if o == nil {
		return
	}
	if headMatches(o, fs) {
		c.freshen(o, fs, k.rules, requested, received)
		return
	}
	n := o.clone()
	n.lifetime = min(o.lifetime, o.age(received))
	n.swr = 0
	if c.ix.replace(o, n) && c.disk != nil {
		_ = c.disk.update(n)
	}
}

func headMatches(o *object, fs parser.Fields) bool {
	validated := false
	for _, name := range [...]string{"etag", "last-modified"} {
		v := fs.Get(name)
		if v == nil {
			continue
		}
		if !bytes.Equal(bytes.TrimSpace(v), bytes.TrimSpace(o.fields.Get(name))) {
			return false
		}
		validated = true
	}
	if cl := fs.Get("content-length"); cl != nil {
		n, err := strconv.ParseInt(string(bytes.TrimSpace(cl)), 10, 64)
		if err != nil || n != o.size {
			return false
		}
	}
	return validated
}
