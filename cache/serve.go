package cache

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
)

// call is one request's way through the cache. Its fields are copies that
// outlive Serve where a background revalidation needs them.
type call struct {
	c      *Cache
	ctx    context.Context
	req    *parser.Request // the client's head; valid only during Serve
	scheme string
	rules  *policy.CacheRules
	fetch  Fetcher
	w      ResponseWriter
	head   bool // HEAD: the stored GET's head, no body
	// rng is the request's Range when hasRange: a GET's byte ranges,
	// answered from a complete 200 (range.go).
	rng      rangeSpec
	hasRange bool
	// enc is the content coding the request negotiated, when the route
	// compresses; "" for identity.
	enc    string
	uri    string
	extras string
	cc     policy.CacheControl
	// at is when the request arrived: stale-if-error is judged then, so
	// that the time the origin took to fail (timeouts, retries, redials
	// of a restarting origin) does not eat the window.
	at time.Time
}

// Serve answers one request through the cache for a route whose rules
// have Enabled set. GET and HEAD go through lookup, coalescing, fetch and
// store; unsafe methods go to the origin and, answered 2xx or 3xx,
// invalidate what is stored for their target and same-origin Location and
// Content-Location (RFC 9111 §4.4); other methods pass.
//
// When the origin cannot be reached and nothing stale may be served, Serve
// returns the fetch error without writing, and the caller answers 502/503/
// 504. An error after the head was written (the origin died mid-body)
// means the client's response is incomplete: the caller must cut the
// connection or stream rather than end it normally.
func (c *Cache) Serve(ctx context.Context, req *Request, rules *policy.CacheRules, fetch Fetcher, w ResponseWriter) (Outcome, error) {
	if c.closed.Load() {
		return Outcome{}, errClosed
	}
	k := &call{c: c, ctx: ctx, req: req.Head, scheme: req.Scheme, rules: rules.Full(), fetch: fetch, w: w}
	switch string(req.Head.Method) {
	case "GET", "HEAD":
		return k.serveCached()
	case "OPTIONS", "TRACE", "CONNECT":
		return k.passRequest(false)
	default:
		return k.passRequest(true)
	}
}

func (k *call) serveCached() (Outcome, error) {
	c, h := k.c, k.req
	k.head = string(h.Method) == "HEAD"
	k.uri = primaryKey(k.scheme, h.Host, h.Target, &k.rules.Key)
	k.extras = extraKey(h.Fields, &k.rules.Key)
	k.cc = policy.ParseRequestCacheControl(h.Fields)
	if k.rules.Compress.Enabled {
		k.enc = negotiate(h.Fields, k.rules.Compress.Encodings)
	}
	if !k.head && h.Fields.Has("range") {
		k.rng, k.hasRange = parseRange(h.Fields)
	}
	// The preconditions the cache does not evaluate go to the origin
	// unless a fresh stored response answers them whole.
	special := h.Fields.Has("if-match") || h.Fields.Has("if-unmodified-since")
	for attempt := 0; attempt < 4; attempt++ {
		o, vary, uriKnown := c.lookup(k.uri, k.extras, h.Fields)
		now := c.now()
		if k.at.IsZero() {
			k.at = now
		}
		if o != nil && o.status == 206 && !k.partialServes(o, now) {
			o = nil
		}
		fwd, candidate := "uri-miss", (*object)(nil)
		if uriKnown {
			fwd = "vary-miss"
		}
		if o != nil {
			switch policy.Reuse(o.stored(now), k.cc) {
			case policy.UseFresh:
				if out, ok, err := k.serveObject(o, answer{status: "hit"}); ok {
					return out, err
				}
				continue
			case policy.UseStale:
				if out, ok, err := k.serveObject(o, answer{status: "stale"}); ok {
					return out, err
				}
				continue
			case policy.UseStaleRevalidate:
				if out, ok, err := k.serveObject(o, answer{status: "stale"}); ok {
					k.revalidateInBackground(o)
					return out, err
				}
				continue
			case policy.UseRevalidate:
				fwd, candidate = "stale", o
			case policy.UseRevalidateRequest:
				fwd, candidate = "request", o
			}
		}
		if k.cc.OnlyIfCached {
			return k.gatewayTimeout()
		}
		// A HEAD the cache cannot answer is fetched as a GET (stored for
		// the GETs to come), unless the route passes HEADs; a range or a
		// precondition the cache does not evaluate goes as it came.
		if special || (k.head && k.rules.PassHead) {
			return k.passRequest(false)
		}
		if attempt == 0 && !k.head {
			// The Links of the version being revalidated, or on a miss of
			// a known URI those of its last stored variant.
			if candidate != nil {
				k.earlyHints(candidate)
			} else if uriKnown {
				if last := c.ix.latest(k.uri); last != nil {
					k.earlyHints(last)
				}
			}
		}
		out, err, again := k.forward(attempt, fwd, vary, candidate, now)
		if !again {
			return out, err
		}
	}
	return k.passRequest(false)
}

// forward fetches through a flight: joining one in progress for the same
// key, or leading a new one. again asks the caller to look up once more: a
// waiter released because the response was not for it. now is the time of
// the lookup, moments ago, and vary the Vary names it found for the URI: a
// miss reads the clock and the index no more than it must.
func (k *call) forward(attempt int, fwd string, vary []string, candidate *object, now time.Time) (out Outcome, err error, again bool) {
	c := k.c
	key := flightKey{k.uri, secondaryKey(k.extras, vary, k.req.Fields)}
	passing := c.fl.passing(key, now)
	if passing && (k.head || k.hasRange) {
		// Fetching a body nobody will store is waste: a HEAD or a Range
		// of a hit-for-pass key goes to the origin as it came (and a 206
		// answering the Range may be stored, partial.go).
		out, err := k.passRequest(false)
		return out, err, false
	}
	direct := attempt > 0 || k.cc.NoStore || passing
	var f *flight
	leader := true
	if direct {
		f = getDirectFlight(key)
		defer f.recycle()
	} else {
		f, leader = c.fl.join(key, newFlight(key))
		if !leader && int(f.waiters.Add(1)) > k.rules.Coalesce.MaxWaiters {
			f.waiters.Add(-1)
			f, leader = newFlight(key), true
		}
	}
	if !leader {
		c.stats.waiters.Add(1)
		t := time.NewTimer(k.rules.Coalesce.WaitTimeout.D())
		defer t.Stop()
		select {
		case <-f.wait():
		case <-t.C:
			return Outcome{}, nil, true
		case <-k.ctx.Done():
			return Outcome{}, k.ctx.Err(), false
		}
	} else {
		c.stats.misses.Add(1)
		k.run(f, candidate, !direct, now)
	}
	return k.serveFlight(f, leader, fwd, candidate)
}

// serveFlight answers from what flight f produced.
func (k *call) serveFlight(f *flight, leader bool, fwd string, candidate *object) (Outcome, error, bool) {
	c := k.c
	switch f.kind {
	case resultError:
		if candidate != nil && policy.StaleIfError(candidate.stored(k.at), k.cc) {
			if out, ok, err := k.serveObject(candidate, answer{status: "stale", fwd: "stale", detail: "origin-error"}); ok {
				return out, err, false
			}
		}
		return Outcome{Fwd: fwd}, f.err, false
	case resultStale:
		if policy.StaleIfError(f.obj.stored(k.at), k.cc) {
			if out, ok, err := k.serveObject(f.obj, answer{status: "stale", fwd: "stale", fwdStatus: f.fwdStatus, collapsed: !leader}); ok {
				return out, err, false
			}
		}
		return Outcome{Fwd: fwd}, errOriginStatus(f.fwdStatus), false
	case resultObject:
		out, ok, err := k.serveObject(f.obj, answer{status: "revalidated", fwd: fwd, fwdStatus: 304, collapsed: !leader})
		return out, err, !ok
	case resultPass:
		if !leader {
			return Outcome{}, nil, true
		}
		c.stats.passes.Add(1)
		out := Outcome{Status: "pass", Fwd: fwd}
		return out, k.writeOrigin(f.pass, answer{fwd: fwd, fwdStatus: f.pass.Status}), false
	}
	hd := f.head
	if !leader && secondaryKey(k.extras, hd.vary, k.req.Fields) != hd.variant {
		return Outcome{}, nil, true
	}
	return k.writeStream(f, leader, fwd)
}

// maxAge is the Age sent for any larger age (RFC 9111 §5.1: a cache whose
// age calculation overflows delta-seconds sends 2147483648).
const maxAge = 1 << 31

// ageValue is the Age field value of a response whose current age is age.
func ageValue(age time.Duration) []byte {
	return appendAge(nil, age)
}

func appendAge(dst []byte, age time.Duration) []byte {
	return strconv.AppendInt(dst, min(int64(age/time.Second), maxAge), 10)
}

var (
	ageName         = []byte("Age")
	cacheStatusName = []byte("Cache-Status")
)

// errOriginStatus is returned when the origin answered 5xx, a stale
// response stood in for it for the request that fetched, and this request
// does not accept it.
type errOriginStatus int

func (e errOriginStatus) Error() string {
	return "cache: origin answered " + strconv.Itoa(int(e))
}

// answer describes how a response is being served, for Cache-Status.
type answer struct {
	status    string // Outcome.Status; "hit" and "stale" without fwd are hits
	fwd       string
	fwdStatus int
	stored    bool
	collapsed bool
	ttl       time.Duration
	hasTTL    bool
	detail    string
}

// cacheStatus is the RFC 9211 Cache-Status member accel adds.
func cacheStatus(a answer) string {
	return string(appendCacheStatus(nil, a))
}

func appendCacheStatus(b []byte, a answer) []byte {
	b = append(b, "accel"...)
	if a.fwd == "" && (a.status == "hit" || a.status == "stale") {
		b = append(b, "; hit"...)
	}
	if a.fwd != "" {
		b = append(b, "; fwd="...)
		b = append(b, a.fwd...)
	}
	if a.fwdStatus != 0 {
		b = append(b, "; fwd-status="...)
		b = strconv.AppendInt(b, int64(a.fwdStatus), 10)
	}
	if a.stored {
		b = append(b, "; stored"...)
	}
	if a.collapsed {
		b = append(b, "; collapsed"...)
	}
	if a.hasTTL {
		b = append(b, "; ttl="...)
		b = strconv.AppendInt(b, int64(a.ttl/time.Second), 10)
	}
	if a.detail != "" {
		b = append(b, "; detail="...)
		b = append(b, a.detail...)
	} else if a.fwd == "" && a.status == "stale" {
		// RFC 9211 has no member for "served stale" but a hit with a
		// negative ttl; operators look for the word (a soft purge is
		// served this way until its refresh), so detail says it.
		b = append(b, "; detail=stale"...)
	}
	return b
}

// body returns o's body from the first tier that has it intact, promoting
// it to memory. An object no tier can produce is dropped: a corrupt or
// partial record is never served.
func (c *Cache) body(o *object) ([]byte, bool) {
	for i, t := range c.tiers {
		if b, ok := t.get(o); ok {
			if i > 0 {
				c.mem.put(o, b)
			}
			return b, true
		}
	}
	c.drop(o)
	return nil, false
}

// drop removes o from the index and every tier.
func (c *Cache) drop(o *object) {
	c.ix.remove(o)
	for _, t := range c.tiers {
		t.del(o)
	}
}

// serveObject answers with a stored object. ok is false when its body is
// gone (the object has then been dropped) and nothing was written.
func (k *call) serveObject(o *object, a answer) (out Outcome, ok bool, err error) {
	c := k.c
	// The answer is o's, or that of its compressed sibling: fields, body
	// and length from the sibling, freshness from o.
	from := o
	var body []byte
	if k.enc != "" && compressible(o, &k.rules.Compress) {
		if e, b, ok := c.encoded(o, k.enc, &k.rules.Compress); ok {
			body, from = b, e
		}
	}
	if body == nil {
		if body, ok = c.body(o); !ok {
			return Outcome{}, false, nil
		}
	}
	switch a.status {
	case "hit":
		c.stats.hits.Add(1)
	case "stale":
		c.stats.stale.Add(1)
	}
	out = Outcome{Status: a.status, Fwd: a.fwd, Coalesced: a.collapsed}
	if !k.hasRange && o.status != 206 {
		sc := getScratch()
		defer putScratch(sc)
		return out, true, c.writeObject(k.w, k.req.Fields, o, from, body, a, sc, c.now())
	}
	now := c.now()
	o.used.Store(now.UnixNano())
	age := o.age(now)
	a.ttl, a.hasTTL = o.lifetime-age, true
	fields, length := from.fields, from.size
	status := o.status
	var ra rangeAnswer
	ranged := false
	if status == 200 && notModified(k.req.Fields, fields) {
		status, fields = 304, notModifiedFields(nil, fields)
	} else if status == 200 {
		if ra, ranged = k.plan(fields, length, o.id); ranged {
			status, fields, length = ra.head(fields)
		}
	}
	src := storedSource(body)
	if o.status == 206 {
		// partialServes checked that it holds what is asked.
		held, size, _ := partRange(fields)
		ra, ranged, src = k.answerRanges(fields, size, o.id), true, partialSource(body, held)
		status, fields, length = ra.head(fields)
	}
	fields = append(fields[:len(fields):len(fields)],
		parser.Field{Name: []byte("Age"), Value: ageValue(age)},
		parser.Field{Name: []byte("Cache-Status"), Value: []byte(cacheStatus(a))})
	if status != 304 {
		k.w.SetContentLength(length)
	}
	if err := k.w.WriteHead(status, fields); err != nil {
		return out, true, err
	}
	if ranged {
		return out, true, k.writeRanges(&ra, src)
	}
	if k.head || status == 304 || len(body) == 0 {
		return out, true, nil
	}
	if _, err := k.w.Write(body); err != nil {
		return out, true, err
	}
	return out, true, k.w.Flush()
}

// writeObject answers a request with fields req from the stored o, with
// the head and body of from (o or its compressed sibling): the stored head
// as it is, or a 304 when the request's validators match it, with Age and
// Cache-Status made for this answer in sc's buffers. No Flush: the front
// sends what it holds once the exchange is over and logged, so a small
// answer leaves in one write.
func (c *Cache) writeObject(w ResponseWriter, req parser.Fields, o, from *object, body []byte, a answer, sc *scratch, now time.Time) error {
	o.used.Store(now.UnixNano())
	age := o.age(now)
	a.ttl, a.hasTTL = o.lifetime-age, true
	sc.age = appendAge(sc.age[:0], age)
	sc.status = appendCacheStatus(sc.status[:0], a)
	sc.extra = append(sc.extra[:0],
		parser.Field{Name: ageName, Value: sc.age},
		parser.Field{Name: cacheStatusName, Value: sc.status})
	if o.status == 200 && notModified(req, from.fields) {
		fields := append(notModifiedFields(sc.fields[:0], from.fields), sc.extra...)
		sc.fields = fields
		return w.WriteHead(304, fields)
	}
	return w.WriteStored(o.status, from.fields, from.wire, sc.extra, body)
}

// writeStream answers from a flight's streaming body, forwarding bytes as
// they arrive.
func (k *call) writeStream(f *flight, leader bool, fwd string) (Outcome, error, bool) {
	hd, c := f.head, k.c
	age := hd.initialAge + max(c.now().Sub(hd.received), 0)
	a := answer{status: "miss", fwd: fwd, stored: leader && hd.storable, collapsed: !leader,
		ttl: hd.lifetime - age, hasTTL: true}
	out := Outcome{Status: "miss", Fwd: fwd, Stored: a.stored, Coalesced: !leader}
	fields := hd.fields
	if leader {
		fields = hd.own
	}
	status := hd.status
	length := hd.length
	var ra rangeAnswer
	ranged := false
	if status == 200 && notModified(k.req.Fields, fields) {
		status, fields = 304, notModifiedFields(nil, fields)
	} else if status == 200 && k.hasRange && !k.head && ifRange(k.req.Fields, fields) {
		// The range is answered as soon as its bytes arrive; only a body
		// of unknown length is awaited whole, for the complete length.
		if length < 0 {
			n, err := streamLength(k.ctx, f.body)
			if err != nil {
				return out, err, false
			}
			length = n
		}
		if ra, ranged = k.plan(fields, length, uint64(hd.received.UnixNano())); ranged {
			status, fields, length = ra.head(fields)
		}
	}
	// Age and Cache-Status in pooled buffers: the fronts copy a head as
	// they write it.
	sc := getScratch()
	defer putScratch(sc)
	sc.age = appendAge(sc.age[:0], age)
	sc.status = appendCacheStatus(sc.status[:0], a)
	fields = append(append(sc.fields[:0], fields...),
		parser.Field{Name: ageName, Value: sc.age},
		parser.Field{Name: cacheStatusName, Value: sc.status})
	sc.fields = fields
	if length >= 0 && status != 304 {
		k.w.SetContentLength(length)
	}
	if err := k.w.WriteHead(status, fields); err != nil {
		return out, err, false
	}
	if ranged {
		return out, k.writeRanges(&ra, streamSource(k.ctx, f.body)), false
	}
	if k.head || status == 304 {
		return out, nil, false
	}
	for off := 0; ; {
		p, done, err := f.body.next(k.ctx, off)
		if err != nil {
			return out, err, false
		}
		if done {
			return out, nil, false
		}
		if _, err := k.w.Write(p); err != nil {
			return out, err, false
		}
		if err := k.w.Flush(); err != nil {
			return out, err, false
		}
		off += len(p)
	}
}

// passRequest sends the client's own request to the origin and relays the
// answer; invalidate makes a 2xx or 3xx answer invalidate the target.
func (k *call) passRequest(invalidate bool) (Outcome, error) {
	requested := k.c.now()
	resp, err := k.fetch.Fetch(k.ctx, k.req)
	if err != nil {
		return Outcome{Status: "pass", Fwd: "bypass"}, err
	}
	if invalidate && resp.Status >= 200 && resp.Status < 400 {
		k.c.invalidate(k.scheme, k.req, resp.Fields, &k.rules.Key)
	}
	received := k.c.now()
	if k.head && resp.Status == 200 {
		k.headUpdate(resp.Fields, requested, received)
	}
	gen := k.c.purgeGen.Load()
	part, cp := k.partialObject(resp, requested, received)
	k.c.stats.passes.Add(1)
	fwd := "bypass"
	if !invalidate && (string(k.req.Method) == "GET" || string(k.req.Method) == "HEAD") {
		fwd = "miss"
	}
	err = k.writeOrigin(resp, answer{fwd: fwd, fwdStatus: resp.Status})
	if err == nil && part != nil && !cp.over && int64(len(cp.buf)) == cp.want && k.c.purgeGen.Load() == gen {
		k.c.store(part, cp.buf)
	}
	return Outcome{Status: "pass", Fwd: fwd}, err
}

// errTruncated reports a body shorter than its Content-Length, errTooLong
// one longer: neither is stored nor served as whole.
var (
	errTruncated = errors.New("cache: origin body shorter than its Content-Length")
	errTooLong   = errors.New("cache: origin body longer than its Content-Length")
)

// relayBufs are the buffers writeOrigin copies bodies through: one per
// response would be 32 KiB of garbage per pass.
var relayBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writeOrigin relays an origin response that is not stored, closing its
// body. A short body is an error, so the caller cuts the connection.
func (k *call) writeOrigin(resp *Response, a answer) error {
	defer resp.Body.Close()
	// The head is made in scratch buffers: the fields are copied but not
	// their bytes, which live until the body is closed, and a writer
	// keeps nothing of a head once WriteHead returns.
	sc := getScratch()
	defer putScratch(sc)
	fields := append(sc.fields[:0], resp.Fields...).Del("content-length", "transfer-encoding")
	fields = consumeTargeted(fields, k.rules.TargetedField)
	sc.status = appendCacheStatus(sc.status[:0], a)
	status := parser.Field{Name: cacheStatusName, Value: sc.status}
	if resp.Status == 200 && resp.ContentLength >= 0 {
		// An origin that ignored the Range (or was not sent it): the
		// cache cuts the ranges out of the body as it passes, when they
		// come in order.
		if ra, ok := k.plan(fields, resp.ContentLength, 0); ok && ascending(ra.ranges) {
			st, fs, n := ra.head(fields)
			k.w.SetContentLength(n)
			if err := k.w.WriteHead(st, append(fs, status)); err != nil {
				return err
			}
			return k.writeRanges(&ra, readerSource(resp.Body))
		}
	}
	fields = append(fields, status)
	sc.fields = fields
	k.w.SetContentLength(resp.ContentLength)
	if err := k.w.WriteHead(resp.Status, fields); err != nil {
		return err
	}
	if k.head {
		// A GET fetched for a HEAD that turned out not storable: its
		// body is not for this client.
		return nil
	}
	bp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bp)
	buf := *bp
	var n int64
	for {
		m, err := resp.Body.Read(buf)
		if m > 0 {
			n += int64(m)
			if _, werr := k.w.Write(buf[:m]); werr != nil {
				return werr
			}
			if werr := k.w.Flush(); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength && !k.head && parser.BodyAllowed(resp.Status) {
		return errTruncated
	}
	return nil
}

// gatewayTimeout answers only-if-cached when nothing stored may serve
// (RFC 9111 §5.2.1.7).
func (k *call) gatewayTimeout() (Outcome, error) {
	k.w.SetContentLength(0)
	err := k.w.WriteHead(504, parser.Fields{}.Add("Cache-Status", "accel; detail=only-if-cached"))
	return Outcome{Status: "miss"}, err
}
