package parser

// The transfer rules every hop applies, here so that the HTTP/1 and
// HTTP/2 fronts, the cache and the upstream side share one reading of
// them: which fields stay on one connection, and which responses carry a
// body. Chunked bodies are read by ChunkedReader and written by
// ChunkedWriter (chunked.go).

// BodyAllowed reports whether a response with status may carry a body
// (RFC 9110 §6.4.1): not a 1xx, 204 or 304. An answer to HEAD has none
// either, which the caller knows.
func BodyAllowed(status int) bool {
	return status >= 200 && status != 204 && status != 304
}

// Framing is how a response body is delimited on an HTTP/1 connection.
type Framing int

const (
	// NoBody: the head is the whole response; bytes after it belong to no
	// response.
	NoBody Framing = iota
	// LengthBody: exactly Content-Length bytes follow the head.
	LengthBody
	// ChunkedBody: the chunked coding follows, through its last chunk and
	// trailer section.
	ChunkedBody
	// CloseBody: the body runs until the sender closes the connection,
	// which therefore carries no further response.
	CloseBody
)

// ResponseFraming decides how the body of r, a response head read by
// ParseResponse to a request with method, is delimited (RFC 9112 §6.3):
// an answer to HEAD, a 1xx, 204 or 304 has none whatever its
// Content-Length says (the length describes the representation, not this
// message); then chunked, then Content-Length; without either the body
// runs until the connection closes. (CONNECT, whose 2xx turns the
// connection into a tunnel, never reaches an origin from accel.)
func ResponseFraming(method []byte, r *Response) Framing {
	switch {
	case string(method) == "HEAD" || !BodyAllowed(r.Status) || !r.Chunked && r.ContentLength == 0:
		return NoBody
	case r.Chunked:
		return ChunkedBody
	case r.ContentLength > 0:
		return LengthBody
	}
	return CloseBody
}

// HopByHop reports whether the field name is one RFC 9110 §7.6.1 keeps to
// one connection, or a framing field each hop sets for itself
// (Transfer-Encoding; Content-Length is the caller's, since the length
// may pass unchanged).
func HopByHop(name []byte) bool {
	switch len(name) {
	case 2:
		return equalFold(name, "TE")
	case 7:
		return equalFold(name, "Upgrade") || equalFold(name, "Trailer")
	case 10:
		return equalFold(name, "Connection") || equalFold(name, "Keep-Alive")
	case 16:
		return equalFold(name, "Proxy-Connection")
	case 17:
		return equalFold(name, "Transfer-Encoding")
	}
	return false
}

// ConnectionSpecific reports whether a field may not appear in an HTTP/2
// request (RFC 9113 §8.2.2): the hop-by-hop fields, but for TE with the
// value "trailers", which HTTP/2 allows, and Trailer, which only names the
// trailers to come (the proxy drops it with them, as HopByHop says).
func ConnectionSpecific(name, value []byte) bool {
	switch {
	case !HopByHop(name), equalFold(name, "Trailer"):
		return false
	case equalFold(name, "TE"):
		return string(value) != "trailers"
	}
	return true
}

// ConnectionOptions returns the values of the Connection fields: the names
// of further fields meant for this hop only (RFC 9110 §7.6.1). Most
// messages have none, which keeps Listed free.
func ConnectionOptions(fs Fields) [][]byte {
	var opts [][]byte
	for _, f := range fs {
		if equalFold(f.Name, "Connection") {
			opts = append(opts, f.Value)
		}
	}
	return opts
}

// Listed reports whether one of the Connection values opts names name.
func Listed(opts [][]byte, name []byte) bool {
	for _, v := range opts {
		if HasToken(v, string(name)) {
			return true
		}
	}
	return false
}

// StripHopByHop returns fs without its hop-by-hop fields, those
// Connection names included, in a new slice.
func StripHopByHop(fs Fields) Fields {
	opts := ConnectionOptions(fs)
	out := make(Fields, 0, len(fs))
	for _, f := range fs {
		if !HopByHop(f.Name) && !Listed(opts, f.Name) {
			out = append(out, f)
		}
	}
	return out
}
