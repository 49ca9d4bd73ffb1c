package cache

import (
	"bytes"
	"context"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
)

// run leads flight f: it fetches (conditionally when a candidate is
// stored), settles the result and releases f. A registered flight
// fetches with a context detached from the leader's client, since other
// requests depend on it. now, when set, is the time the request was
// looked up, moments ago, which stands for the first fetch's request time
// (RFC 9111 §4.2.3: a request time a little early only makes the age a
// little larger).
func (k *call) run(f *flight, candidate *object, registered bool, now time.Time) {
	c := k.c
	ctx := k.ctx
	if registered {
		ctx = context.WithoutCancel(ctx)
	}
	gen := c.purgeGen.Load()
	for {
		fh := k.fetchHead(candidate)
		requested := now
		if requested.IsZero() {
			requested = c.now()
		}
		now = time.Time{}
		resp, err := k.fetch.Fetch(ctx, fh)
		putFetchHead(fh)
		received := c.now()
		if err == nil && resp.Status == 304 && candidate != nil && !sameValidator(candidate.fields, resp.Fields) {
			// A 304 for a representation other than the stored one
			// (RFC 9111 §4.3.4) cannot freshen it: fetch it whole.
			resp.Body.Close()
			candidate = nil
			continue
		}
		k.settle(f, candidate, resp, err, requested, received, registered, gen)
		return
	}
}

// settle turns the origin's answer into f's result.
func (k *call) settle(f *flight, candidate *object, resp *Response, err error, requested, received time.Time, registered bool, gen uint64) {
	c := k.c
	finish := func() {
		f.release()
		if registered && f.kind != resultStream {
			c.fl.done(f)
		}
	}
	switch {
	case err != nil:
		f.kind, f.err = resultError, err
		finish()
		return
	case resp.Status == 304 && candidate != nil:
		// The stored object keeps the 304's fields; an origin's head
		// lives only as long as its body.
		fs := resp.Fields.Clone()
		resp.Body.Close()
		f.kind, f.obj = resultObject, c.freshen(candidate, fs, k.rules, requested, received)
		finish()
		return
	case resp.Status >= 500 && candidate != nil && policy.StaleIfError(candidate.stored(requested), k.cc):
		resp.Body.Close()
		f.kind, f.obj, f.fwdStatus = resultStale, candidate, resp.Status
		finish()
		return
	}
	// Whether to store is read off the origin's own fields: only what is
	// stored, or shared with waiters, is copied out of them (with a Date).
	cc := policy.ResponseCacheControl(resp.Fields, k.rules.TargetedField)
	ok, _ := policy.Storable(k.req.Fields, k.cc, resp.Status, resp.Fields, cc, k.rules)
	if resp.ContentLength > int64(k.rules.MaxObjectSize) {
		ok = false
	}
	var o *object
	var fields parser.Fields
	if ok {
		// fields alias the origin's head, which closing its body
		// recycles (a body at hand is closed before the leader answers):
		// newObject copies what it keeps, and the leader's head is that
		// copy or one of its own (leaderFields).
		fields = withDate(resp.Fields, received)
		o, ok = k.newObject(resp.Status, fields, cc, requested, received)
	}
	if !ok {
		if registered {
			c.fl.setPass(f.key, received.Add(k.rules.Coalesce.HitForPass.D()))
		}
		resp.Fields = consumeTargeted(resp.Fields, k.rules.TargetedField)
		f.kind, f.pass = resultPass, resp
		finish()
		return
	}
	c.fl.clearPass(f.key)
	f.kind = resultStream
	own := k.leaderFields(o, fields, cc)
	f.hd = head{status: resp.Status, fields: o.fields, own: own, length: resp.ContentLength,
		vary: o.vary, variant: o.variant, initialAge: o.initialAge, lifetime: o.lifetime,
		received: received, storable: resp.ContentLength >= 0 && c.takes(resp.ContentLength)}
	f.head, f.body = &f.hd, &f.st
	f.body.init(resp.ContentLength)
	limit := int64(k.rules.MaxObjectSize)
	hfp := k.rules.Coalesce.HitForPass.D()
	c.bg.Add(1)
	if resp.Buffered && resp.ContentLength >= 0 {
		// The body is at hand: reading it costs no wait, so it is stored
		// here, and the leader and the waiters find it whole.
		c.fill(f, resp, o, limit, hfp, registered, gen)
	} else {
		go c.fill(f, resp, o, limit, hfp, registered, gen)
	}
	finish()
}

// newObject is the object a storable response with fields (Date added)
// and policy cc becomes, not yet stored. ok is false when it is not worth
// storing: stale at once, without validators, and not to be served stale.
func (k *call) newObject(status int, fields parser.Fields, cc policy.CacheControl, requested, received time.Time) (o *object, ok bool) {
	vary, _ := varyNames(fields)
	// The stored fields are a filtered view, copied by setFields: on the
	// stack for the usual number of fields.
	var buf [24]parser.Field
	stored := storedFields(buf[:0], fields, cc, k.rules.TargetedField)
	if k.rules.Compress.Enabled && !coded(fields) {
		// Asked without Accept-Encoding, the origin sent what every
		// client gets; the cache picks the coding (compress.go).
		vary = withoutAcceptEncoding(vary)
		if status == 200 && compressibleFields(stored, -1, &k.rules.Compress) {
			stored = withVaryEncoding(stored)
		}
	}
	o = &object{uri: k.uri, variant: secondaryKey(k.extras, vary, k.req.Fields), vary: vary,
		status: status, tags: tagsOf(fields)}
	o.setFields(stored)
	if own := k.rules.TargetedField; own != "" {
		o.targeted = bytes.Clone(fields.Get(own))
	}
	o.setFreshness(k.rules, cc, fields.Get("age"), requested, received)
	ok = o.lifetime > 0 || o.swr > 0 || o.sie > 0 || fields.Has("etag") || fields.Has("last-modified")
	return o, ok
}

// fill reads the origin body into the flight's stream and stores it when
// it arrived whole, within the size limit, and no purge ran meanwhile.
// The body is read straight into the stream's buffer, sized for the whole
// body when its length is known, so that the stored body and the stream
// share one allocation, written once.
func (c *Cache) fill(f *flight, resp *Response, o *object, limit int64, hfp time.Duration, registered bool, gen uint64) {
	defer c.bg.Done()
	s, length := f.body, resp.ContentLength
	// Only this goroutine sets s.buf: it may read it unlocked.
	buf := s.buf
	var err error
	for {
		room, whole := buf[len(buf):cap(buf)], length >= 0 && int64(len(buf)) == length
		switch {
		case whole:
			// The read that sees the end of the body needs no room of
			// the body's: a byte more would have put a 1 KiB body in the
			// allocator's 1152-byte class.
			room = s.end[:]
		case len(room) == 0:
			buf = slices.Grow(buf, max(len(buf), 16<<10))
			room = buf[len(buf):cap(buf)]
		}
		m, rerr := resp.Body.Read(room)
		if whole && m > 0 {
			err = errTooLong
			break
		}
		buf = buf[:len(buf)+m]
		// The bytes that complete a body of known length are published
		// only once the object is stored, so that a client holding the
		// whole body that asks again finds the object.
		if m > 0 && (length < 0 || int64(len(buf)) < length) {
			s.publish(buf)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	resp.Body.Close()
	n := int64(len(buf))
	if err == nil && length >= 0 && n != length {
		err = errTruncated
	}
	// The object is stored before the readers see the end of the body: a
	// client that got the whole response and asks again must find it.
	switch {
	case err != nil:
	case n > limit:
		if registered {
			c.fl.setPass(f.key, c.now().Add(hfp))
		}
	case c.purgeGen.Load() == gen:
		c.store(o, buf[:n])
	}
	s.publish(buf)
	s.finish(err)
	if registered {
		c.fl.done(f)
	}
}

// fitted is b, or a copy of it at its size where b's buffer is more than
// an eighth larger: the memory tier counts a body by its length, and the
// buffer a body of unknown length was read into (grown by doubling from
// 16 KiB), a range captured or a coding made would hold up to twice that.
func fitted(b []byte) []byte {
	if cap(b)-len(b) > len(b)/8 {
		return bytes.Clone(b)
	}
	return b[:len(b):len(b)]
}

// takes reports whether a body of n bytes has a tier to go to now: the
// memory tier takes what fits in it, the disk what it is writable for.
func (c *Cache) takes(n int64) bool {
	return n+memOverhead <= bodyBudget(c.cfg.MemoryBytes) || c.disk != nil && diskState(c.disk.state.Load()) == diskOK
}

// store indexes o with body in every tier, replacing its variant.
func (c *Cache) store(o *object, body []byte) {
	body = fitted(body)
	now := c.now().UnixNano()
	o.id, o.place = c.nextID.Add(1), new(memPlace)
	o.size, o.sum = int64(len(body)), crc32.Checksum(body, castagnoli)
	o.inserted = now
	o.used.Store(now)
	// A body the disk does not take (full, read-only, over its bound) is
	// kept in memory only; one larger than the memory tier too is not
	// stored.
	if c.disk != nil && c.disk.put(o, body) {
		c.mem.put(o, body)
	} else if !c.mem.put(o, body) {
		return
	}
	for _, old := range c.ix.insert(o) {
		for _, t := range c.tiers {
			t.del(old)
		}
	}
	c.evict(o)
}

// notStored are the fields a stored response never keeps: the length is
// the body's, Age is computed per answer, Set-Cookie belongs to one client
// (RFC 9111 §3.1 allows it to be stored; accel never serves it to
// another), and tag fields are for the cache. An upstream cache's
// Cache-Status is kept: RFC 9211 §2 has each cache add its own member after
// those of the caches closer to the origin.
var notStored = append([]string{"set-cookie"}, notOwn...)

// notOwn are the fields the fetching client's head never has: what the
// cache recomputes, and the tags, which are for the cache. They are all
// in notStored too, so the stored fields are the client's less Set-Cookie
// and what a qualified private or no-cache names (leaderFields).
var notOwn = []string{"content-length", "transfer-encoding", "age", "surrogate-key", "cache-tag"}

// storedFields appends to dst the fields of fs that are stored.
func storedFields(dst, fs parser.Fields, cc policy.CacheControl, own string) parser.Fields {
	out := consumeTargeted(append(dst, fs...), own).Del(notStored...)
	// RFC 9111 §5.2.2.7 and §5.2.2.4: a qualified private or no-cache
	// keeps only the named fields from being stored and reused.
	out = out.Del(cc.PrivateFields...).Del(cc.NoCacheFields...)
	// The bytes still alias fs: setFields copies them.
	return out
}

// withDate is fs with a Date of received when it has none: a recipient
// with a clock records when such a response arrived (RFC 9110 §6.6.1), so
// that its age, and that of a stored response a 304 without Date updates,
// counts from then (RFC 9111 §4.2.3).
func withDate(fs parser.Fields, received time.Time) parser.Fields {
	if fs.Has("date") {
		return fs
	}
	return append(fs[:len(fs):len(fs)], parser.Field{Name: []byte("Date"),
		Value: []byte(received.UTC().Format(policy.IMFFixdate))})
}

// leaderFields is the head the fetching client gets for o, stored from
// fields with policy cc. It is o's own stored fields when they are the
// same list, which they are unless a field is kept from the store but not
// from this client (see notOwn): a store then copies the origin's head
// once, not twice. Both lists get the Vary of compression under the same
// condition (compressibleFields, which a stored coded body fails).
func (k *call) leaderFields(o *object, fields parser.Fields, cc policy.CacheControl) parser.Fields {
	if !fields.Has("set-cookie") && len(cc.PrivateFields) == 0 && len(cc.NoCacheFields) == 0 {
		return o.fields
	}
	own := ownFields(fields.Clone(), k.rules.TargetedField)
	if o.status == 200 && compressibleFields(o.fields, -1, &k.rules.Compress) {
		own = withVaryEncoding(own)
	}
	return own
}

// ownFields is the head the fetching client gets: what the origin sent,
// minus what the cache recomputes and its tag fields. fs is the caller's
// own copy, which it filters in place.
func ownFields(fs parser.Fields, own string) parser.Fields {
	return consumeTargeted(fs, own).Del(notOwn...)
}

// tagsOf reads Surrogate-Key and Cache-Tag, space- or comma-separated.
func tagsOf(fs parser.Fields) []string {
	var tags []string
	for _, f := range fs {
		if !parser.EqualFold(f.Name, "surrogate-key") && !parser.EqualFold(f.Name, "cache-tag") {
			continue
		}
		for _, t := range bytes.FieldsFunc(f.Value, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
			if s := string(t); !slices.Contains(tags, s) {
				tags = append(tags, s)
			}
		}
	}
	return tags
}

// consumeTargeted removes the route's own targeted field, which is meant
// for accel alone (RFC 9213 §2.1 lets a cache consume the field that
// targets it); CDN-Cache-Control goes on to the caches downstream.
func consumeTargeted(fs parser.Fields, own string) parser.Fields {
	if own == "" || strings.EqualFold(own, policy.CDNCacheControl) {
		return fs
	}
	return fs.Del(own)
}
