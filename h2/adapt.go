package h2

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"accel/parser"
)

// ServeHTTP adapts net/http's request to the neutral head.
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	req := parser.Request{
		Method:        []byte(r.Method),
		Target:        []byte(r.RequestURI),
		Host:          []byte(r.Host),
		Major:         2,
		ContentLength: r.ContentLength,
		Fields:        make(parser.Fields, 0, len(r.Header)+1),
	}
	if r.Method == http.MethodConnect {
		// Extended CONNECT and tunnels are not proxied; RFC 9113 §8.5.
		http.Error(rw, "CONNECT is not supported", http.StatusMethodNotAllowed)
		return
	}
	if len(req.Target) == 0 || req.Target[0] != '/' && r.RequestURI != "*" {
		req.Target = []byte(r.URL.RequestURI())
	}
	req.Fields = appendFields(req.Fields, r.Header)
	if err := parser.CheckHead(&req); err != nil {
		// What an HTTP/1.1 origin could read two ways never leaves.
		http.Error(rw, err.Error(), parser.Status(err))
		return
	}
	rc := http.NewResponseController(rw)
	var body io.Reader
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		body = &deadlineBody{r: r.Body, rc: rc, timeout: s.cfg.ReadTimeout}
	}
	w := &Writer{rw: rw, rc: rc, timeout: s.cfg.WriteTimeout, length: -1, head: r.Method == http.MethodHead}
	c := Conn{TLS: r.TLS != nil}
	if nc, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		c.Remote = nc.RemoteAddr()
	}
	s.handler(r.Context(), &req, body, w, c)
	w.finish()
}

// appendFields copies the header into fields, dropping what may not cross
// from HTTP/2 to HTTP/1.1 and joining cookie crumbs (RFC 9113 §8.2.3).
func appendFields(fs parser.Fields, h http.Header) parser.Fields {
	for name, values := range h {
		lower := strings.ToLower(name)
		if connectionSpecific(lower) || lower == "host" {
			continue
		}
		if lower == "cookie" {
			fs = append(fs, parser.Field{Name: []byte("Cookie"), Value: []byte(strings.Join(values, "; "))})
			continue
		}
		for _, v := range values {
			fs = append(fs, parser.Field{Name: []byte(name), Value: []byte(v)})
		}
	}
	return fs
}

// connectionSpecific names the fields RFC 9113 §8.2.2 keeps out of HTTP/2
// and RFC 9110 §7.6.1 keeps to one hop.
func connectionSpecific(lower string) bool {
	switch lower {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "content-length":
		return true
	}
	return false
}

// deadlineBody bounds each wait for request body bytes on a stream: a
// client that stops sending would otherwise hold an origin connection.
type deadlineBody struct {
	r       io.Reader
	rc      *http.ResponseController
	timeout time.Duration
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if err := b.rc.SetReadDeadline(time.Now().Add(b.timeout)); err != nil {
		return 0, err
	}
	return b.r.Read(p)
}

// Writer sends one response on a stream. It implements the pipeline's
// response writer.
type Writer struct {
	rw      http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration // each write, waiting for flow-control window included
	length  int64
	head    bool // the request was HEAD: no body goes out
	written bool
}

// SetContentLength sets the length announced by WriteHead; -1 for unknown.
func (w *Writer) SetContentLength(n int64) { w.length = n }

// WriteHead sends the status and fields; connection-specific fields are
// dropped.
func (w *Writer) WriteHead(status int, fields parser.Fields) error {
	h := w.rw.Header()
	for _, f := range fields {
		name := string(f.Name)
		if connectionSpecific(strings.ToLower(name)) {
			continue
		}
		h[http.CanonicalHeaderKey(name)] = append(h[http.CanonicalHeaderKey(name)], string(f.Value))
	}
	if _, ok := h["Content-Type"]; !ok {
		// A proxy passes the origin's type or none; net/http would sniff one.
		h["Content-Type"] = nil
	}
	if w.length >= 0 && bodyAllowed(status) {
		h.Set("Content-Length", strconv.FormatInt(w.length, 10))
	}
	w.written = true
	w.rw.WriteHeader(status)
	return nil
}

// Write sends body bytes.
func (w *Writer) Write(p []byte) (int, error) {
	if w.head {
		return len(p), nil
	}
	if err := w.rc.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return 0, err
	}
	return w.rw.Write(p)
}

// Flush pushes what was written to the client.
func (w *Writer) Flush() error {
	if err := w.rc.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return err
	}
	return w.rc.Flush()
}

// Abort resets the stream after the head went out, so the client sees a
// broken response instead of a short one that looks complete.
func (w *Writer) Abort() {
	panic(http.ErrAbortHandler)
}

// Written reports whether the head went out.
func (w *Writer) Written() bool { return w.written }

// finish makes sure a handler that wrote nothing still answers.
func (w *Writer) finish() {
	if !w.written {
		w.rw.WriteHeader(http.StatusInternalServerError)
	}
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != 204 && status != 304
}
