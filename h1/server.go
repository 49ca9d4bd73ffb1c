package h1

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accel-proxy/accel/internal/cfgerr"
	"github.com/accel-proxy/accel/parser"
)

// Config holds the HTTP/1 limits: the config file's limits section. The
// zero value of a field is its default.
type Config struct {
	// MaxHeadBytes bounds a request head; 0 is parser's default (64 KiB).
	// Over it the answer is 431.
	MaxHeadBytes int
	// MaxTargetBytes bounds the request-target; 0 is parser's default
	// (8 KiB). Over it the answer is 414.
	MaxTargetBytes int
	// HeaderTimeout bounds the time from a head's first byte to its end;
	// 0 means 10s. Over it the answer is 408.
	HeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new
	// request for this long; 0 means 75s.
	IdleTimeout time.Duration
	// ReadTimeout bounds each wait for request body bytes; 0 means 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write to a client that stopped reading;
	// 0 means 30s.
	WriteTimeout time.Duration
}

// Validate fills the zero (or negative) fields with their defaults and
// refuses limits that contradict each other, naming the field as the config
// file's limits section spells it (a *cfgerr.Error).
func (c *Config) Validate() error {
	*c = c.withDefaults()
	if c.MaxTargetBytes > c.MaxHeadBytes {
		// The target is part of the head: its own bound could never be
		// reached.
		return cfgerr.Errorf([]any{"max_target_bytes"}, "%d is larger than max_head_bytes (%d)", c.MaxTargetBytes, c.MaxHeadBytes)
	}
	return nil
}

func (c Config) withDefaults() Config {
	lim := parser.Limits{MaxHeadBytes: c.MaxHeadBytes, MaxTargetBytes: c.MaxTargetBytes}.WithDefaults()
	c.MaxHeadBytes, c.MaxTargetBytes = lim.MaxHeadBytes, lim.MaxTargetBytes
	if c.HeaderTimeout <= 0 {
		c.HeaderTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 75 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	return c
}

// Conn carries what the handler needs to know about the connection a
// request came on.
type Conn struct {
	Remote net.Addr
	TLS    bool
	// Fast is the handler's own, for the requests ServeFast answers: the
	// connection keeps it from one request to the next.
	Fast any
}

// Handler is the pipeline behind the front.
type Handler interface {
	// ServeFast answers req without waiting (a fresh cached hit, a
	// refusal) on the connection's goroutine and reports true, or writes
	// nothing and reports false. Only requests without a body are offered.
	ServeFast(req *parser.Request, w *Writer, c *Conn) bool
	// Serve answers a request that must wait. body is nil when there is
	// none; ctx ends when the client goes away. The head, its fields and
	// w are valid only until Serve returns: the connection reuses them.
	Serve(ctx context.Context, req *parser.Request, body io.Reader, w *Writer, c *Conn)
	// Refused is told of a request refused before it reached the
	// handler, by the parser's error name or "head_timeout"; status is
	// the answer sent, 0 when the connection closed unanswered.
	Refused(remote net.Addr, status int, reason string)
}

// Server is the HTTP/1 front. It doesn't listen on its own: connections
// are given to it through Serve.
type Server struct {
	h   Handler
	cfg atomic.Pointer[Config]
	// draining is set by Shutdown: connections end after their exchange.
	draining atomic.Bool
	// retiring is set by Retire: every response says Connection: close
	// and ends its connection, but idle connections still get their next
	// request answered.
	retiring atomic.Bool
	// mu guards conns, the connections being served and whether each
	// waits for a request to start (only those may be cut by Shutdown).
	mu    sync.Mutex
	conns map[*conn]struct{}
}

// New returns a server that serves what Serve gives it with h.
func New(cfg Config, h Handler) *Server {
	s := &Server{h: h, conns: map[*conn]struct{}{}}
	s.Reconfigure(cfg)
	return s
}

// Reconfigure sets the limits of the connections served from now on.
func (s *Server) Reconfigure(cfg Config) {
	cfg = cfg.withDefaults()
	s.cfg.Store(&cfg)
}

// Retire makes every connection end after its next response, which says
// Connection: close, while a connection waiting for a request keeps
// waiting for it. A seamless restart retires the old process's
// connections this way: a keep-alive client is told to reconnect (to
// the new process) with an answer, instead of finding its connection
// closed as it sends, which an idle connection cut by Shutdown risks.
func (s *Server) Retire() { s.retiring.Store(true) }

// Shutdown makes every connection end after its current exchange and
// wakes those waiting for a request, which then close.
func (s *Server) Shutdown() {
	s.draining.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for hc := range s.conns {
		if hc.idle.Load() {
			hc.c.SetReadDeadline(time.Now())
		}
	}
}

// ending reports whether responses end their connections (Retire or
// Shutdown), which they then say with Connection: close.
func (s *Server) ending() bool { return s.retiring.Load() || s.draining.Load() }

// conn is one HTTP/1 client connection. Its goroutine owns every field.
type conn struct {
	s *Server
	c net.Conn
	// idle is set while the connection waits for a request to start.
	idle   atomic.Bool
	info   Conn
	rb     rbuf
	bw     *wbuf
	req    parser.Request
	lim    parser.Limits
	hdrTO  time.Duration
	idleTO time.Duration
	// w is reused by every request that ServeFast answers; a request
	// that waits gets its own, which work that outlives it may hold.
	w Writer
	// ctx is the context of every request that waits, and watch looks
	// for a client that goes away meanwhile (abort.go).
	ctx   *reqCtx
	watch abortWatch
	// idleUntil is the read deadline this goroutine last set for waiting
	// on a new request, zero once anything else set one.
	idleUntil time.Time
}

// Serve runs the keep-alive loop on c until the client or a rule closes
// the connection: read a head, serve it, answer in order. pre holds bytes
// already read from c (by protocol sniffing). c is a *tls.Conn whose
// handshake is done, or a cleartext conn. Serve does not close c.
func (s *Server) Serve(c net.Conn, pre []byte) {
	cfg := s.cfg.Load()
	_, isTLS := c.(*tls.Conn)
	hc := &conn{
		s: s, c: c,
		info: Conn{Remote: c.RemoteAddr(), TLS: isTLS},
		lim: parser.Limits{
			MaxHeadBytes:   cfg.MaxHeadBytes,
			MaxTargetBytes: cfg.MaxTargetBytes,
		},
		hdrTO:  cfg.HeaderTimeout,
		idleTO: cfg.IdleTimeout,
	}
	hc.rb = rbuf{conn: c, max: hc.lim.MaxHeadBytes, readTimeout: cfg.ReadTimeout, tls: isTLS}
	hc.rb.useRaw(c)
	if len(pre) > 0 {
		if len(pre) > bufSize {
			hc.rb.buf = make([]byte, len(pre))
		} else {
			hc.rb.buf = getBuf()
		}
		hc.rb.w = copy(hc.rb.buf, pre)
	}
	hc.bw = newWbuf(c, cfg.WriteTimeout)
	s.mu.Lock()
	s.conns[hc] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, hc)
		s.mu.Unlock()
		hc.bw.release()
		hc.rb.release()
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
func (hc *conn) readHead() (int, error) {
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
		now := time.Now()
		if err := hc.bw.flushAt(now); err != nil {
			return 0, errClientGone
		}
		if !started {
			// Idle and its deadline are set before draining is checked:
			// Shutdown sets draining and then expires the deadlines of idle
			// connections, so one of the two always catches a connection
			// about to wait.
			hc.idle.Store(true)
			hc.armIdle(now)
			if hc.s.draining.Load() {
				return 0, errDraining
			}
			// Nothing is buffered either way: the buffers go back to the
			// pool while the client thinks (fill borrows one when bytes
			// come), and the last head, which aliases the read buffer,
			// is dropped with it.
			hc.req.Reset()
			hc.bw.idle()
			hc.rb.release()
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
			hc.idle.Store(false)
		}
	}
}

// armIdle makes the read deadline the idle timeout from now, unless the
// one set for the previous wait is within a second of it: a connection
// answered from the cache then pays no deadline change per request.
func (hc *conn) armIdle(now time.Time) {
	slack := min(time.Second, hc.idleTO/4)
	if hc.idleUntil.Sub(now) > hc.idleTO-slack {
		return
	}
	hc.idleUntil = now.Add(hc.idleTO)
	hc.c.SetReadDeadline(hc.idleUntil)
}

// setHeadDeadline starts the header timeout.
func (hc *conn) setHeadDeadline() {
	hc.idleUntil = time.Time{}
	hc.c.SetReadDeadline(time.Now().Add(hc.hdrTO))
}

var (
	errClientGone  = errors.New("client closed the connection")
	errHeadTimeout = errors.New("request head not complete within header_timeout")
	errDraining    = errors.New("server is shutting down")
)

// reject answers a head that cannot be served and ends the connection.
func (hc *conn) reject(err error) {
	status := 0
	var pe *parser.Error
	switch {
	case errors.As(err, &pe):
		status = pe.Status
		if pe == parser.ErrBadVersion && !hc.httpLine() {
			// A first line with no HTTP version at all (an HTTP/2 preface
			// gone wrong, HTTP/0.9, another protocol) cannot be answered in
			// HTTP/1.1: the connection closes unanswered (RFC 9113 §3.4).
			status = 0
		}
	case err == errHeadTimeout:
		status = 408
	}
	if reason := refusal(pe, err); reason != "" {
		hc.s.h.Refused(hc.info.Remote, status, reason)
	}
	if status != 0 {
		msg := err.Error() + "\n"
		hc.bw.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " " + StatusText(status) + "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + strconv.Itoa(len(msg)) + "\r\nConnection: close\r\n\r\n" + msg)
	}
	hc.bw.Flush()
	hc.closeWrite()
}

// httpLine reports whether the buffered first line names an HTTP version.
func (hc *conn) httpLine() bool {
	b := hc.rb.buf[hc.rb.r:hc.rb.w]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return bytes.Contains(b, []byte("HTTP/"))
}

// closeWrite ends the connection so that the client reads our answer
// before a reset: shut the write side, then wait briefly for the client's
// close (lingering close, as nginx does).
func (hc *conn) closeWrite() {
	// A TLS connection's CloseWrite sends an alert, not a half close;
	// a TCP connection, or a PROXY protocol wrapper over one, shuts.
	if hw, ok := hc.c.(interface{ CloseWrite() error }); ok && !hc.info.TLS {
		hw.CloseWrite()
		hc.c.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, io.LimitReader(hc.c, 256<<10))
	}
}

// serveOne serves the parsed request of n head bytes and reports whether
// the connection stays open for another.
func (hc *conn) serveOne(n int) bool {
	hc.rb.r += n
	req := &hc.req
	if !req.Chunked && req.ContentLength <= 0 {
		hc.w = Writer{bw: hc.bw, reqMajor: req.Major, reqMinor: req.Minor, head: string(req.Method) == "HEAD", length: -1, close: req.Close || hc.s.ending()}
		if hc.s.h.ServeFast(req, &hc.w, &hc.info) {
			hc.w.finish()
			return hc.keepOpen(&hc.w)
		}
	}
	// The handler does not keep w past Serve, so the connection's Writer
	// serves here too.
	hc.w = Writer{bw: hc.bw, reqMajor: req.Major, reqMinor: req.Minor, head: string(req.Method) == "HEAD", length: -1, close: req.Close || hc.s.ending()}
	w := &hc.w
	var cont *continuer // only a request with a body has one
	if req.Chunked || req.ContentLength > 0 {
		cont = &continuer{w: w, want: req.Expect100}
	}
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
	if body != nil {
		// Body reads set their own deadlines.
		hc.idleUntil = time.Time{}
		hc.c.SetReadDeadline(time.Time{})
	}
	watched := body == nil && hc.rb.buffered() == 0
	if hc.ctx == nil {
		// Made at the first request that waits: a connection answered
		// from the cache only never needs them.
		hc.ctx = newReqCtx()
		hc.watch = abortWatch{c: hc.c, ctx: hc.ctx}
	}
	if watched {
		hc.watch.arm()
	}
	hc.s.h.Serve(hc.ctx, req, body, w, &hc.info)
	if watched {
		good, moved := hc.watch.stop(&hc.rb)
		if !good {
			w.close = true
		}
		if moved {
			hc.idleUntil = time.Time{}
		}
	}
	hc.ctx.end()
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
func (hc *conn) keepOpen(w *Writer) bool {
	if w.close || hc.s.draining.Load() {
		hc.bw.Flush()
		hc.closeWrite()
		return false
	}
	return true
}

// refusal names what refused a head for the handler: the parser's error
// name, "head_timeout", or "" for a client that went away or a drain.
func refusal(pe *parser.Error, err error) string {
	switch {
	case pe != nil:
		return pe.Name
	case err == errHeadTimeout:
		return "head_timeout"
	}
	return ""
}
