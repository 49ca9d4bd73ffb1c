package accel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"accel/parser"
)

// h1conn is one HTTP/1 client connection. Its goroutine owns every field.
type h1conn struct {
	s      *Server
	c      net.Conn
	state  *connState
	tls    bool
	rb     rbuf
	bw     *bufio.Writer
	req    parser.Request
	lim    parser.Limits
	hdrTO  time.Duration
	idleTO time.Duration
	remote net.Addr
	// w and ex are reused by every request that serveFast answers; a
	// request that goes to an origin gets its own, which the cache's
	// background work may outlive the request with.
	w  h1Writer
	ex exchange
	// idleUntil is the read deadline this goroutine last set for waiting
	// on a new request, zero once anything else set one.
	idleUntil time.Time
}

var bufwPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// serveHTTP1 runs the keep-alive loop: read a head, serve it, answer in
// order, until the client or a rule closes the connection. pre holds bytes
// already read by the protocol sniffing.
func (s *Server) serveHTTP1(c net.Conn, state *connState, pre []byte, isTLS bool) {
	st := s.state.Load()
	lim := st.cfg.Limits
	hc := &h1conn{
		s: s, c: c, state: state, tls: isTLS,
		lim: parser.Limits{
			MaxHeadBytes:   int(lim.MaxHeadBytes),
			MaxTargetBytes: int(lim.MaxTargetBytes),
		},
		hdrTO:  lim.HeaderTimeout.D(),
		idleTO: lim.IdleTimeout.D(),
		remote: c.RemoteAddr(),
	}
	hc.rb = rbuf{conn: c, buf: make([]byte, max(4096, len(pre))), max: hc.lim.MaxHeadBytes, readTimeout: lim.ReadTimeout.D()}
	hc.rb.w = copy(hc.rb.buf, pre)
	hc.bw = bufwPool.Get().(*bufio.Writer)
	hc.bw.Reset(&deadlineWriter{c: c, timeout: lim.WriteTimeout.D()})
	defer func() {
		hc.bw.Reset(nil)
		bufwPool.Put(hc.bw)
	}()
	for {
		n, err := hc.readHead()
		if err != nil {
			hc.reject(err)
			return
		}
		if !hc.serveOne(n) {
			return
		}
	}
}

// readHead parses the next request head, reading as needed within the
// idle timeout (no byte yet) and the header timeout (from the first byte).
// A head that arrives whole in one read changes no deadline but the idle
// one, and that one only once it is off by a second or more.
func (hc *h1conn) readHead() (int, error) {
	hc.rb.compact()
	started := hc.rb.buffered() > 0
	if started {
		hc.setHeadDeadline()
	}
	for {
		if hc.rb.w > hc.rb.r {
			n, err := parser.ParseRequest(hc.rb.buf[hc.rb.r:hc.rb.w], &hc.req, hc.lim)
			if err != parser.ErrIncomplete {
				return n, err
			}
			if hc.idleUntil != (time.Time{}) {
				// More bytes of a started head: the header timeout runs.
				hc.setHeadDeadline()
			}
		}
		// Everything answered so far goes out before we wait for more.
		if err := hc.bw.Flush(); err != nil {
			return 0, errClientGone
		}
		if !started {
			// Idle and its deadline are set before draining is checked:
			// Shutdown sets draining and then expires the deadlines of idle
			// connections, so one of the two always catches a connection
			// about to wait.
			hc.state.idle.Store(true)
			hc.armIdle()
			if hc.s.draining.Load() {
				return 0, errDraining
			}
		}
		if err := hc.rb.fill(); err != nil {
			if !started {
				return 0, errClientGone
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return 0, errHeadTimeout
			}
			return 0, errClientGone
		}
		if !started {
			started = true
			hc.state.idle.Store(false)
		}
	}
}

// armIdle makes the read deadline the idle timeout from now, unless the
// one set for the previous wait is within a second of it: a connection
// answered from the cache then pays no deadline change per request.
func (hc *h1conn) armIdle() {
	now := time.Now()
	slack := min(time.Second, hc.idleTO/4)
	if hc.idleUntil.Sub(now) > hc.idleTO-slack {
		return
	}
	hc.idleUntil = now.Add(hc.idleTO)
	hc.c.SetReadDeadline(hc.idleUntil)
}

// setHeadDeadline starts the header timeout.
func (hc *h1conn) setHeadDeadline() {
	hc.idleUntil = time.Time{}
	hc.c.SetReadDeadline(time.Now().Add(hc.hdrTO))
}

var (
	errClientGone  = errors.New("client closed the connection")
	errHeadTimeout = errors.New("request head not complete within header_timeout")
	errDraining    = errors.New("server is shutting down")
)

// reject answers a head that cannot be served and ends the connection.
func (hc *h1conn) reject(err error) {
	status := 0
	var pe *parser.Error
	switch {
	case errors.As(err, &pe):
		status = pe.Status
		hc.s.metrics.IncRejection(pe.Name)
		if pe == parser.ErrBadVersion && !hc.httpLine() {
			// A first line with no HTTP version at all (an HTTP/2 preface
			// gone wrong, HTTP/0.9, another protocol) cannot be answered in
			// HTTP/1.1: the connection closes unanswered (RFC 9113 §3.4).
			status = 0
		}
	case err == errHeadTimeout:
		status = 408
		hc.s.metrics.IncRejection("head_timeout")
	}
	if status != 0 {
		reason := "head_timeout"
		if pe != nil {
			reason = pe.Name
		}
		hc.s.logRefused(hc.c.RemoteAddr(), status, reason)
		msg := err.Error() + "\n"
		hc.bw.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " " + statusText(status) + "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + strconv.Itoa(len(msg)) + "\r\nConnection: close\r\n\r\n" + msg)
	}
	hc.bw.Flush()
	hc.closeWrite()
}

// httpLine reports whether the buffered first line names an HTTP version.
func (hc *h1conn) httpLine() bool {
	b := hc.rb.buf[hc.rb.r:hc.rb.w]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return bytes.Contains(b, []byte("HTTP/"))
}

// closeWrite ends the connection so that the client reads our answer
// before a reset: shut the write side, then wait briefly for the client's
// close (lingering close, as nginx does).
func (hc *h1conn) closeWrite() {
	if tc, ok := hc.c.(*net.TCPConn); ok {
		tc.CloseWrite()
		hc.c.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, io.LimitReader(hc.c, 256<<10))
	}
}

// serveOne serves the parsed request of n head bytes and reports whether
// the connection stays open for another.
func (hc *h1conn) serveOne(n int) bool {
	hc.rb.r += n
	req := &hc.req
	if !req.Chunked && req.ContentLength <= 0 {
		hc.w = h1Writer{bw: hc.bw, reqMajor: req.Major, reqMinor: req.Minor, head: string(req.Method) == "HEAD", length: -1, close: req.Close}
		hc.ex = exchange{req: req, tls: hc.tls, proto: "h1", remote: hc.remote, w: &hc.w, hostBuf: hc.ex.hostBuf, client: hc.ex.client, logHost: hc.ex.logHost}
		if hc.s.serveFast(&hc.ex) {
			hc.w.finish()
			return hc.keepOpen(&hc.w)
		}
	}
	hc.idleUntil = time.Time{}
	hc.c.SetReadDeadline(time.Time{})
	w := &h1Writer{bw: hc.bw, reqMajor: req.Major, reqMinor: req.Minor, head: string(req.Method) == "HEAD", length: -1, close: req.Close}
	cont := &continuer{w: w, want: req.Expect100}
	var body io.Reader
	var cb *chunkedBody
	var lb *lengthBody
	switch {
	case req.Chunked:
		cb = newChunkedBody(&hc.rb, cont)
		body = cb
		// The first chunk is read before the origin is chosen: a body
		// whose framing is broken from its first line is refused here,
		// and the origin never sees its head.
		first := make([]byte, 4096)
		n, err := io.ReadAtLeast(cb, first, 1)
		if err != nil && err != io.EOF {
			cb.release()
			hc.reject(err)
			return false
		}
		body = io.MultiReader(bytes.NewReader(first[:n]), cb)
	case req.ContentLength > 0:
		lb = &lengthBody{rb: &hc.rb, remaining: req.ContentLength, cont: cont}
		body = lb
	}
	ex := exchange{
		req:    req,
		body:   body,
		tls:    hc.tls,
		proto:  "h1",
		remote: hc.remote,
		w:      w,
		client: hc.ex.client,
	}
	ctx, cancel := context.WithCancel(context.Background())
	var watch *abortWatch
	if body == nil && hc.rb.buffered() == 0 {
		watch = watchAbort(hc.c, cancel)
	}
	hc.s.serve(ctx, &ex)
	cancel()
	if watch != nil && !watch.stop(&hc.rb) {
		w.close = true
	}
	w.finish()
	switch {
	case body == nil:
	case cont.want:
		// The client still waits for a 100 Continue that will not come; it
		// may send the body anyway, which must not be read as a request.
		w.close = true
	case !w.close:
		// A body the pipeline did not read must be consumed before the
		// next head; a large one is not worth reading, so the connection
		// closes instead.
		io.Copy(io.Discard, io.LimitReader(body, 256<<10))
		if (lb != nil && lb.remaining > 0) || (cb != nil && !cb.done) {
			w.close = true
		}
	}
	if cb != nil && !cb.done {
		cb.done = true
		cb.br.Reset(nil)
		bufioPool.Put(cb.br)
	}
	return hc.keepOpen(w)
}

// keepOpen ends an exchange: it reports whether the connection stays open
// for another request, and closes it otherwise.
func (hc *h1conn) keepOpen(w *h1Writer) bool {
	if w.close || hc.s.draining.Load() {
		hc.bw.Flush()
		hc.closeWrite()
		return false
	}
	return true
}

// deadlineWriter bounds each write to a client that stopped reading. The
// deadline moves only once it is a second or more short of the timeout, so
// a connection answering many small responses changes it about once a
// second instead of once per write.
type deadlineWriter struct {
	c       net.Conn
	timeout time.Duration
	until   time.Time
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if d.timeout > 0 {
		now := time.Now()
		if d.until.Sub(now) <= d.timeout-min(time.Second, d.timeout/4) {
			d.until = now.Add(d.timeout)
			d.c.SetWriteDeadline(d.until)
		}
	}
	return d.c.Write(p)
}

// h1Writer writes one response in HTTP/1.1 framing: Content-Length when
// known, chunked for HTTP/1.1 clients otherwise, and close-delimited for
// HTTP/1.0 clients.
type h1Writer struct {
	bw                 *bufio.Writer
	reqMajor, reqMinor int
	head               bool // HEAD request: no body bytes
	length             int64
	wroteHead          bool
	noBody             bool
	chunked            *parser.ChunkedWriter // set when the body goes chunked
	written            int64
	// close is set when the connection must end after this response.
	close bool
	err   error
	num   [20]byte // formats lengths without allocating
}

func (w *h1Writer) SetContentLength(n int64) { w.length = n }

func (w *h1Writer) Written() bool { return w.wroteHead }

func (w *h1Writer) WriteHead(status int, fields parser.Fields) error {
	if w.wroteHead {
		return errors.New("accel: response head written twice")
	}
	w.wroteHead = true
	bw := w.bw
	bw.WriteString(statusLine(status))
	hasDate := false
	for _, f := range fields {
		if parser.HopByHop(f.Name) || parser.EqualFold(f.Name, "Content-Length") {
			continue
		}
		if parser.EqualFold(f.Name, "Date") {
			hasDate = true
		}
		bw.Write(f.Name)
		bw.WriteString(": ")
		bw.Write(f.Value)
		bw.WriteString("\r\n")
	}
	if !hasDate {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	return w.endHead(status)
}

// endHead writes the framing fields and the blank line that end a head.
func (w *h1Writer) endHead(status int) error {
	bw := w.bw
	w.noBody = w.head || !parser.BodyAllowed(status)
	switch {
	case status < 200 || status == 204:
	case w.length >= 0 && (status != 304 || w.head):
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(w.num[:0], w.length, 10))
		bw.WriteString("\r\n")
	case w.noBody:
	case w.reqMajor == 1 && w.reqMinor >= 1:
		w.chunked = parser.NewChunkedWriter(bw)
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	default:
		w.close = true
	}
	switch {
	case w.close:
		bw.WriteString("Connection: close\r\n")
	case w.reqMinor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// WriteStored writes a stored response: its serialised head as it is,
// extra, the framing, and the body, into the connection's buffer, so that
// a small response leaves in one write.
func (w *h1Writer) WriteStored(status int, fields parser.Fields, wire []byte, extra parser.Fields, body []byte) error {
	if w.wroteHead {
		return errors.New("accel: response head written twice")
	}
	w.wroteHead = true
	w.length = int64(len(body))
	bw := w.bw
	bw.WriteString(statusLine(status))
	bw.Write(wire)
	for _, f := range extra {
		bw.Write(f.Name)
		bw.WriteString(": ")
		bw.Write(f.Value)
		bw.WriteString("\r\n")
	}
	if err := w.endHead(status); err != nil {
		return w.fail(err)
	}
	if w.noBody {
		return nil
	}
	_, err := w.Write(body)
	return err
}

func (w *h1Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if !w.wroteHead {
		if err := w.WriteHead(200, nil); err != nil {
			return 0, err
		}
	}
	if w.noBody || len(p) == 0 {
		return len(p), nil
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		w.err = errBodyTooLong
		w.close = true
		return 0, w.err
	}
	w.written += int64(len(p))
	if w.chunked != nil {
		n, err := w.chunked.Write(p)
		return n, w.fail(err)
	}
	n, err := w.bw.Write(p)
	return n, w.fail(err)
}

func (w *h1Writer) fail(err error) error {
	if err != nil {
		w.err, w.close = err, true
	}
	return err
}

func (w *h1Writer) Flush() error { return w.fail(w.bw.Flush()) }

// Abort marks the response as broken after its head went out: the body
// is not completed, and the connection closes.
func (w *h1Writer) Abort() {
	if w.err == nil {
		w.err = errors.New("accel: response aborted")
	}
	w.close = true
}

// finish ends the body. A body shorter than its announced length, or one
// cut by an error, cannot be framed any more: the connection closes, which
// the client reads as a truncated response, never as a complete one.
func (w *h1Writer) finish() {
	if !w.wroteHead {
		w.close = true
		writeError(w, 500, "no response")
	}
	if w.err != nil {
		w.close = true
		return
	}
	if w.chunked != nil {
		w.chunked.Close()
	}
	if !w.noBody && w.length >= 0 && w.written != w.length {
		w.close = true
	}
}

// abortWatch reads the connection while a bodiless request is served, so
// that a client that goes away cancels the origin request instead of
// leaving it to run (as net/http's background read does). A byte that
// arrives meanwhile is the start of the next request and is kept.
type abortWatch struct {
	c    net.Conn
	done chan struct{}
	b    [1]byte
	n    int
	err  error
}

func watchAbort(c net.Conn, cancel context.CancelFunc) *abortWatch {
	a := &abortWatch{c: c, done: make(chan struct{})}
	c.SetReadDeadline(time.Time{})
	go func() {
		defer close(a.done)
		a.n, a.err = c.Read(a.b[:])
		if a.n == 0 && !errors.Is(a.err, os.ErrDeadlineExceeded) {
			cancel()
		}
	}()
	return a
}

// stop ends the watch and hands a byte it read to rb. It reports whether
// the connection is still good for another request.
func (a *abortWatch) stop(rb *rbuf) bool {
	a.c.SetReadDeadline(time.Unix(1, 0))
	<-a.done
	if a.n > 0 {
		rb.unread(a.b[:a.n])
		return true
	}
	return errors.Is(a.err, os.ErrDeadlineExceeded)
}
