package cache

import (
	"sync"
	"time"

	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
)

// scratch is the working space of one answer from a stored object: the
// keys, Age, Cache-Status and the field list it writes. Pooled, so that a
// hit allocates nothing once the pool is warm; everything in it is dead
// once the answer was handed to the writer.
type scratch struct {
	uri, sec    []byte
	age, status []byte
	crange      []byte // Content-Range of a one-range answer
	extra       parser.Fields
	fields      parser.Fields
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{uri: make([]byte, 0, 256), sec: make([]byte, 0, 128),
		age: make([]byte, 0, 16), status: make([]byte, 0, 64), crange: make([]byte, 0, 64),
		extra: make(parser.Fields, 0, 2), fields: make(parser.Fields, 0, 16)}
}}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(sc *scratch) {
	parser.ClearUsed(sc.fields[:cap(sc.fields)])
	parser.ClearUsed(sc.extra[:cap(sc.extra)])
	scratchPool.Put(sc)
}

// ServeFresh answers req from a fresh stored response whose body is in
// memory, the whole answer in one call: no flight, goroutine, context or
// allocation. ok is false when it wrote nothing and Serve must answer: a
// method other than GET or HEAD, a range or a precondition the cache does
// not evaluate, a miss, a stored response that is stale or must be
// revalidated, a body only on disk, a coding not made yet. rules need not
// have their defaults applied.
func (c *Cache) ServeFresh(req *Request, rules *policy.CacheRules, w ResponseWriter) (out Outcome, ok bool, err error) {
	h := req.Head
	if string(h.Method) != "HEAD" && string(h.Method) != "GET" || c.closed.Load() {
		return Outcome{}, false, nil
	}
	if h.Fields.Has("if-match") || h.Fields.Has("if-unmodified-since") {
		return Outcome{}, false, nil
	}
	// One byte range of a GET is answered here too (a 206 is a slice of
	// the stored body); several, or a Range that does not parse, go to
	// Serve. A HEAD ignores Range (RFC 9110 §14.2).
	var spec [2]int64
	hasRange := false
	if string(h.Method) == "GET" && h.Fields.Has("range") {
		if spec, hasRange = singleRange(h.Fields); !hasRange {
			return Outcome{}, false, nil
		}
	}
	var cc policy.CacheControl
	if h.Fields.Has("cache-control") || h.Fields.Has("pragma") {
		cc = policy.ParseRequestCacheControl(h.Fields)
	} else {
		cc = noDirectives
	}
	sc := getScratch()
	defer putScratch(sc)
	sc.uri = appendPrimaryKey(sc.uri[:0], req.Scheme, h.Host, h.Target, &rules.Key)
	sc.sec = sc.sec[:0]
	if len(rules.Key.Headers) > 0 || len(rules.Key.Cookies) > 0 {
		sc.sec = appendExtraKey(sc.sec, h.Fields, &rules.Key)
	}
	// The index keeps no reference to the key it is asked for, so the
	// string may alias the reused buffer for the length of the lookup.
	o, _, _ := c.find(parser.Alias(sc.uri), &sc.sec, h.Fields)
	if o == nil {
		return Outcome{}, false, nil
	}
	now := c.now()
	if policy.Reuse(o.stored(now), cc) != policy.UseFresh || o.status == 206 {
		return Outcome{}, false, nil
	}
	// The answer is o's, or its compressed sibling's when the client
	// takes a coding the route makes: one already stored, since making
	// it is work for Serve.
	from := o
	if rules.Compress.Enabled {
		cr := rules.Compress.WithDefaults()
		if enc := negotiate(h.Fields, cr.Encodings); enc != "" && compressible(o, &cr) {
			var kb [256]byte
			if from = c.ix.sibling(o.uri, siblingKey(kb[:0], o.variant, enc)); from == nil || from.src != o.id {
				return Outcome{}, false, nil
			}
		}
	}
	body, inMem := c.mem.get(from)
	if !inMem {
		return Outcome{}, false, nil
	}
	var rng byteRange
	ranged := false
	if hasRange && o.status == 200 && !notModified(h.Fields, from.fields) {
		var ok bool
		if rng, ranged, ok = fastRange(h.Fields, from.fields, spec, int64(len(body))); !ok {
			return Outcome{}, false, nil
		}
	}
	c.stats.hits.Add(1)
	if ranged {
		return Outcome{Status: "hit"}, true, c.writeRange(w, o, from, body, rng, sc, now)
	}
	return Outcome{Status: "hit"}, true, c.writeObject(w, h.Fields, o, from, body, answer{status: "hit"}, sc, now)
}

// noDirectives is a request without Cache-Control or Pragma.
var noDirectives = policy.ParseRequestCacheControl(nil)

var contentRangeName = []byte("Content-Range")

// writeRange answers a one-range request from the stored 200 o (its
// coding from): the stored head with Content-Range added, and the slice
// of the stored body, written from where it is.
func (c *Cache) writeRange(w ResponseWriter, o, from *object, body []byte, r byteRange, sc *scratch, now time.Time) error {
	o.used.Store(now.UnixNano())
	age := o.age(now)
	a := answer{status: "hit", ttl: o.lifetime - age, hasTTL: true}
	sc.age = appendAge(sc.age[:0], age)
	sc.status = appendCacheStatus(sc.status[:0], a)
	sc.crange = contentRange(sc.crange[:0], r, int64(len(body)))
	sc.extra = append(sc.extra[:0],
		parser.Field{Name: contentRangeName, Value: sc.crange},
		parser.Field{Name: ageName, Value: sc.age},
		parser.Field{Name: cacheStatusName, Value: sc.status})
	return w.WriteStored(206, from.fields, from.wire, sc.extra, body[r.first:r.last+1])
}
