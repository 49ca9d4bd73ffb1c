package parser

// ParseResponse parses one response head from the start of b into r, which
// it resets first, reusing the capacity of r.Fields. Its contract is that of
// ParseRequest: n bytes through the blank line, ErrIncomplete to read more,
// or an *Error sentinel; the slices in r alias b.
//
// Framing follows RFC 9112 §6.3 except that Content-Length next to
// Transfer-Encoding is refused rather than resolved: a proxy must never
// forward framing that two hops could read differently. Without either
// field r.ContentLength is -1 (read until close). Whether the body is
// there at all depends on the request too (HEAD): ResponseFraming decides.
func ParseResponse(b []byte, r *Response, lim Limits) (n int, err error) {
	r.Reset()
	lim = lim.WithDefaults()
	n, err = parseResponse(window(b, lim.MaxHeadBytes), r, lim)
	return finish(n, err, len(b), lim.MaxHeadBytes)
}

func parseResponse(b []byte, r *Response, lim Limits) (int, error) {
	major, minor, i, err := parseVersion(b, 0)
	if err != nil {
		return 0, err
	}
	if i == len(b) {
		return 0, ErrIncomplete
	}
	if b[i] != ' ' {
		return 0, unexpected(b, i, ErrBadVersion)
	}
	if major != 1 || minor > 1 {
		return 0, ErrVersionUnsupp
	}
	r.Major, r.Minor = major, minor

	i++
	for k := 0; k < 3; k, i = k+1, i+1 {
		if i == len(b) {
			return 0, ErrIncomplete
		}
		c := b[i]
		if c < '0' || c > '9' || k == 0 && c == '0' {
			return 0, unexpected(b, i, ErrBadStatus)
		}
		r.Status = r.Status*10 + int(c-'0')
	}
	if i == len(b) {
		return 0, ErrIncomplete
	}
	// The SP before an empty reason is often left out by origins; without
	// it the line is just as unambiguous, so both spellings are accepted.
	if b[i] == ' ' {
		i++
	} else if b[i] != '\r' && b[i] != '\n' {
		return 0, unexpected(b, i, ErrBadStatus)
	}
	start := i
	for i < len(b) && class[b[i]]&cValue != 0 {
		i++
	}
	if i == len(b) {
		return 0, ErrIncomplete
	}
	if b[i] != '\r' && b[i] != '\n' {
		return 0, ErrCtl
	}
	if err := lineEnd(b, i); err != nil {
		return 0, err
	}
	r.Reason = b[start:i:i]

	n, err := parseFields(b, i+2, &r.Fields, lim.MaxFields)
	if err != nil {
		return 0, err
	}
	if err := responseSemantics(r); err != nil {
		return 0, err
	}
	return n, nil
}

func responseSemantics(r *Response) error {
	h, err := scanHead(r.Fields)
	if err != nil {
		return err
	}
	r.Close = h.close || r.Minor == 0 && !h.keepAlive
	r.ContentLength = -1
	switch {
	case h.hasTE && h.hasCL:
		return ErrCLTE
	case h.hasTE && (r.Minor == 0 || h.badCoding || h.chunkeds > 1):
		// RFC 9112 §6.1: chunked at most once, and never from a 1.0 peer
		// that cannot have meant it.
		return ErrTENotChunked
	case h.hasTE && h.lastChunk:
		r.Chunked = true
	case h.hasTE:
		// Not chunked last: only the connection closing ends the body.
		r.Close = true
	case h.hasCL:
		r.ContentLength = h.cl
	}
	return nil
}
