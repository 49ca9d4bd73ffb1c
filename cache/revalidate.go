package cache

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
)

// fetchHeads are the heads fetchHead makes, each with the fields slice it
// grew, so that a miss copies the client's fields without allocating.
var fetchHeads = sync.Pool{New: func() any { return new(parser.Request) }}

var methodGET = []byte("GET")

// notFetched are the client's fields a fetch leaves out: the
// conditionals and ranges the cache answers itself.
var (
	notFetched            = []string{"if-none-match", "if-modified-since", "range", "if-range"}
	notFetchedCompressing = append(slices.Clip(notFetched), "accept-encoding")
)

// fetchHead is the GET the cache sends for k: the client's fields without
// its own conditionals, which the cache answers itself, and with the
// stored candidate's validators (RFC 9111 §4.3.1). It is pooled: the
// caller gives it back with putFetchHead once the fetch returned.
func (k *call) fetchHead(candidate *object) *parser.Request {
	h := k.req
	fh := fetchHeads.Get().(*parser.Request)
	*fh = parser.Request{Method: methodGET, Target: h.Target, Host: h.Host,
		Major: h.Major, Minor: h.Minor, ContentLength: h.ContentLength, Chunked: h.Chunked,
		Fields: fh.Fields[:0]}
	if k.head {
		fh.ContentLength, fh.Chunked = 0, false
	}
	// The whole object is fetched for a Range: the cache answers the
	// range from it, and stores it for the next.
	drop := notFetched
	if k.rules.Compress.Enabled {
		// The cache compresses the identity body itself, for every coding.
		drop = notFetchedCompressing
	}
	fs := append(fh.Fields, h.Fields...).Del(drop...)
	if candidate != nil {
		if v := candidate.fields.Get("etag"); v != nil {
			fs = append(fs, parser.Field{Name: []byte("If-None-Match"), Value: v})
		}
		if v := candidate.fields.Get("last-modified"); v != nil {
			fs = append(fs, parser.Field{Name: []byte("If-Modified-Since"), Value: v})
		}
	}
	fh.Fields = fs
	return fh
}

// putFetchHead gives back a head of fetchHead, holding on to nothing of
// the request it was made for.
func putFetchHead(fh *parser.Request) {
	clear(fh.Fields)
	*fh = parser.Request{Fields: fh.Fields[:0]}
	fetchHeads.Put(fh)
}

// sameValidator reports whether a 304 with fields fs is about the stored
// response with stored fields: it names no ETag, or the stored one.
func sameValidator(stored, fs parser.Fields) bool {
	e := fs.Get("etag")
	if e == nil {
		return true
	}
	s := stored.Get("etag")
	return s != nil && bytes.Equal(opaque(s), opaque(e))
}

func opaque(tag []byte) []byte {
	return bytes.TrimPrefix(bytes.TrimSpace(tag), []byte("W/"))
}

// notUpdated are the fields a 304 does not change in the stored response
// (RFC 9111 §3.2): the stored body's framing, and what is never stored.
var notUpdated = append([]string{"content-range", "content-encoding"}, notStored...)

// freshen applies a 304's fields to the stored o and makes its freshness
// new (RFC 9111 §4.3.4), returning the updated copy.
func (c *Cache) freshen(o *object, fs parser.Fields, rules *policy.CacheRules, requested, received time.Time) *object {
	fs = withDate(fs, received)
	n := o.clone()
	fields := slices.Clone(o.fields)
	var names []string
	for _, f := range fs {
		name := string(bytes.ToLower(f.Name))
		if slices.Contains(notUpdated, name) || slices.Contains(names, name) {
			continue
		}
		names = append(names, name)
		fields = fields.Del(name)
	}
	for _, f := range fs {
		if slices.Contains(names, string(bytes.ToLower(f.Name))) {
			fields = append(fields, f)
		}
	}
	// The policy comes from the merged fields and the route's own
	// targeted field: the 304's, else the one stored.
	own := rules.TargetedField
	pf := fields
	if own != "" {
		if v := fs.Get(own); v != nil {
			n.targeted = v
		}
		if n.targeted != nil {
			pf = append(slices.Clone(fields).Del(own), parser.Field{Name: []byte(own), Value: n.targeted})
		}
	}
	cc := policy.ResponseCacheControl(pf, own)
	n.setFields(storedFields(nil, fields, cc, own))
	n.setFreshness(rules, cc, fs.Get("age"), requested, received)
	if c.ix.replace(o, n) && c.disk != nil {
		_ = c.disk.update(n)
	}
	if rules.Compress.Enabled {
		c.freshenSiblings(o, n, rules.Compress.Encodings)
	}
	return n
}

// notModified evaluates the client's If-None-Match, or failing that its
// If-Modified-Since, against a stored 200 (RFC 9110 §13.1.2, §13.1.3;
// RFC 9111 §4.3.2).
func notModified(req, stored parser.Fields) bool {
	if req.Has("if-none-match") {
		etag := stored.Get("etag")
		for _, f := range req {
			if !parser.EqualFold(f.Name, "if-none-match") {
				continue
			}
			if string(bytes.TrimSpace(f.Value)) == "*" {
				return true
			}
			if etag == nil {
				continue
			}
			for t := range entityTags(f.Value) {
				if bytes.Equal(opaque(t), opaque(etag)) {
					return true
				}
			}
		}
		return false
	}
	v := req.Get("if-modified-since")
	if v == nil {
		return false
	}
	ims, ok := policy.ParseHTTPDate(v)
	if !ok {
		return false
	}
	lm, ok := policy.ParseHTTPDate(stored.Get("last-modified"))
	if !ok {
		lm, ok = policy.ParseHTTPDate(stored.Get("date"))
	}
	return ok && !lm.After(ims)
}

// entityTags yields the members of a list whose members may quote commas
// (entity tags, links), split at the commas outside quotes.
func entityTags(v []byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		quoted, start := false, 0
		for i, c := range v {
			switch {
			case c == '"':
				quoted = !quoted
			case c == ',' && !quoted:
				if !yield(bytes.TrimSpace(v[start:i])) {
					return
				}
				start = i + 1
			}
		}
		yield(bytes.TrimSpace(v[start:]))
	}
}

// notModifiedFields appends to dst the fields of a 304 answer (RFC 9110
// §15.4.5), and Via, which a response that was forwarded keeps.
func notModifiedFields(dst, fs parser.Fields) parser.Fields {
	for _, f := range fs {
		for _, n := range [...]string{"cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified", "via"} {
			if parser.EqualFold(f.Name, n) {
				dst = append(dst, f)
			}
		}
	}
	return dst
}

// revalidateInBackground starts one revalidation of the stale o, which is
// being served meanwhile (RFC 5861 §3), unless a fetch for its key runs.
func (k *call) revalidateInBackground(o *object) {
	c := k.c
	fk := flightKey{k.uri, o.variant}
	f, leader := c.fl.join(fk, newFlight(fk))
	if !leader {
		return
	}
	bk := *k
	bk.ctx = context.WithoutCancel(k.ctx)
	bk.fetch = k.fetch.Detach()
	bk.w = nil
	bk.head = false
	h := *k.req
	h.Method, h.Target, h.Host = []byte("GET"), bytes.Clone(k.req.Target), bytes.Clone(k.req.Host)
	h.Fields = k.req.Fields.Clone()
	h.ContentLength, h.Chunked = 0, false
	bk.req = &h
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		bk.run(f, o, true, time.Time{})
		if f.kind == resultPass {
			f.pass.Body.Close()
		}
	}()
}
