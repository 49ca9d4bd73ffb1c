package parser

import (
	"bytes"
	"net/netip"
)

// maxLeadingEmptyLines is how many CRLFs before a request-line are skipped
// (RFC 9112 §2.2 asks for at least one): enough for a client that ends a
// POST body with an extra CRLF, too few to let a peer idle on our buffer.
const maxLeadingEmptyLines = 4

// ParseRequest parses one request head from the start of b into r, which it
// resets first, reusing the capacity of r.Fields. It returns the number of
// bytes through the blank line that ends the head. When b ends before the
// head does, it returns ErrIncomplete: read more and call again with the
// whole head from its start. Any other error is one of the *Error
// sentinels, after which the connection must close. The slices in r alias
// b, and r is meaningful only when err is nil.
//
// The body is not read: r.ContentLength and r.Chunked say how it is framed.
func ParseRequest(b []byte, r *Request, lim Limits) (n int, err error) {
	r.Reset()
	lim = lim.WithDefaults()
	n, err = parseRequest(window(b, lim.MaxHeadBytes), r, lim)
	return finish(n, err, len(b), lim.MaxHeadBytes)
}

func parseRequest(b []byte, r *Request, lim Limits) (int, error) {
	i := 0
	for k := 0; k < maxLeadingEmptyLines && i < len(b) && (b[i] == '\r' || b[i] == '\n'); k++ {
		if err := lineEnd(b, i); err != nil {
			return 0, err
		}
		i += 2
	}

	start := i
	for i < len(b) && class[b[i]]&cTchar != 0 {
		i++
	}
	if i == len(b) {
		return 0, ErrIncomplete
	}
	if b[i] != ' ' || i == start {
		return 0, unexpected(b, i, ErrBadMethod)
	}
	r.Method = b[start:i:i]

	i++
	start = i
	for i < len(b) && class[b[i]]&cTarget != 0 {
		if i-start == lim.MaxTargetBytes {
			return 0, ErrTargetTooLong
		}
		i++
	}
	if i == len(b) {
		return 0, ErrIncomplete
	}
	if b[i] != ' ' || i == start {
		bad := ErrBadTarget
		if b[i] == '\r' {
			// A line ending here is an HTTP/0.9 request: no version.
			bad = ErrBadVersion
		}
		return 0, unexpected(b, i, bad)
	}
	r.Target = b[start:i:i]

	major, minor, i, err := parseVersion(b, i+1)
	if err != nil {
		return 0, err
	}
	if i == len(b) {
		return 0, ErrIncomplete
	}
	if b[i] != '\r' && b[i] != '\n' {
		return 0, unexpected(b, i, ErrBadVersion)
	}
	if err := lineEnd(b, i); err != nil {
		return 0, err
	}
	if major != 1 || minor > 1 {
		return 0, ErrVersionUnsupp
	}
	r.Major, r.Minor = major, minor

	n, err := parseFields(b, i+2, &r.Fields, lim.MaxFields)
	if err != nil {
		return 0, err
	}
	if err := requestSemantics(r); err != nil {
		return 0, err
	}
	return n, nil
}

// requestSemantics applies the rules that need the whole head: Host,
// body framing, connection persistence and Expect.
func requestSemantics(r *Request) error {
	authority, err := checkTarget(r.Method, r.Target)
	if err != nil {
		return err
	}
	h, err := scanHead(r.Fields)
	if err != nil {
		return err
	}

	switch {
	case h.hosts > 1:
		// Even identical copies: two Host fields are how a request reaches
		// one virtual host past a filter written for another.
		return ErrDupHost
	case h.hosts == 0 && r.Minor == 1:
		return ErrNoHost
	case h.hosts == 1 && !validHostPort(h.host, false, false):
		return ErrBadHost
	}
	r.Host = h.host
	if authority != nil {
		// RFC 9112 §3.2.2: the target's authority wins over Host.
		r.Host = authority
	}

	switch {
	case h.hasTE && h.hasCL:
		return ErrCLTE
	case h.hasTE && r.Minor == 0:
		// An HTTP/1.0 recipient cannot know chunked; whoever sent this
		// means something other than what a 1.0 hop would read.
		return ErrTENotChunked
	case h.hasTE:
		if h.badCoding || !h.lastChunk || h.chunkeds > 1 {
			return ErrTENotChunked
		}
		if h.codings > 1 {
			return ErrTEUnsupported
		}
		r.Chunked, r.ContentLength = true, -1
	case h.hasCL:
		r.ContentLength = h.cl
	}

	r.Close = h.close || r.Minor == 0 && !h.keepAlive

	if h.expects > 0 {
		if h.expects > 1 || !equalFold(h.expect, "100-continue") {
			return ErrExpectation
		}
		// RFC 9110 §10.1.1: an HTTP/1.0 client cannot take a 100.
		r.Expect100 = r.Minor == 1
	}
	return nil
}

// checkTarget checks the form of the request-target (RFC 9112 §3.2) against
// the method and returns the authority that stands in for Host: that of an
// absolute-form target, or CONNECT's authority-form target itself.
func checkTarget(method, t []byte) (authority []byte, err error) {
	if !validEscapes(t) {
		return nil, ErrBadTarget
	}
	isConnect := string(method) == "CONNECT"
	switch {
	case t[0] == '/':
		if isConnect {
			return nil, ErrBadTarget
		}
		return nil, nil
	case len(t) == 1 && t[0] == '*':
		if string(method) != "OPTIONS" {
			return nil, ErrBadTarget
		}
		return nil, nil
	case isConnect:
		if !validHostPort(t, true, true) {
			return nil, ErrBadTarget
		}
		return t, nil
	}

	i := 0
	for i < len(t) && isSchemeByte(t[i], i == 0) {
		i++
	}
	if i == 0 || !bytes.HasPrefix(t[i:], []byte("://")) {
		return nil, ErrBadTarget
	}
	auth := t[i+3:]
	if end := bytes.IndexAny(auth, "/?"); end >= 0 {
		auth = auth[:end]
	}
	// userinfo ("http://user@host/") is refused: RFC 9110 §4.2.4 asks us to
	// treat it as an error, and it is a favourite for spoofing hosts.
	if !validHostPort(auth, true, false) {
		return nil, ErrBadTarget
	}
	return auth, nil
}

func isSchemeByte(c byte, first bool) bool {
	alpha := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
	return alpha || !first && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')
}

func validEscapes(t []byte) bool {
	for i := 0; i < len(t); i++ {
		if t[i] == '%' {
			if i+2 >= len(t) || !isHex(t[i+1]) || !isHex(t[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// validHostPort checks uri-host [":" port] (RFC 3986 §3.2.2): a reg-name of
// unreserved and sub-delims bytes, or a bracketed IPv6 address, then an
// optional port of at most 65535. Percent-encoded reg-names and IPvFuture
// are refused: no client sends them, and every decoder reads them its own
// way. needHost refuses an empty host, needPort a missing or empty port.
func validHostPort(b []byte, needHost, needPort bool) bool {
	host, port, hasPort := b, []byte(nil), false
	if len(b) > 0 && b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 0 || !validIPv6(b[1:end]) {
			return false
		}
		host = b[:end+1]
		if rest := b[end+1:]; len(rest) > 0 {
			if rest[0] != ':' {
				return false
			}
			port, hasPort = rest[1:], true
		}
	} else {
		if c := bytes.IndexByte(b, ':'); c >= 0 {
			host, port, hasPort = b[:c], b[c+1:], true
		}
		for _, c := range host {
			if class[c]&cHost == 0 {
				return false
			}
		}
	}
	switch {
	case len(host) == 0 && (needHost || hasPort):
		return false
	case needPort && len(port) == 0:
		return false
	case len(port) > len("65535"):
		return false
	}
	p := 0
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
		p = p*10 + int(c-'0')
	}
	return p <= 65535
}

func validIPv6(b []byte) bool {
	for _, c := range b {
		if !isHex(c) && c != ':' && c != '.' {
			return false
		}
	}
	a, err := netip.ParseAddr(string(b))
	return err == nil && a.Is6()
}
