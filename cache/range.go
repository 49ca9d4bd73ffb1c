package cache

import (
	"bytes"
	"context"
	"slices"
	"strconv"

	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
)

// byteRange is one satisfiable range, first and last byte inclusive
// (RFC 9110 §14.1.2).
type byteRange struct{ first, last int64 }

func (r byteRange) size() int64 { return r.last - r.first + 1 }

// maxRanges bounds the ranges of one request; more are answered whole,
// as RFC 9110 §14.2 allows, so that many tiny ranges cannot make a
// response far larger than the body.
const maxRanges = 64

// rangeSpec is a parsed Range field, before the body length is known.
type rangeSpec struct {
	specs [][2]int64 // first, last; first -1 is a suffix of last bytes; last -1 open-ended
}

// parseRange reads a request's Range field (RFC 9110 §14.2). ok is false
// when there is none, the unit is not bytes, or it does not parse: the
// field is then ignored and the whole response served.
func parseRange(fs parser.Fields) (rs rangeSpec, ok bool) {
	v := fs.Get("range")
	if v == nil || len(fs) > 0 && countField(fs, "range") > 1 {
		return rs, false
	}
	unit, set, found := bytes.Cut(bytes.TrimSpace(v), []byte{'='})
	if !found || !parser.EqualFold(bytes.TrimSpace(unit), "bytes") {
		return rs, false
	}
	for item := range bytes.SplitSeq(set, []byte{','}) {
		item = bytes.Trim(item, " \t")
		if len(item) == 0 {
			continue
		}
		a, b, dash := bytes.Cut(item, []byte{'-'})
		if !dash {
			return rs, false
		}
		first, last := int64(-1), int64(-1)
		var err error
		if len(a) > 0 {
			if first, err = digits(a); err != nil {
				return rs, false
			}
		}
		if len(b) > 0 {
			if last, err = digits(b); err != nil {
				return rs, false
			}
		}
		switch {
		case len(a) == 0 && len(b) == 0:
			return rs, false
		case first >= 0 && last >= 0 && last < first:
			return rs, false
		}
		rs.specs = append(rs.specs, [2]int64{first, last})
		if len(rs.specs) > maxRanges {
			return rs, false
		}
	}
	return rs, len(rs.specs) > 0
}

func countField(fs parser.Fields, name string) int {
	n := 0
	for _, f := range fs {
		if parser.EqualFold(f.Name, name) {
			n++
		}
	}
	return n
}

var errDigits = strconv.ErrSyntax

func digits(b []byte) (int64, error) {
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errDigits
		}
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err
}

// resolve turns the specs into the satisfiable ranges of a body of size
// bytes; none means 416. Overlapping or adjacent ranges are merged in
// ascending order (RFC 9110 §14.2 lets a server coalesce them), so a
// response is never larger than the body plus the part heads.
func (rs rangeSpec) resolve(size int64) []byteRange {
	return rs.resolveInto(nil, size)
}

// resolveInto is resolve appending to out.
func (rs rangeSpec) resolveInto(out []byteRange, size int64) []byteRange {
	for _, s := range rs.specs {
		first, last := s[0], s[1]
		switch {
		case first < 0: // suffix
			if last == 0 {
				continue
			}
			first, last = max(size-last, 0), size-1
		case first >= size:
			continue
		case last < 0 || last >= size:
			last = size - 1
		}
		if size == 0 {
			continue
		}
		out = append(out, byteRange{first, last})
	}
	overlap := false
	for i := range out {
		for j := range i {
			if out[i].first <= out[j].last+1 && out[j].first <= out[i].last+1 {
				overlap = true
			}
		}
	}
	if !overlap {
		return out
	}
	slices.SortFunc(out, func(a, b byteRange) int { return int(min(max(a.first-b.first, -1), 1)) })
	merged := out[:1]
	for _, r := range out[1:] {
		if m := &merged[len(merged)-1]; r.first <= m.last+1 {
			m.last = max(m.last, r.last)
		} else {
			merged = append(merged, r)
		}
	}
	return merged
}

// ifRange evaluates If-Range against the selected response's fields (RFC
// 9110 §13.1.5): true when absent, or when it names the response's strong
// ETag or exactly its Last-Modified. False means the Range is ignored.
func ifRange(req, resp parser.Fields) bool {
	v := req.Get("if-range")
	if v == nil {
		return true
	}
	v = bytes.TrimSpace(v)
	if len(v) > 0 && (v[0] == '"' || bytes.HasPrefix(v, []byte("W/"))) {
		etag := bytes.TrimSpace(resp.Get("etag"))
		return v[0] == '"' && len(etag) > 0 && etag[0] == '"' && bytes.Equal(v, etag)
	}
	t, ok := policy.ParseHTTPDate(v)
	if !ok {
		return false
	}
	lm, ok := policy.ParseHTTPDate(resp.Get("last-modified"))
	return ok && lm.Equal(t)
}

// rangeAnswer is how a 200 response becomes a 206 or 416 for a request.
type rangeAnswer struct {
	ranges   []byteRange
	size     int64
	boundary string // multipart only
	ctype    []byte // the representation's Content-Type, for each part
}

// plan decides how the request's Range applies to a stored or streaming
// 200 with fields and a body of size bytes. ok is false when the whole
// response is to be served (no Range, not a GET, If-Range false).
func (k *call) plan(fields parser.Fields, size int64, id uint64) (ra rangeAnswer, ok bool) {
	if !k.hasRange || k.head {
		return ra, false
	}
	if !ifRange(k.req.Fields, fields) {
		return ra, false
	}
	return k.answerRanges(fields, size, id), true
}

// answerRanges resolves the request's ranges against a body of size bytes
// whose fields are fields; id makes the multipart boundary.
func (k *call) answerRanges(fields parser.Fields, size int64, id uint64) rangeAnswer {
	ra := rangeAnswer{size: size, ranges: k.rng.resolve(size)}
	if len(ra.ranges) > 1 {
		ra.boundary = "accel-" + strconv.FormatUint(id, 36) + "-" + strconv.FormatInt(size, 36) + "-bytes"
		ra.ctype = fields.Get("content-type")
	}
	return ra
}

// head returns the status, fields and length of the range answer to a
// 200 with fields.
func (ra *rangeAnswer) head(fields parser.Fields) (int, parser.Fields, int64) {
	fields = slices.Clone(fields).Del("content-range")
	switch len(ra.ranges) {
	case 0:
		fields = fields.Del("content-type", "content-encoding", "etag", "last-modified")
		return 416, append(fields, parser.Field{Name: []byte("Content-Range"),
			Value: []byte("bytes */" + strconv.FormatInt(ra.size, 10))}), 0
	case 1:
		r := ra.ranges[0]
		return 206, append(fields, parser.Field{Name: []byte("Content-Range"),
			Value: contentRange(nil, r, ra.size)}), r.size()
	}
	fields = fields.Del("content-type").Add("Content-Type", "multipart/byteranges; boundary="+ra.boundary)
	var n int64
	for i, r := range ra.ranges {
		n += int64(len(ra.partHead(nil, i))) + r.size()
	}
	return 206, fields, n + int64(len(ra.tail()))
}

func contentRange(b []byte, r byteRange, size int64) []byte {
	b = append(b, "bytes "...)
	b = strconv.AppendInt(b, r.first, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, r.last, 10)
	b = append(b, '/')
	return strconv.AppendInt(b, size, 10)
}

// partHead is what precedes part i of a multipart/byteranges body (RFC
// 9110 §14.6): the CRLF ending the previous part, the delimiter and the
// part's fields.
func (ra *rangeAnswer) partHead(b []byte, i int) []byte {
	if i > 0 {
		b = append(b, "\r\n"...)
	}
	b = append(b, "--"...)
	b = append(b, ra.boundary...)
	b = append(b, "\r\n"...)
	if len(ra.ctype) > 0 {
		b = append(b, "Content-Type: "...)
		b = append(b, ra.ctype...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Content-Range: "...)
	b = contentRange(b, ra.ranges[i], ra.size)
	return append(b, "\r\n\r\n"...)
}

func (ra *rangeAnswer) tail() string { return "\r\n--" + ra.boundary + "--\r\n" }

// bodySource yields the body bytes from off on, waiting for them when
// the body is still arriving; done with no bytes means the body ended.
type bodySource func(off int64) (p []byte, done bool, err error)

// writeRanges writes the range answer's body from src.
func (k *call) writeRanges(ra *rangeAnswer, src bodySource) error {
	multi := len(ra.ranges) > 1
	for i, r := range ra.ranges {
		if multi {
			if _, err := k.w.Write(ra.partHead(nil, i)); err != nil {
				return err
			}
		}
		for off := r.first; off <= r.last; {
			p, done, err := src(off)
			if err != nil {
				return err
			}
			if done {
				return errTruncated
			}
			p = p[:min(int64(len(p)), r.last+1-off)]
			if _, err := k.w.Write(p); err != nil {
				return err
			}
			off += int64(len(p))
			if err := k.w.Flush(); err != nil {
				return err
			}
		}
	}
	if multi {
		if _, err := k.w.Write([]byte(ra.tail())); err != nil {
			return err
		}
	}
	return k.w.Flush()
}

// storedSource serves ranges from a stored body.
func storedSource(body []byte) bodySource {
	return func(off int64) ([]byte, bool, error) {
		if off >= int64(len(body)) {
			return nil, true, nil
		}
		return body[off:], false, nil
	}
}

// streamSource serves ranges from a flight's body as it arrives.
func streamSource(ctx context.Context, s *stream) bodySource {
	return func(off int64) ([]byte, bool, error) {
		return s.next(ctx, int(off))
	}
}

// streamLength waits for the end of a body of unknown length and returns
// its length: ranges need the complete length.
func streamLength(ctx context.Context, s *stream) (int64, error) {
	off := 0
	for {
		p, done, err := s.next(ctx, off)
		if err != nil {
			return 0, err
		}
		if done {
			return int64(off), nil
		}
		off += len(p)
	}
}

// singleRange reads a Range field holding exactly one byte range, without
// allocating, for the fast hit path; ok is false for anything else (no
// Range, several ranges, another unit, bad syntax), which Serve answers.
func singleRange(fs parser.Fields) (spec [2]int64, ok bool) {
	v := fs.Get("range")
	if v == nil || countField(fs, "range") > 1 {
		return spec, false
	}
	unit, set, found := bytes.Cut(bytes.TrimSpace(v), []byte{'='})
	if !found || !parser.EqualFold(bytes.TrimSpace(unit), "bytes") || bytes.IndexByte(set, ',') >= 0 {
		return spec, false
	}
	a, b, dash := bytes.Cut(bytes.Trim(set, " \t"), []byte{'-'})
	if !dash || len(a) == 0 && len(b) == 0 {
		return spec, false
	}
	spec = [2]int64{-1, -1}
	for i, part := range [2][]byte{a, b} {
		if len(part) == 0 {
			continue
		}
		if len(part) > 18 {
			return spec, false
		}
		var n int64
		for _, c := range part {
			if c < '0' || c > '9' {
				return spec, false
			}
			n = n*10 + int64(c-'0')
		}
		spec[i] = n
	}
	if spec[0] >= 0 && spec[1] >= 0 && spec[1] < spec[0] {
		return spec, false
	}
	return spec, true
}

// fastRange resolves the request's one range against a stored 200 of
// size bytes with fields, for the fast hit path: use is false when the
// whole response is the answer (If-Range does not match), ok false when
// Serve must answer (a 416, or an If-Range date, which takes parsing).
func fastRange(req, fields parser.Fields, spec [2]int64, size int64) (r byteRange, use, ok bool) {
	if ir := req.Get("if-range"); ir != nil {
		if t := bytes.TrimSpace(ir); len(t) == 0 || t[0] != '"' && !bytes.HasPrefix(t, []byte("W/")) {
			return r, false, false
		}
		if !ifRange(req, fields) {
			return r, false, true
		}
	}
	rs := rangeSpec{specs: [][2]int64{spec}}
	var one [1]byteRange
	out := rs.resolveInto(one[:0], size)
	if len(out) != 1 {
		return r, false, false
	}
	return out[0], true, true
}
