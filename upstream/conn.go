package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"accel/parser"
)

// readBufferSize is the per-connection read buffer, which also bounds the
// response head: fasthttp's 4 KiB default is too small for the Set-Cookie
// heavy heads some origins send.
const readBufferSize = 32 << 10

// Request is what Do sends to a server.
type Request struct {
	// Head is sent as given: method, target, and the fields with their
	// names, order and values, except for the framing, which is ours
	// (Transfer-Encoding is dropped, Content-Length is set to the body we
	// send, or replaced by chunked framing when ContentLength is -1). A Host
	// field is spelled "Host" (fasthttp looks it up by that spelling); when
	// Fields has none, one from Head.Host, or the server's address, is sent
	// first.
	Head *parser.Request
	// Body is streamed, never buffered whole: with Head.ContentLength >= 0
	// exactly that many bytes are sent, with -1 it is sent chunked. nil or
	// Head.ContentLength 0 sends no body. Do does not close it.
	Body io.Reader
	// Retryable allows sending the request again to another server after a
	// failure that may have followed a partial send: GET, HEAD, OPTIONS, and
	// PUT or DELETE where the route allows. A request whose body was read in
	// part is never sent again.
	Retryable bool
}

// Response is a server's answer.
type Response struct {
	// Head is the response head: Status, Reason, version, and Fields as the
	// origin sent them minus Content-Length and Transfer-Encoding;
	// Connection stays, so that the caller can drop the hop-by-hop fields
	// it names before passing the rest on. Fields with the same name keep their order; fasthttp
	// gathers Content-Type, Content-Encoding, Server, Set-Cookie and Trailer
	// ahead of the others and spells those names canonically. ContentLength
	// is -1 when unknown (chunked or close-delimited). For a response without
	// a body (HEAD, 1xx, 204, 304) Body is empty and ContentLength is what the
	// origin announced, or -1.
	Head parser.Response
	// Body streams from the origin. Close releases the connection: back to
	// the pool when the body was read to the end, closed otherwise; it must
	// be called even after io.EOF. A failed read returns an *Error.
	Body io.ReadCloser
	// Server is the address of the server that answered.
	Server string
}

// newHostClient builds the connection pool of one server. Only what fasthttp
// uses for pooling matters here: the exchange itself is exchange's, so
// HostClient's retries, read timeout and header handling never run.
func newHostClient(addr string, cfg *Config, maxConns int) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                addr,
		Dial:                dialer(cfg.ConnectTimeout),
		MaxConns:            maxConns,
		MaxIdleConnDuration: cfg.IdleTimeout,
		ReadBufferSize:      readBufferSize,
		// The most recently used connection is the least likely to have
		// been closed by the origin's own idle timeout.
		ConnPoolStrategy: fasthttp.LIFO,
	}
}

// dialer connects with a timeout; Go sets TCP_NODELAY by default. Its
// failures are DialErrors, so that the exchange knows nothing was written.
func dialer(timeout time.Duration) fasthttp.DialFunc {
	d := &net.Dialer{Timeout: timeout}
	return func(addr string) (net.Conn, error) {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return nil, &DialError{Addr: addr, Err: err}
		}
		return c, nil
	}
}

// requestBody is the request body as fasthttp reads it. It counts what was
// read, since a body read in part cannot be sent again, keeps the client's
// own read error apart from the server's failures, and pushes the write
// deadline forward before each chunk so that silence, not length, times out.
// It has no Close: fasthttp closes body streams that have one, and the body
// belongs to the caller.
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
	if derr := b.conn.SetWriteDeadline(time.Now().Add(b.timeout)); derr != nil && err == nil {
		return n, derr
	}
	return n, err
}

// buildRequest writes head into dst in fasthttp's raw-header mode, where it
// adds, drops and reorders nothing but the framing.
func buildRequest(dst *fasthttp.Request, head *parser.Request, body *requestBody, addr string) {
	h := &dst.Header
	h.DisableSpecialHeader()
	h.DisableNormalizing()
	h.SetMethodBytes(head.Method)
	h.SetRequestURIBytes(head.Target)
	if !head.Fields.Has("Host") {
		host := head.Host
		if len(host) == 0 {
			host = []byte(addr)
		}
		h.AddBytesV("Host", host)
	}
	chunked := body != nil && head.ContentLength < 0
	haveLength := false
	for _, f := range head.Fields {
		switch {
		case parser.EqualFold(f.Name, "Transfer-Encoding"):
			continue
		case parser.EqualFold(f.Name, "Content-Length"):
			// fasthttp rewrites the first one in place to the length sent.
			if chunked || haveLength {
				continue
			}
			haveLength = true
		case parser.EqualFold(f.Name, "Host"):
			h.AddBytesV("Host", f.Value)
			continue
		}
		h.AddBytesKV(f.Name, f.Value)
	}
	if body != nil {
		dst.SetBodyStream(body, int(head.ContentLength))
	}
}

// exchange sends head (and body) on a connection of hc and reads the response
// head. done, if not nil, is called after the connection is given back, with
// the error that reading the body met, if any; the Body of the Response must be closed. The
// caller's ctx interrupts the exchange until the head has arrived; after that
// closing the Body does.
func exchange(ctx context.Context, hc *fasthttp.HostClient, addr string, head *parser.Request, body *requestBody, timeout time.Duration, done func(error)) (*Response, error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	buildRequest(req, head, body, addr)

	// Idle connections that have something to read are passed over: bytes
	// an origin sent past a response's end (which this request would take
	// as its answer), or the EOF of an origin that closed while idle.
	cc, err := hc.AcquireConn(0, false)
	for i := 0; err == nil && dirty(cc.Conn()); i++ {
		hc.CloseConn(cc)
		if i == maxDirtyConns {
			// The whole idle set is suspect (the origin restarted, say):
			// drop it and dial, rather than test connections one by one.
			hc.CloseIdleConnections()
		}
		if i > maxDirtyConns {
			return nil, &Error{Server: addr, Err: errDirtyConn}
		}
		cc, err = hc.AcquireConn(0, false)
	}
	if err != nil {
		// A dial failure, or no free connection: nothing was written.
		return nil, &Error{Server: addr, Timeout: isTimeout(err), Err: err}
	}
	conn := cc.Conn()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*Response, error) {
		stop()
		hc.CloseConn(cc)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, &Error{Server: addr, Sent: true, Timeout: isTimeout(err), Err: err}
	}

	if body != nil {
		body.conn, body.timeout = conn, timeout
	}
	if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return fail(err)
	}
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		if body != nil && body.err != nil {
			err = errors.Join(ErrRequestBody, body.err)
		}
		return fail(err)
	}

	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return fail(err)
	}
	resp := fasthttp.AcquireResponse()
	resp.Header.DisableNormalizing()
	resp.Header.SetNoDefaultContentType(true)
	resp.StreamBody = true
	resp.SkipBody = string(head.Method) == "HEAD"
	br := hc.AcquireReader(conn)
	if err := resp.ReadLimitBody(br, 0); err != nil {
		hc.ReleaseReader(br)
		fasthttp.ReleaseResponse(resp)
		return fail(err)
	}
	if !stop() {
		// ctx fired after the head arrived; its AfterFunc closes conn.
		resp.CloseBodyStream()
		hc.ReleaseReader(br)
		fasthttp.ReleaseResponse(resp)
		return fail(ctx.Err())
	}

	out := &Response{Server: addr}
	convertHead(&out.Head, &resp.Header)
	// After a 101 the connection speaks another protocol.
	keep := resp.Header.IsHTTP11() && !resp.Header.ConnectionClose() && resp.Header.StatusCode() != 101
	// finish gives everything back: the connection to the pool when reuse
	// is set, then the lease through done.
	finish := func(reuse bool, failed error) {
		resp.CloseBodyStream()
		// Bytes past the end of the body belong to no request: a
		// connection holding them must never answer the next one.
		reuse = reuse && br.Buffered() == 0
		hc.ReleaseReader(br)
		fasthttp.ReleaseResponse(resp)
		if reuse && keep {
			hc.ReleaseConn(cc)
		} else {
			hc.CloseConn(cc)
		}
		if done != nil {
			done(failed)
		}
	}
	stream := resp.BodyStream()
	if stream == nil || resp.Header.ContentLength() == 0 {
		finish(true, nil)
		out.Body = emptyBody{}
		return out, nil
	}
	// A close-delimited body leaves nothing to reuse.
	keep = keep && resp.Header.ContentLength() != -2
	out.Body = &responseBody{addr: addr, conn: conn, timeout: timeout, stream: stream, finish: finish}
	return out, nil
}

// maxDirtyConns bounds the idle connections one request tests one by one
// before it drops the idle set.
const maxDirtyConns = 8

// dirty reports whether an idle connection is readable, by peeking
// without blocking: a Read with a past deadline would fail before looking.
func dirty(c net.Conn) bool {
	// The raw read below honours the read deadline; an expired one would
	// make a clean connection look broken.
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return true
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	readable := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Data, an EOF (0 bytes, no error) or a socket error all mean the
		// connection cannot carry a new request.
		readable = n > 0 || err == nil || err != syscall.EAGAIN
		return true
	})
	return readable || err != nil
}

// convertHead copies fasthttp's response head into dst, in one buffer that
// outlives the pooled fasthttp.Response.
func convertHead(dst *parser.Response, h *fasthttp.ResponseHeader) {
	dst.Status = h.StatusCode()
	dst.Major, dst.Minor = 1, 1
	if !h.IsHTTP11() {
		dst.Minor = 0
	}
	dst.Close = h.ConnectionClose()
	cl := int64(h.ContentLength())
	dst.Chunked = cl == -1
	if cl < 0 {
		cl = -1
	}
	dst.ContentLength = cl

	n := len(h.StatusMessage())
	fields := 0
	for k, v := range h.All() {
		if !framing(k) {
			n += len(k) + len(v)
			fields++
		}
	}
	buf := make([]byte, 0, n)
	dst.Fields = make(parser.Fields, 0, fields)
	keep := func(b []byte) []byte {
		s := len(buf)
		buf = append(buf, b...)
		return buf[s:len(buf):len(buf)]
	}
	dst.Reason = keep(h.StatusMessage())
	for k, v := range h.All() {
		if !framing(k) {
			dst.Fields = append(dst.Fields, parser.Field{Name: keep(k), Value: keep(v)})
		}
	}
}

// framing reports whether a response field is about this connection's
// framing, which the proxy redoes for its client.
func framing(name []byte) bool {
	return parser.EqualFold(name, "Content-Length") ||
		parser.EqualFold(name, "Transfer-Encoding")
}

// emptyBody is the Body of a response without one.
type emptyBody struct{}

func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }
func (emptyBody) Close() error             { return nil }

var _ io.ReadCloser = (*responseBody)(nil)

var errBodyClosed = errors.New("upstream: read on closed response body")

// responseBody streams a response body from its connection. Only Close gives
// the connection back, so that a Read can never race with the connection
// going to another request: Close closes the connection first when a Read is
// in flight, and then the connection is never reused.
type responseBody struct {
	addr    string
	conn    net.Conn
	timeout time.Duration
	stream  io.Reader
	finish  func(reuse bool, failed error)

	closed atomic.Bool
	// mu is held by Read while it uses the connection; it guards the fields
	// below.
	mu  sync.Mutex
	eof bool
	err error // the read failure, returned again by later Reads
}

func (b *responseBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errBodyClosed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed.Load():
		return 0, errBodyClosed
	case b.eof:
		return 0, io.EOF
	case b.err != nil:
		return 0, b.err
	}
	if err := b.conn.SetReadDeadline(time.Now().Add(b.timeout)); err != nil {
		b.err = &Error{Server: b.addr, Sent: true, Err: err}
		return 0, b.err
	}
	n, err := b.stream.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.err = &Error{Server: b.addr, Sent: true, Timeout: isTimeout(err), Err: err}
		err = b.err
	}
	return n, err
}

// Close gives the connection back: to the pool if the body was read to the
// end, closed otherwise. A read failure counts against the server.
func (b *responseBody) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	locked := b.mu.TryLock()
	if !locked {
		b.conn.Close() // unblocks the Read in flight
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	// Without the lock the Read failed because of our own interrupt, which
	// says nothing about the server.
	var failed error
	if locked {
		failed = b.err
	}
	b.finish(locked && b.eof, failed)
	return nil
}
