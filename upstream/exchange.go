package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/accel-proxy/accel/parser"
)

// originLimits bounds an origin's response head as the request parser
// bounds a client's: the head must fit the read buffer.
var originLimits = parser.Limits{MaxHeadBytes: readBufferSize, MaxFields: 256}

// maxInterim bounds the 1xx responses read before the final one: an origin
// that sends them without end is broken, not slow.
const maxInterim = 16

var (
	// errUnrequested101 is a 101 to a request that asked for no upgrade
	// (accel forwards none): the connection would speak another protocol,
	// and a client must never take it as a final answer.
	errUnrequested101 = errors.New("upstream: 101 Switching Protocols without a requested upgrade")
	errInterimStorm   = errors.New("upstream: too many 1xx responses")
	errBodyClosed     = errors.New("upstream: read on closed response body")
)

// call is one exchange on one connection: the request written, the
// response head read with parser.ParseResponse, the body framed by it. It
// is pooled, with every buffer it grew, so that a miss allocates nothing
// here once the pool is warm; the Response it hands out is one of its
// fields, which is why a Response dies with its Body's Close.
type call struct {
	hc      *fasthttp.HostClient
	addr    string
	timeout time.Duration
	// pool and srv receive the lease and the health report when the
	// connection is given back; nil for an active check.
	pool *Pool
	srv  *server

	lc   leasedConn
	conn net.Conn // while lc holds a connection
	br   *bufio.Reader
	// cmu guards the hand-back of the connection against an interrupt
	// from another goroutine (the context, or Close during a Read).
	cmu         sync.Mutex
	interrupted bool
	interruptFn func() // c.interrupt, made once per call

	// check makes every reused connection be peeked at (suspect), and
	// checkAfter is the idle time past which any is.
	check      bool
	checkAfter time.Duration
	// began is when the try began (zero: read the clock), the now of
	// the idle check and of the request's first deadlines.
	began time.Time

	answered bool // some byte of an answer arrived
	lost     bool // an interrupt may still run: never reuse

	wbuf   []byte          // the request head
	parsed parser.Response // as ParseResponse left it; aliases br
	head   []byte          // the response head's bytes, copied out of br
	resp   Response
	// interim receives the 1xx heads before the final one (Request.Interim).
	interim Interim

	// The body's framing: src is one of the readers below, or br itself
	// for a body that the connection's close ends.
	src    io.Reader
	length lengthReader
	chunks parser.ChunkedReader
	keep   bool // the connection may carry another request after this one

	body  responseBody
	spool spool // when the pool buffers the body
}

var calls = sync.Pool{New: func() any {
	c := &call{lc: newLeasedConn()}
	c.interruptFn = c.interrupt
	c.body.c = c
	c.spool.cond.L = &c.spool.mu
	return c
}}

func newCall(hc *fasthttp.HostClient, addr string, timeout time.Duration, p *Pool, s *server) *call {
	c := calls.Get().(*call)
	c.hc, c.addr, c.timeout, c.pool, c.srv = hc, addr, timeout, p, s
	c.check, c.checkAfter, c.began = false, checkIdleAfter, time.Time{}
	if p != nil {
		c.checkAfter = p.checkIdleAfter
	}
	c.interrupted = false
	c.body.reset()
	return c
}

// free puts c back in the pool. The head's bytes are overwritten first: a
// caller that kept a slice of a Response past its Body's Close reads
// garbage in tests rather than another response's fields in production.
func (c *call) free() {
	if c.lost {
		// An interrupt may still hold it: leave it to the collector.
		return
	}
	if c.br != nil {
		c.hc.ReleaseReader(c.br)
		c.br = nil
	}
	for i := range c.head {
		c.head[i] = 'X'
	}
	clear(c.parsed.Fields)
	c.parsed.Fields = c.parsed.Fields[:0]
	clear(c.resp.Head.Fields)
	fields := c.resp.Head.Fields[:0]
	// Body stays: a Read after Close finds it closed.
	c.resp = Response{Head: parser.Response{Fields: fields}, Body: &c.body}
	c.src, c.hc, c.pool, c.srv, c.interim = nil, nil, nil, nil, nil
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil // one huge head must not pin its buffer for ever
	}
	calls.Put(c)
}

// holdsConn reports whether the body still has its connection, that is,
// whether the origin has more to send.
func (c *call) holdsConn() bool {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	return c.conn != nil
}

// interrupt unblocks whatever uses the connection by closing it, unless it
// was already given back.
func (c *call) interrupt() {
	c.cmu.Lock()
	if c.conn != nil {
		c.interrupted = true
		c.conn.Close()
	}
	c.cmu.Unlock()
}

// giveBack returns the connection, to the keep-alive pool when reuse is
// set and nothing interrupted it, and then the lease with failed's
// verdict on the server. It runs once; later calls do nothing.
func (c *call) giveBack(reuse bool, failed error) {
	c.cmu.Lock()
	if c.conn == nil {
		c.cmu.Unlock()
		return
	}
	reuse = reuse && !c.interrupted
	c.conn = nil
	c.cmu.Unlock()
	c.lc.release(c.hc, reuse)
	if c.pool == nil {
		return
	}
	if failed != nil {
		c.pool.report(lease{srv: c.srv}, outcomeOf(failed))
	}
	c.pool.release(c.srv)
}

// exchange sends head (and body) on a connection of hc and reads the
// response head. On success the connection and the lease belong to the
// returned Response until its body ends or is closed; on failure both are
// given back (the lease by the caller) and the call freed. The caller's ctx
// interrupts the exchange until the head has arrived; after that closing
// the Body does.
func exchange(ctx context.Context, c *call, head *parser.Request, body *requestBody) (*Response, error) {
	conn, err := c.lc.acquire(c.hc)
	// Idle connections that have something to read are passed over: bytes
	// an origin sent past a response's end (which this request would take
	// as its answer), or the EOF of an origin that closed while idle. A
	// connection just dialed has had no time to go bad, and one given back
	// moments ago is checked only when the request could not be retried
	// (checkIdleAfter).
	now := c.began
	if now.IsZero() {
		now = time.Now()
	}
	for i := 0; err == nil && c.suspect(now) && dirty(conn, now, c.timeout); i++ {
		c.lc.release(c.hc, false)
		if i == maxDirtyConns {
			// The whole idle set is suspect (the origin restarted, say):
			// drop it and dial, rather than test connections one by one.
			c.hc.CloseIdleConnections()
		}
		if i > maxDirtyConns {
			addr := c.addr
			c.free()
			return nil, &Error{Server: addr, Err: errDirtyConn}
		}
		conn, err = c.lc.acquire(c.hc)
	}
	if err != nil {
		// A dial failure, or no free connection: nothing was written.
		addr := c.addr
		c.free()
		return nil, &Error{Server: addr, Timeout: isTimeout(err), Err: err}
	}
	c.cmu.Lock()
	c.conn = conn
	c.cmu.Unlock()
	reused := !c.lc.lastUse().IsZero()
	if !reused {
		// A dial (and its TLS handshake) took its own time: the request's
		// deadlines start after it.
		now = time.Now()
	}
	c.answered = false
	stop := onCancel(ctx, c.interruptFn)
	fail := func(err error) (*Response, error) {
		if stop != nil && !stop() {
			// The interrupt was started on its own goroutine and may
			// still run: this call must not be reused under it.
			c.lost = true
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		c.cmu.Lock()
		c.conn = nil
		c.cmu.Unlock()
		c.lc.release(c.hc, false)
		stale := reused && !c.answered && ctx.Err() == nil && !isTimeout(err) && !errors.Is(err, ErrRequestBody)
		addr := c.addr
		c.free() // c belongs to the pool from here on
		return nil, &Error{Server: addr, Sent: true, Timeout: isTimeout(err), Err: err, stale: stale}
	}

	if ctx.Err() != nil {
		// Gone before a byte left: the origin never sees it.
		return fail(ctx.Err())
	}
	if err := c.write(conn, now, head, body); err != nil {
		if body != nil && body.err != nil {
			err = errors.Join(ErrRequestBody, body.err)
		}
		return fail(err)
	}
	c.br = c.hc.AcquireReader(conn)
	if body != nil {
		// Sending the body took the client's time: the wait for the
		// answer starts now, not when the try did.
		now = time.Time{}
	}
	if err := c.readHead(conn, now); err != nil {
		return fail(err)
	}
	if stop != nil && !stop() {
		// ctx fired after the head arrived; its interrupt closed conn.
		c.lost = true
		stop = nil
		return fail(ctx.Err())
	}
	return c.start(head), nil
}

// suspect reports whether the idle connection just taken is to be
// peeked at before the request goes out on it: always for a request that
// cannot be sent twice, else once it was idle for checkIdleAfter.
func (c *call) suspect(now time.Time) bool {
	last := c.lc.lastUse()
	if last.IsZero() {
		return false
	}
	return c.check || now.Sub(last) >= c.checkAfter
}

// canceler is a request context that runs a func when it ends without
// the allocations of context.AfterFunc (h1's, reused by its connection).
// ok is false when it cannot take f.
type canceler interface {
	OnCancel(f func()) (stop func() bool, ok bool)
}

// onCancel makes the end of ctx run f, and returns what stops that, or
// nil when ctx never ends.
func onCancel(ctx context.Context, f func()) (stop func() bool) {
	if cc, ok := ctx.(canceler); ok {
		if stop, ok := cc.OnCancel(f); ok {
			return stop
		}
	}
	if ctx.Done() == nil {
		return nil
	}
	return context.AfterFunc(ctx, f)
}

// write sends the request head, in one write when there is no body; on
// a plain connection it then also waits for the answer (sendThenWait).
func (c *call) write(conn net.Conn, now time.Time, head *parser.Request, body *requestBody) error {
	if err := writeWithin(conn, now, c.timeout); err != nil {
		return err
	}
	c.wbuf = appendRequestHead(c.wbuf[:0], head, body != nil, c.addr)
	if body == nil {
		if oc, ok := conn.(*originConn); ok && oc.plain {
			// The wait for the answer, bounded as readHead's first
			// wait would be, starts with the write.
			if err := readWithin(conn, now, c.timeout); err != nil {
				return err
			}
			return oc.sendThenWait(c.wbuf)
		}
		_, err := conn.Write(c.wbuf)
		return err
	}
	body.conn, body.timeout = conn, c.timeout
	bw := c.hc.AcquireWriter(conn)
	defer c.hc.ReleaseWriter(bw)
	if _, err := bw.Write(c.wbuf); err != nil {
		return err
	}
	if err := writeBody(bw, body, head.ContentLength); err != nil {
		return err
	}
	return bw.Flush()
}

// readHead reads the final response head into c.parsed, skipping 1xx
// interim responses. The head stays in br; n is its length. The first
// wait is bounded from now, the exchange's start.
func (c *call) readHead(conn net.Conn, now time.Time) error {
	for interim := 0; ; interim++ {
		n, err := c.parseNext(conn, now)
		now = time.Time{}
		if err != nil {
			return err
		}
		switch st := c.parsed.Status; {
		case st == 101:
			return errUnrequested101
		case st < 200:
			if interim == maxInterim {
				return errInterimStorm
			}
			if st != 100 && c.interim != nil {
				c.interim.Interim(st, c.parsed.Fields)
			}
			c.br.Discard(n)
			continue
		}
		c.copyHead()
		c.br.Discard(n)
		return nil
	}
}

// parseNext parses the next head in br, reading from conn until it is
// whole, each wait bounded by the timeout (the first from now, when set).
func (c *call) parseNext(conn net.Conn, now time.Time) (int, error) {
	for {
		if buf, _ := c.br.Peek(c.br.Buffered()); len(buf) > 0 {
			c.answered = true
			n, err := parser.ParseResponse(buf, &c.parsed, originLimits)
			if err != parser.ErrIncomplete {
				return n, err
			}
		}
		if err := readWithin(conn, now, c.timeout); err != nil {
			return 0, err
		}
		now = time.Time{}
		// Peek fills the buffer by one read at least; a head larger than
		// the buffer is ErrHeadTooLarge from the parser above.
		if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
}

// copyHead copies the parsed head out of the read buffer into c.resp, the
// framing fields left out: the body is read here, and each hop frames its
// own.
func (c *call) copyHead() {
	p := &c.parsed
	n := len(p.Reason)
	for _, f := range p.Fields {
		n += len(f.Name) + len(f.Value)
	}
	if cap(c.head) < n {
		c.head = make([]byte, 0, n)
	}
	buf := c.head[:0]
	keep := func(b []byte) []byte {
		s := len(buf)
		buf = append(buf, b...)
		return buf[s:len(buf):len(buf)]
	}
	h := &c.resp.Head
	fields := h.Fields[:0]
	*h = *p
	h.Reason = keep(p.Reason)
	for _, f := range p.Fields {
		if parser.EqualFold(f.Name, "Content-Length") || parser.EqualFold(f.Name, "Transfer-Encoding") {
			continue
		}
		fields = append(fields, parser.Field{Name: keep(f.Name), Value: keep(f.Value)})
	}
	h.Fields = fields
	c.head = buf
}

// start frames the body and hands out the Response. A body that is
// already whole in the read buffer gives the connection back at once, so
// that a slow reader of a small response holds no origin connection.
func (c *call) start(req *parser.Request) *Response {
	h := &c.resp.Head
	c.resp.Server = c.addr
	c.resp.Body = &c.body
	c.keep = h.Minor == 1 && !h.Close
	switch parser.ResponseFraming(req.Method, h) {
	case parser.NoBody:
		c.src = nil
	case parser.ChunkedBody:
		c.chunks = *parser.NewChunkedReader(c.br)
		c.src = &c.chunks
	case parser.LengthBody:
		c.length = lengthReader{r: c.br, n: h.ContentLength}
		c.src = &c.length
	case parser.CloseBody:
		// Delimited by the connection's close: nothing left to reuse.
		c.keep = false
		c.src = c.br
	}
	c.resp.Buffered = false
	switch {
	case c.src == nil:
		c.body.eof = true
		c.resp.Buffered = true
		c.giveBack(c.keep && c.br.Buffered() == 0, nil)
	case c.src == &c.length && int64(c.br.Buffered()) >= h.ContentLength:
		// Bytes past the end of the body belong to no request: a
		// connection holding them must never answer the next one.
		c.resp.Buffered = true
		c.giveBack(c.keep && int64(c.br.Buffered()) == h.ContentLength, nil)
	}
	return &c.resp
}

// lengthReader reads a body of known length; an EOF before its end is a
// truncation, and the last bytes come with io.EOF so that the connection
// goes back without another Read.
type lengthReader struct {
	r *bufio.Reader
	n int64
}

func (l *lengthReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	switch {
	case l.n == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

var _ io.ReadCloser = (*responseBody)(nil)

// responseBody streams a response body from its call's connection. The
// connection goes back when the body ends (or fails); Close frees the call,
// interrupting a Read in flight on another goroutine first.
type responseBody struct {
	c      *call
	closed atomic.Bool
	// mu is held by Read while it uses the connection; it guards the
	// fields below.
	mu  sync.Mutex
	eof bool
	err error // the read failure, returned again by later Reads
}

func (b *responseBody) reset() {
	b.closed.Store(false)
	b.eof, b.err = false, nil
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
	c := b.c
	c.cmu.Lock()
	conn := c.conn
	c.cmu.Unlock()
	if conn != nil {
		if err := readWithin(conn, time.Time{}, c.timeout); err != nil {
			b.err = &Error{Server: c.addr, Sent: true, Err: err}
			c.giveBack(false, b.err)
			return 0, b.err
		}
	}
	n, err := c.src.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
		c.giveBack(c.keep && c.br.Buffered() == 0, nil)
	case err != nil:
		b.err = &Error{Server: c.addr, Sent: true, Timeout: isTimeout(err), Err: err}
		err = b.err
		c.cmu.Lock()
		ours := c.interrupted
		c.cmu.Unlock()
		if ours {
			// Our own interrupt says nothing about the server.
			c.giveBack(false, nil)
		} else {
			c.giveBack(false, b.err)
		}
	}
	return n, err
}

// Close gives the connection back if the body did not already (closed,
// since the rest of the body is still on it) and frees the call.
func (b *responseBody) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	if !b.mu.TryLock() {
		b.c.interrupt() // unblocks the Read in flight
		b.mu.Lock()
	}
	b.c.giveBack(false, nil)
	b.mu.Unlock()
	b.c.free()
	return nil
}
