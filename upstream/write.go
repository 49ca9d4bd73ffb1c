package upstream

import (
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/accel-proxy/accel/parser"
)

// requestBody is the request body as the exchange reads it. It counts what
// was read, since a body read in part cannot be sent again, keeps the
// client's own read error apart from the server's failures, and pushes the
// write deadline forward before each chunk so that silence, not length,
// times out.
type requestBody struct {
	r       io.Reader
	n       int64
	err     error
	conn    net.Conn // of the current try
	timeout time.Duration
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF {
		b.err = err
	}
	// The origin's clock starts once the client gave us bytes to send: a
	// client that pauses is the client's read timeout's business, not a
	// failure of the origin.
	if derr := writeWithin(b.conn, time.Time{}, b.timeout); derr != nil && err == nil {
		return n, derr
	}
	return n, err
}

// appendRequestHead appends the head the origin receives: head's method and
// target as HTTP/1.1, and its fields as given, in order, except the framing,
// which is ours. Transfer-Encoding is dropped; with a body of known length
// the first Content-Length keeps its place with the length sent (or one is
// added), a body of unknown length goes chunked, and a POST, PUT or PATCH
// without a body says Content-Length: 0 (RFC 9110 §8.6). A Host field is
// spelled "Host"; without one, Host is head.Host or the server's address.
func appendRequestHead(dst []byte, head *parser.Request, hasBody bool, addr string) []byte {
	dst = append(dst, head.Method...)
	dst = append(dst, ' ')
	dst = append(dst, head.Target...)
	dst = append(dst, " HTTP/1.1\r\n"...)
	if !head.Fields.Has("Host") {
		dst = append(dst, "Host: "...)
		if len(head.Host) > 0 {
			dst = append(dst, head.Host...)
		} else {
			dst = append(dst, addr...)
		}
		dst = append(dst, "\r\n"...)
	}
	chunked := hasBody && head.ContentLength < 0
	wroteLength := false
	for _, f := range head.Fields {
		name := f.Name
		switch {
		case parser.EqualFold(name, "Transfer-Encoding"):
			continue
		case parser.EqualFold(name, "Content-Length"):
			if chunked || wroteLength || !hasBody {
				continue
			}
			wroteLength = true
			dst = append(dst, name...)
			dst = append(dst, ": "...)
			dst = strconv.AppendInt(dst, head.ContentLength, 10)
			dst = append(dst, "\r\n"...)
			continue
		case parser.EqualFold(name, "Host"):
			name = hostName
		}
		dst = append(dst, name...)
		dst = append(dst, ": "...)
		dst = append(dst, f.Value...)
		dst = append(dst, "\r\n"...)
	}
	switch {
	case chunked:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	case hasBody && !wroteLength:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, head.ContentLength, 10)
		dst = append(dst, "\r\n"...)
	case !hasBody && expectsContent(head.Method):
		dst = append(dst, "Content-Length: 0\r\n"...)
	}
	return append(dst, "\r\n"...)
}

var hostName = []byte("Host")

// expectsContent reports whether a request of this method without a body
// should say so: origins answer 411 to a POST without a length.
func expectsContent(method []byte) bool {
	switch string(method) {
	case "POST", "PUT", "PATCH":
		return true
	}
	return false
}

// copyBufs are the buffers request bodies are copied through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writeBody sends body after the head, framed as appendRequestHead said:
// exactly length bytes, or chunked when length is -1. A body that ends
// early is the client's failure (ErrRequestBody), not the server's.
func writeBody(w io.Writer, body *requestBody, length int64) error {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	if length < 0 {
		cw := parser.NewChunkedWriter(w)
		if _, err := io.CopyBuffer(cw, body, *buf); err != nil {
			return err
		}
		return cw.Close()
	}
	n, err := io.CopyBuffer(w, io.LimitReader(body, length), *buf)
	if err == nil && n < length {
		body.err = io.ErrUnexpectedEOF
		return io.ErrUnexpectedEOF
	}
	return err
}
