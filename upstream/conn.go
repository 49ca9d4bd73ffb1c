package upstream

import (
	"crypto/tls"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accel-proxy/accel/parser"
)

// readBufferSize is the per-connection read buffer, which also bounds the
// response head: 4 KiB is too small for the Set-Cookie heavy heads some
// origins send.
const readBufferSize = 32 << 10

// Request is what Do sends to a server.
type Request struct {
	// Head is sent as given: method, target, and the fields with their
	// names, order and values, except for the framing, which is ours
	// (Transfer-Encoding is dropped, Content-Length is set to the body we
	// send, or replaced by chunked framing when ContentLength is -1). A Host
	// field is spelled "Host"; when Fields has none, one from Head.Host, or
	// the server's address, is sent first.
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
	// Interim, when set, is given each 1xx the origin sends before its
	// final response, except 100 (accel answers Expect itself) and 101
	// (an error: no upgrade is ever forwarded), so that a proxy forwards
	// them (RFC 9110 §15.2). fields are valid only during the call; it
	// runs on the goroutine that called Do.
	Interim Interim
}

// Interim receives an origin's 1xx heads (Request.Interim). It is an
// interface rather than a func so that a caller passes a pointer it
// already has: a method value made per request is an allocation on every
// origin fetch.
type Interim interface {
	Interim(status int, fields parser.Fields)
}

// Response is a server's answer. It is pooled: the Response, its Head and
// every slice in it are valid until Body.Close returns, and must not be
// used after (copy what outlives the body).
type Response struct {
	// Head is the response head as parser.ParseResponse read it, with the
	// origin's fields in the origin's order and spelling, minus
	// Content-Length and Transfer-Encoding; Connection stays, so that the
	// caller can drop the hop-by-hop fields it names before passing the
	// rest on. ContentLength is -1 when unknown (chunked or
	// close-delimited). For a response without a body (HEAD, 204, 304) Body
	// is empty and ContentLength is what the origin announced, or -1.
	Head parser.Response
	// Body streams from the origin, or from the buffer the origin was read
	// into (Config.BufferMemory). The connection goes back to the pool as
	// soon as the origin sent the whole body; Close must be called even
	// after io.EOF, and closes the connection when the body was not read
	// to its end. A failed read returns an *Error.
	Body io.ReadCloser
	// Buffered says the whole body is in memory already (it came with the
	// head, or there is none): reading it never waits for the origin.
	Buffered bool
	// Server is the address of the server that answered.
	Server string
}

// newHostClient builds the connection pool of one server. fasthttp dials,
// keeps idle connections, reaps them after IdleTimeout and pools the read
// and write buffers; the exchange on a connection is ours (exchange.go), so
// HostClient's own request writing, response parsing, retries and timeouts
// never run.
func newHostClient(addr string, cfg *Config, tc *tls.Config, maxConns int) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                addr,
		Dial:                dialer(cfg.ConnectTimeout, tc),
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
// With tc set, the TLS handshake is part of the dial (tls.go).
func dialer(timeout time.Duration, tc *tls.Config) fasthttp.DialFunc {
	d := &net.Dialer{Timeout: timeout}
	return func(addr string) (net.Conn, error) {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return nil, &DialError{Addr: addr, Err: err}
		}
		oc := &originConn{Conn: c}
		if sc, ok := c.(syscall.Conn); ok {
			oc.raw, _ = sc.SyscallConn()
		}
		if tc != nil {
			// The idle check peeks the socket under TLS: any record
			// waiting there (an alert, a close_notify) makes the
			// connection unfit for a new request, as bytes would.
			if oc.Conn, err = handshake(c, tc, addr, timeout); err != nil {
				return nil, err
			}
		}
		oc.peekFn = oc.peek
		oc.plain = tc == nil && oc.raw != nil
		oc.sendFn = oc.send
		return oc, nil
	}
}

// originConn is a connection to an origin with its raw descriptor looked up
// once, for the check of idle connections before each reuse.
type originConn struct {
	net.Conn
	raw syscall.RawConn // nil when the connection has no descriptor
	// peekFn is peek as a func value, made once; readable is its result.
	// Only the goroutine holding the connection uses them.
	peekFn   func(fd uintptr) bool
	readable bool
	// readUntil and writeUntil are the deadlines last set, which
	// readWithin and writeWithin keep when they are close enough.
	readUntil, writeUntil time.Time
	// plain is set when Conn is the socket itself, not TLS over it:
	// sendThenWait can then write from within a wait for readability.
	// sendFn is send as a func value, made once; out, sent and werr are
	// its state, used by the goroutine holding the connection.
	plain  bool
	sendFn func(fd uintptr) bool
	out    []byte
	sent   bool
	werr   error
}

// sendThenWait writes p and waits until the socket is readable, without
// the read that would find nothing there yet. Each read of a net.Conn
// first tries the socket and waits only after it failed, because Go's
// poller forgets the readiness it saw before a read begins; an origin
// never answers within the microseconds after the write, so a Read after
// the write cost a syscall that failed with EAGAIN on most requests. Here
// the wait is armed first (RawConn.Read) and the write made from within
// it, so the answer's first bytes, which come after the write, wake it.
// Only for a plain connection: over TLS the reads go through its record
// layer. A failed wait (the read deadline, or the connection closed
// under it) is returned as a read's failure would be.
func (oc *originConn) sendThenWait(p []byte) error {
	oc.out, oc.sent, oc.werr = p, false, nil
	err := oc.raw.Read(oc.sendFn)
	oc.out = nil
	if oc.werr != nil {
		return oc.werr
	}
	return err
}

// send is sendThenWait's callback: the first call writes and asks to
// wait, the next one (the socket is readable) ends the wait; the reads
// that follow find the bytes, or the EOF.
func (oc *originConn) send(uintptr) bool {
	if oc.sent {
		return true
	}
	oc.sent = true
	_, oc.werr = oc.Conn.Write(oc.out)
	return oc.werr != nil
}

// deadlineSlack is how much short of a full timeout a deadline set for
// an earlier exchange may be and still be kept: a busy connection then
// pays no timer change per exchange, and a wait ends at most this much
// early.
func deadlineSlack(timeout time.Duration) time.Duration {
	return min(timeout/8, 250*time.Millisecond)
}

func (oc *originConn) SetReadDeadline(t time.Time) error {
	oc.readUntil = t
	return oc.Conn.SetReadDeadline(t)
}

func (oc *originConn) SetWriteDeadline(t time.Time) error {
	oc.writeUntil = t
	return oc.Conn.SetWriteDeadline(t)
}

func (oc *originConn) SetDeadline(t time.Time) error {
	oc.readUntil, oc.writeUntil = t, t
	return oc.Conn.SetDeadline(t)
}

// readWithin bounds the next reads of c by timeout from now (less the
// slack, when c is an originConn whose deadline is already that close). A
// zero now reads the clock; an exchange passes the time it started at, so
// that setting up its request reads the clock once.
func readWithin(c net.Conn, now time.Time, timeout time.Duration) error {
	if now.IsZero() {
		now = time.Now()
	}
	if oc, ok := c.(*originConn); ok && keep(oc.readUntil, now, timeout) {
		return nil
	}
	return c.SetReadDeadline(now.Add(timeout))
}

// writeWithin is readWithin for writes.
func writeWithin(c net.Conn, now time.Time, timeout time.Duration) error {
	if now.IsZero() {
		now = time.Now()
	}
	if oc, ok := c.(*originConn); ok && keep(oc.writeUntil, now, timeout) {
		return nil
	}
	return c.SetWriteDeadline(now.Add(timeout))
}

func keep(until, now time.Time, timeout time.Duration) bool {
	d := until.Sub(now)
	return d <= timeout && d > timeout-deadlineSlack(timeout)
}

// leasedConn is a connection taken from a HostClient. fasthttp's handle type
// is unexported, so it is held by connHandle, whose type parameter is
// inferred from HostClient's own methods.
type leasedConn interface {
	// acquire takes an idle connection of hc or dials one.
	acquire(hc *fasthttp.HostClient) (net.Conn, error)
	// release gives the connection back for reuse, or closes it.
	release(hc *fasthttp.HostClient, reuse bool)
	// lastUse is when the connection was last given back, zero for one
	// that never carried a request.
	lastUse() time.Time
}

type fasthttpConn interface {
	Conn() net.Conn
	LastUseTime() time.Time
}

type connHandle[C fasthttpConn] struct {
	acquireFn func(*fasthttp.HostClient, time.Duration, bool) (C, error)
	releaseFn func(*fasthttp.HostClient, C)
	closeFn   func(*fasthttp.HostClient, C)
	cc        C
	held      bool
}

func newConnHandle[C fasthttpConn](
	acquire func(*fasthttp.HostClient, time.Duration, bool) (C, error),
	release, close func(*fasthttp.HostClient, C),
) *connHandle[C] {
	return &connHandle[C]{acquireFn: acquire, releaseFn: release, closeFn: close}
}

func newLeasedConn() leasedConn {
	return newConnHandle((*fasthttp.HostClient).AcquireConn, (*fasthttp.HostClient).ReleaseConn, (*fasthttp.HostClient).CloseConn)
}

func (h *connHandle[C]) acquire(hc *fasthttp.HostClient) (net.Conn, error) {
	cc, err := h.acquireFn(hc, 0, false)
	if err != nil {
		return nil, err
	}
	h.cc, h.held = cc, true
	return cc.Conn(), nil
}

func (h *connHandle[C]) lastUse() time.Time { return h.cc.LastUseTime() }

func (h *connHandle[C]) release(hc *fasthttp.HostClient, reuse bool) {
	if !h.held {
		return
	}
	if reuse {
		h.releaseFn(hc, h.cc)
	} else {
		h.closeFn(hc, h.cc)
	}
	var zero C
	h.cc, h.held = zero, false
}

// checkIdleAfter is how long a connection must have been idle before a
// Retryable request peeks at it (dirty). A connection given back moments
// ago is used as it is, as nginx and HAProxy use theirs: were it closed by
// the origin, the request fails before any answer and is retried at once
// on a checked connection (Do's stale retry), which costs less than a
// syscall per reuse. Bytes an origin sends past a response a moment after
// it still meet the check once the connection sat idle this long; and a
// request that cannot be sent twice (Retryable false, or a body) is always
// checked, so it is never lost to a connection the origin had closed.
const checkIdleAfter = 2 * time.Millisecond

// maxDirtyConns bounds the idle connections one request tests one by one
// before it drops the idle set.
const maxDirtyConns = 8

// dirty reports whether an idle connection is readable, by peeking
// without blocking: a Read with a past deadline would fail before looking.
// The read deadline is made timeout from now, which the response's wait
// then keeps.
func dirty(c net.Conn, now time.Time, timeout time.Duration) bool {
	// The raw read below honours the read deadline; an expired one would
	// make a clean connection look broken.
	if err := readWithin(c, now, timeout); err != nil {
		return true
	}
	oc, ok := c.(*originConn)
	if !ok || oc.raw == nil {
		return false
	}
	oc.readable = false
	err := oc.raw.Read(oc.peekFn)
	return oc.readable || err != nil
}
