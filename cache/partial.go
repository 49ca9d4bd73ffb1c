package cache

import (
	"bytes"
	"io"
	"slices"
	"time"

	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
)

// A 206 from the origin (to a Range the cache passed on, as it does for a
// key whose whole response is too large to store) is stored as an object
// of status 206 holding one range of the representation. It answers, while
// fresh, the range requests that fall inside it, and is otherwise as good
// as absent: never a candidate for revalidation, never served whole.

// partRange reads the Content-Range of a single-part 206: the range held
// and the complete length, which must be known.
func partRange(fs parser.Fields) (r byteRange, size int64, ok bool) {
	v, found := bytes.CutPrefix(bytes.TrimSpace(fs.Get("content-range")), []byte("bytes "))
	if !found {
		return r, 0, false
	}
	span, total, found := bytes.Cut(v, []byte{'/'})
	first, last, dash := bytes.Cut(span, []byte{'-'})
	if !found || !dash {
		return r, 0, false
	}
	var err error
	if r.first, err = digits(first); err != nil {
		return r, 0, false
	}
	if r.last, err = digits(last); err != nil {
		return r, 0, false
	}
	if size, err = digits(total); err != nil || r.last < r.first || r.last >= size {
		return r, 0, false
	}
	return r, size, true
}

// partialServes reports whether the stored 206 o answers this request: a
// fresh one holding every range asked for (or none satisfiable: a 416),
// with If-Range, if any, true for it.
func (k *call) partialServes(o *object, now time.Time) bool {
	if !k.hasRange || k.head || !ifRange(k.req.Fields, o.fields) ||
		policy.Reuse(o.stored(now), k.cc) != policy.UseFresh {
		return false
	}
	held, size, ok := partRange(o.fields)
	if !ok {
		return false
	}
	for _, r := range k.rng.resolve(size) {
		if r.first < held.first || r.last > held.last {
			return false
		}
	}
	return true
}

// partialSource serves ranges from the body of a stored 206 holding held.
func partialSource(body []byte, held byteRange) bodySource {
	src := storedSource(body)
	return func(off int64) ([]byte, bool, error) { return src(off - held.first) }
}

// capture keeps what is read through it, up to the length of the part,
// so that a relayed 206 can be stored once it arrived whole.
type capture struct {
	io.ReadCloser
	buf  []byte
	want int64
	over bool
}

func (c *capture) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if int64(len(c.buf)+n) > c.want {
		c.over = true
	} else {
		c.buf = append(c.buf, p[:n]...)
	}
	return n, err
}

// partialObject returns the object an origin 206 to this request's Range
// is stored as, with the capture to read its body through; nil when it is
// not to be stored: not a single known-length part, too large, not
// storable as its 200 would not be, or a complete response is stored.
func (k *call) partialObject(resp *Response, requested, received time.Time) (*object, *capture) {
	if !k.hasRange || resp.Status != 206 {
		return nil, nil
	}
	fields := withDate(resp.Fields.Clone(), received)
	held, _, ok := partRange(fields)
	if !ok || held.size() > int64(k.rules.MaxObjectSize) ||
		(resp.ContentLength >= 0 && resp.ContentLength != held.size()) {
		return nil, nil
	}
	cc := policy.ResponseCacheControl(fields, k.rules.TargetedField)
	// A part is storable where the whole response would be (RFC 9111
	// §3.3 lets a cache store incomplete responses).
	if ok, _ := policy.Storable(k.req.Fields, k.cc, 200, fields, cc, k.rules); !ok {
		return nil, nil
	}
	if cur, _, _ := k.c.lookup(k.uri, k.extras, k.req.Fields); cur != nil && cur.status != 206 {
		return nil, nil
	}
	o, ok := k.newObject(206, fields, cc, requested, received)
	if !ok {
		return nil, nil
	}
	cp := &capture{ReadCloser: resp.Body, want: held.size()}
	resp.Body = cp
	return o, cp
}

// readerSource serves ascending ranges from a body read once, front to
// back: a response relayed from the origin and not stored.
func readerSource(r io.Reader) bodySource {
	buf := make([]byte, 32<<10)
	var start, end int64 // buf holds the body's bytes [start, end)
	return func(off int64) ([]byte, bool, error) {
		for {
			if off >= start && off < end {
				return buf[off-start : end-start], false, nil
			}
			n, err := r.Read(buf)
			start, end = end, end+int64(n)
			if n == 0 && err == io.EOF {
				return nil, true, nil
			}
			if n == 0 && err != nil {
				return nil, true, err
			}
		}
	}
}

func ascending(rs []byteRange) bool {
	return slices.IsSortedFunc(rs, func(a, b byteRange) int { return int(min(max(a.first-b.first, -1), 1)) })
}
