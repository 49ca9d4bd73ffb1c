package parser

// Request is a protocol-neutral request head. The HTTP/1 front fills it by
// ParseRequest; the HTTP/2 front fills it from the decoded header block. All
// slices alias the buffer the head came from.
type Request struct {
	Method []byte
	// Target is the request-target as sent: origin-form ("/a?b"),
	// absolute-form, authority-form (CONNECT) or "*".
	Target []byte
	// Host is the Host field (HTTP/1.1) or :authority (HTTP/2).
	Host         []byte
	Major, Minor int
	Fields       Fields
	// ContentLength is the body length, or -1 when the body is chunked or
	// (HTTP/2) of unknown length; 0 when the request has no body.
	ContentLength int64
	Chunked       bool
	// Close is set when the connection must close after this exchange:
	// "Connection: close", or HTTP/1.0 without "Connection: keep-alive".
	Close     bool
	Expect100 bool
}

// Reset empties r for reuse, keeping the capacity of Fields.
func (r *Request) Reset() {
	clear(r.Fields)
	*r = Request{Fields: r.Fields[:0]}
}

// Response is a response head as an origin sent it.
type Response struct {
	Major, Minor int
	Status       int
	Reason       []byte
	Fields       Fields
	// ContentLength is the body length, or -1 when the body is chunked or
	// delimited by the connection closing.
	ContentLength int64
	Chunked       bool
	Close         bool
}

// Reset empties r for reuse, keeping the capacity of Fields.
func (r *Response) Reset() {
	clear(r.Fields)
	*r = Response{Fields: r.Fields[:0]}
}
