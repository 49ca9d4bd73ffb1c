package cache

import (
	"bytes"
	"slices"
	"strconv"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
)

// Compression (a route's compress rules): the origin is asked for the
// identity body, which is stored as usual, with Vary: Accept-Encoding
// added. The first request that negotiates a coding compresses the stored
// body once and stores the result as a sibling of the identity object:
// same URI, the identity's secondary key with the coding appended (a key
// no request's own can equal), its fields those of the identity with
// Content-Encoding added and the ETag made weak (RFC 9110 §8.8.1: the
// bytes differ). Freshness decisions are always the identity's; a sibling
// made from another identity object than the one stored (src differs) is
// stale and made again. A Range of a compressed answer addresses the
// compressed bytes.

// negotiate picks the coding of encodings (in preference order) that the
// Accept-Encoding fields of fs weigh highest (RFC 9110 §12.5.3), or ""
// for identity: when the client accepts none, or weighs identity higher
// than any it accepts.
// It scans the fields without allocating: it runs on every hit.
func negotiate(fs parser.Fields, encodings []string) string {
	// identity competes only where the client weighs it: that it is
	// acceptable unless excluded (RFC 9110 §12.5.3) says nothing of the
	// client preferring it to a coding it asks for.
	best, bestQ, identityQ := "", 0, 0
	seen := false
	for _, f := range fs {
		if !parser.EqualFold(f.Name, "accept-encoding") {
			continue
		}
		seen = true
		for v := f.Value; len(v) > 0; {
			item := v
			if i := bytes.IndexByte(v, ','); i >= 0 {
				item, v = v[:i], v[i+1:]
			} else {
				v = nil
			}
			coding, q := codingWeight(item)
			switch {
			case len(coding) == 0:
			case parser.EqualFold(coding, "identity"):
				identityQ = q
			case string(coding) == "*":
				for _, e := range encodings {
					if q > bestQ && !mentioned(fs, e) {
						best, bestQ = e, q
					}
				}
			default:
				for _, e := range encodings {
					if parser.EqualFold(coding, e) && (q > bestQ || q == bestQ && prefers(encodings, e, best)) {
						best, bestQ = e, q
					}
				}
			}
		}
	}
	if !seen || bestQ == 0 || bestQ < identityQ {
		return ""
	}
	return best
}

// prefers reports whether a comes before b in the offer.
func prefers(encodings []string, a, b string) bool {
	return b == "" || slices.Index(encodings, a) < slices.Index(encodings, b)
}

// mentioned reports whether Accept-Encoding names coding itself, whose
// own weight then wins over "*".
func mentioned(fs parser.Fields, coding string) bool {
	for _, f := range fs {
		if !parser.EqualFold(f.Name, "accept-encoding") {
			continue
		}
		for v := f.Value; len(v) > 0; {
			item := v
			if i := bytes.IndexByte(v, ','); i >= 0 {
				item, v = v[:i], v[i+1:]
			} else {
				v = nil
			}
			if c, _ := codingWeight(item); parser.EqualFold(c, coding) {
				return true
			}
		}
	}
	return false
}

// codingWeight splits "gzip;q=0.5" into the coding and its weight in
// thousandths (1000 without q, 0 for a malformed q).
func codingWeight(item []byte) ([]byte, int) {
	coding, params, _ := bytes.Cut(item, []byte{';'})
	coding = bytes.Trim(coding, " \t")
	q := 1000
	for len(params) > 0 {
		var p []byte
		p, params, _ = bytes.Cut(params, []byte{';'})
		name, val, _ := bytes.Cut(bytes.Trim(p, " \t"), []byte{'='})
		if parser.EqualFold(bytes.Trim(name, " \t"), "q") {
			var ok bool
			if q, ok = parseQ(bytes.Trim(val, " \t")); !ok {
				q = 0
			}
		}
	}
	return coding, q
}

// compressible reports whether the rules compress o: a complete 200 of a
// listed type, not encoded already, large enough, and not no-transform.
func compressible(o *object, r *policy.CompressRules) bool {
	return o.status == 200 && compressibleFields(o.fields, o.size, r)
}

func compressibleFields(fs parser.Fields, size int64, r *policy.CompressRules) bool {
	if !r.Enabled || (size >= 0 && size < int64(r.MinSize)) {
		return false
	}
	if coded(fs) {
		return false
	}
	if fs.Has("content-range") || !policy.Compressible(fs.Get("content-type"), r.Types) {
		return false
	}
	for _, f := range fs {
		if parser.EqualFold(f.Name, "cache-control") && parser.HasToken(f.Value, "no-transform") {
			return false
		}
	}
	return true
}

// coded reports whether fs say their body is in a content coding. An
// identity Content-Encoding, which RFC 9110 §8.4.1 reserves for
// Accept-Encoding but some origins send, is no coding: such a body is the
// cache's to compress, and its stored and served heads vary as an
// uncoded one's do.
func coded(fs parser.Fields) bool {
	ce := fs.Get("content-encoding")
	return ce != nil && !parser.EqualFold(bytes.TrimSpace(ce), "identity")
}

// withVaryEncoding is fs with Accept-Encoding in its Vary, for a
// response whose coding the cache chooses per request.
func withVaryEncoding(fs parser.Fields) parser.Fields {
	for _, f := range fs {
		if parser.EqualFold(f.Name, "vary") && parser.HasToken(f.Value, "accept-encoding") {
			return fs
		}
	}
	return append(fs, parser.Field{Name: []byte("Vary"), Value: []byte("Accept-Encoding")})
}

// withoutAcceptEncoding drops accept-encoding from a response's Vary
// names: the cache asked the origin without it, so the response is the
// same for every Accept-Encoding, and the coding is the cache's choice.
func withoutAcceptEncoding(vary []string) []string {
	if !slices.Contains(vary, "accept-encoding") {
		return vary
	}
	return slices.DeleteFunc(slices.Clone(vary), func(n string) bool { return n == "accept-encoding" })
}

// encodedFields are the fields of the enc coding of a response with fs.
func encodedFields(fs parser.Fields, enc string) parser.Fields {
	out := slices.Clone(fs).Del("content-encoding")
	for i, f := range out {
		if parser.EqualFold(f.Name, "etag") && !bytes.HasPrefix(f.Value, []byte("W/")) {
			out[i].Value = append([]byte("W/"), f.Value...)
		}
	}
	// The bytes may alias fs: setFields copies them.
	return withVaryEncoding(append(out, parser.Field{Name: []byte("Content-Encoding"), Value: []byte(enc)}))
}

// siblingKey is the secondary key of o's enc coding, built in buf.
func siblingKey(buf []byte, variant, enc string) []byte {
	buf = append(buf, variant...)
	buf = append(buf, "\x01ae="...)
	return append(buf, enc...)
}

// encoded returns the enc coding of the identity object o and its body,
// compressing o's body and storing the result when no current one is
// stored. ok is false when none can be had (o's body is gone).
func (c *Cache) encoded(o *object, enc string, r *policy.CompressRules) (e *object, body []byte, ok bool) {
	var kb [256]byte
	key := siblingKey(kb[:0], o.variant, enc)
	if e = c.ix.sibling(o.uri, key); e != nil && e.src == o.id {
		if body, ok = c.body(e); ok {
			return e, body, true
		}
	}
	// One request makes the coding; the others asking for it meanwhile
	// wait for it rather than compress the same bytes again. The flight
	// key starts with a byte no request key does.
	fk := flightKey{"\x02" + o.uri, string(key) + "\x00" + strconv.FormatUint(o.id, 10)}
	f, leader := c.fl.join(fk, newFlight(fk))
	if !leader {
		<-f.wait()
		if e = c.ix.sibling(o.uri, key); e != nil && e.src == o.id {
			if body, ok = c.body(e); ok {
				return e, body, true
			}
		}
		return nil, nil, false
	}
	defer func() {
		f.release()
		c.fl.done(f)
	}()
	src, ok := c.body(o)
	if !ok {
		return nil, nil, false
	}
	out, err := compress(enc, r.Levels.Level(enc), src)
	if err != nil {
		return nil, nil, false
	}
	c.stats.codings.Add(1)
	e = o.clone()
	e.variant, e.src, e.enc = string(key), o.id, enc
	e.setFields(encodedFields(o.fields, enc))
	c.store(e, out)
	return e, out, true
}

// compress codes src with enc at level.
func compress(enc string, level int, src []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(src)/3 + 64)
	switch enc {
	case "gzip":
		w, err := gzip.NewWriterLevel(&buf, level)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case "br":
		w := brotli.NewWriterLevel(&buf, level)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case "zstd":
		w, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer w.Close()
		return w.EncodeAll(src, nil), nil
	}
	return buf.Bytes(), nil
}

// freshenSiblings gives the stored codings of the identity object o,
// just updated to n, n's fields, so that they answer as n does.
func (c *Cache) freshenSiblings(o, n *object, encodings []string) {
	var kb [256]byte
	for _, enc := range encodings {
		e := c.ix.sibling(o.uri, siblingKey(kb[:0], o.variant, enc))
		if e == nil || e.src != o.id {
			continue
		}
		u := e.clone()
		u.setFields(encodedFields(n.fields, enc))
		u.received, u.initialAge, u.lifetime, u.swr, u.sie = n.received, n.initialAge, n.lifetime, n.swr, n.sie
		u.noCache, u.mustReval = n.noCache, n.mustReval
		if c.ix.replace(e, u) && c.disk != nil {
			_ = c.disk.update(u)
		}
	}
}
