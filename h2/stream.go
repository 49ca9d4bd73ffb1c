package h2

import (
	"context"
	"errors"
	"io"
	"runtime/debug"
	"time"

	"golang.org/x/net/http2"

	"github.com/accel-proxy/accel/parser"
)

// stream is one request and its response. All fields are guarded by the
// connection's mu, except req, arena and w, which belong to whoever serves
// the request.
type stream struct {
	c  *conn
	id uint32
	// inline is set while the stream is served on the connection's
	// goroutine; such a stream is reused for the next request.
	inline bool

	remoteClosed bool // END_STREAM received
	localClosed  bool // END_STREAM sent
	reset        bool // RST_STREAM either way
	closed       bool // both sides done, or reset: no longer counts as open
	running      bool // a Serve goroutine still works on it

	sendWindow int64
	inflow     int64 // what the peer may still send on the stream
	unacked    int64 // consumed, not yet given back
	declLen    int64 // content-length of the request, -1 when none
	recvLen    int64

	// pending is body left for window to open (inline streams only);
	// pendingEnd ends the stream after it.
	pending    []byte
	pendingEnd bool
	// stalledSince is when the stream ran out of window with bytes to send.
	stalledSince time.Time
	// waiting is set while a writer goroutine waits for wake.
	waiting bool
	wake    chan struct{}

	body   *bodyBuf
	cancel context.CancelFunc

	req   parser.Request
	arena []byte
	w     Writer
}

var (
	errStreamReset  = errors.New("h2: stream reset")
	errWriteTimeout = errors.New("h2: client took no data within write_timeout")
	errBodyTimeout  = errors.New("h2: request body stalled past read_timeout")
	errBodyTooLong  = errors.New("h2: response body longer than its Content-Length")
	errHeadTwice    = errors.New("h2: response head written twice")
)

func (st *stream) stalled() bool { return !st.stalledSince.IsZero() }

// newStream returns a stream for id, reused when one is free.
func (c *conn) newStream(id uint32) *stream {
	var st *stream
	if n := len(c.free); n > 0 {
		st = c.free[n-1]
		c.free = c.free[:n-1]
		arena, fields := st.arena[:0], st.req.Fields[:0]
		*st = stream{arena: arena, req: parser.Request{Fields: fields}}
	} else {
		st = &stream{}
	}
	st.c = c
	st.id = id
	st.inline = true
	st.declLen = -1
	st.sendWindow = c.peerWindow
	st.inflow = streamWindow
	return st
}

// closeLocked marks st closed and tells whoever works on it.
func (c *conn) closeLocked(st *stream, err error) {
	if !st.closed {
		st.closed = true
		st.remoteClosed = true
		st.localClosed = true
		c.open--
		if st.running && st.reset {
			c.resetRunning++
		}
		if b := st.body; b != nil && b.r < len(b.buf) {
			// Body bytes nobody will read go back to the connection's
			// window, or it would shrink with every such stream.
			c.giveBackLocked(nil, int64(len(b.buf)-b.r))
			b.buf, b.r = b.buf[:0], 0
		}
	}
	st.wakeAll(err)
	c.maybeFreeLocked(st)
}

// wakeAll ends a closed stream's waits: its body reader gets err, its
// writer wakes, its origin request is cancelled.
func (st *stream) wakeAll(err error) {
	if err == nil {
		err = errStreamReset
	}
	if st.body != nil {
		st.body.fail(err)
	}
	if st.waiting {
		select {
		case st.wake <- struct{}{}:
		default:
		}
	}
	if st.cancel != nil && (st.reset || st.c.closed) {
		st.cancel()
	}
}

// maybeFreeLocked forgets st once it is closed and nothing works on it.
func (c *conn) maybeFreeLocked(st *stream) {
	if !st.closed || st.running {
		return
	}
	if c.streams[st.id] == st {
		delete(c.streams, st.id)
	}
	if st.inline && c.fastW.st != st {
		st.pending = nil
		c.free = append(c.free, st)
	}
}

// resetLocked sends RST_STREAM and closes st.
func (c *conn) resetLocked(st *stream, code http2.ErrCode) {
	if st.closed {
		return
	}
	c.out = appendRST(c.out, st.id, code)
	c.queuedControl++
	st.reset = true
	c.closeLocked(st, errStreamReset)
}

// endRemoteLocked handles END_STREAM from the peer.
func (c *conn) endRemoteLocked(st *stream) {
	st.remoteClosed = true
	if st.body != nil {
		st.body.fail(io.EOF)
	}
	if st.localClosed {
		c.closeLocked(st, nil)
	}
}

// endLocalLocked handles END_STREAM sent.
func (c *conn) endLocalLocked(st *stream) {
	st.localClosed = true
	st.pending = nil
	st.stalledSince = time.Time{}
	if st.remoteClosed {
		c.closeLocked(st, nil)
	}
}

// sendDataLocked appends DATA frames for as much of p as the windows and
// the peer's frame size allow, END_STREAM on the last when end is set, and
// returns how much went. Bytes it copies (over TLS, or from a writer that
// reuses p) stop at maxSpare of output; the rest is held back for the
// next write.
func (c *conn) sendDataLocked(st *stream, p []byte, end, inPlace bool) int {
	n := 0
	copies, full := c.copies(inPlace), false
	for {
		chunk := int64(len(p) - n)
		allowed := min(st.sendWindow, c.outflow, int64(c.peerMaxFrame))
		if room := int64(maxSpare - frameHeaderLen - len(c.out)); copies && room < min(chunk, allowed) {
			allowed, full = max(room, 0), true
		}
		chunk = min(chunk, allowed)
		if chunk < 0 {
			chunk = 0
		}
		last := end && n+int(chunk) == len(p)
		if chunk == 0 && !last {
			break
		}
		var flags http2.Flags
		if last {
			flags = http2.FlagDataEndStream
		}
		c.out = appendFrameHeader(c.out, int(chunk), http2.FrameData, flags, st.id)
		c.appendBody(p[n:n+int(chunk)], inPlace)
		st.sendWindow -= chunk
		c.outflow -= chunk
		n += int(chunk)
		if last {
			c.endLocalLocked(st)
			break
		}
		if n == len(p) {
			break
		}
	}
	switch {
	case n == len(p):
		st.stalledSince = time.Time{}
	case full && st.sendWindow > 0 && c.outflow > 0:
		// Not stalled on flow control: the write that makes room sends
		// the rest.
		c.heldBack = true
		st.stalledSince = time.Time{}
	case st.stalledSince.IsZero():
		st.stalledSince = time.Now()
	}
	return n
}

// pushLocked moves a stream on after its window grew: more of an inline
// stream's pending body, or a wake-up for its writer goroutine.
func (c *conn) pushLocked(st *stream) {
	if len(st.pending) > 0 || st.pendingEnd && !st.localClosed && st.inline {
		p := st.pending
		n := c.sendDataLocked(st, p, st.pendingEnd, true)
		if !st.localClosed {
			st.pending = p[n:]
		}
		return
	}
	if st.waiting {
		select {
		case st.wake <- struct{}{}:
		default:
		}
	}
}

func (c *conn) pushAllLocked() {
	if c.outflow <= 0 {
		return
	}
	for _, st := range c.streams {
		if !st.closed {
			c.pushLocked(st)
		}
	}
}

// resetStalled resets the streams stalled on flow control for longer than
// write_timeout: a client that opens no window costs nothing past it.
func (c *conn) resetStalled() {
	limit := time.Now().Add(-c.cfg.WriteTimeout)
	for _, st := range c.streams {
		if st.inline && st.stalled() && !st.stalledSince.After(limit) {
			c.cfg.Count("write_timeout")
			c.resetLocked(st, http2.ErrCodeCancel)
		}
	}
}

// startStream hands a stream that must wait to the pipeline, in a
// goroutine of its own, unless it was reset meanwhile.
func (c *conn) startStream(st *stream) {
	c.mu.Lock()
	if st.closed {
		// Reset within the read that opened it: the pipeline never
		// sees it.
		if st.reset {
			c.resetRunning--
		}
		st.running = false
		c.maybeFreeLocked(st)
		c.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	st.cancel = cancel
	c.mu.Unlock()
	var body io.Reader
	if st.body != nil {
		body = st.body
	}
	go func() {
		defer cancel()
		defer c.endStream(st)
		defer func() {
			if v := recover(); v != nil {
				c.cfg.Log.Error("http2 handler panic", "peer", c.info.Remote, "panic", v, "stack", string(debug.Stack()))
				st.w.Abort()
			}
		}()
		c.s.h.Serve(ctx, &st.req, body, &st.w, Conn{Remote: c.info.Remote, TLS: c.info.TLS})
	}()
}

// endStream completes a stream after its Serve returned.
func (c *conn) endStream(st *stream) {
	w := &st.w
	if !w.wroteHead {
		w.writeError(500, "no response\n")
	}
	c.mu.Lock()
	w.endLocked()
	if !st.closed && !st.remoteClosed {
		// The answer is complete before the request body: tell the
		// client to stop sending it (RFC 9113 §8.1).
		c.resetLocked(st, http2.ErrCodeNo)
	}
	if st.reset && st.closed {
		c.resetRunning--
	}
	st.running = false
	c.maybeFreeLocked(st)
	c.endedOutsideLocked()
	c.mu.Unlock()
	c.flush()
}

// bodyBuf holds a request body between the connection's goroutine, which
// puts DATA into it, and the Serve goroutine reading it. Guarded by the
// connection's mu; bounded by the stream's receive window.
type bodyBuf struct {
	st      *stream
	buf     []byte
	r       int
	err     error
	waiting bool
	wake    chan struct{}
}

func (b *bodyBuf) put(p []byte) {
	if b.r > 0 && len(b.buf)+len(p) > cap(b.buf) {
		n := copy(b.buf, b.buf[b.r:])
		b.buf, b.r = b.buf[:n], 0
	}
	b.buf = append(b.buf, p...)
	b.signal()
}

func (b *bodyBuf) fail(err error) {
	if b.err == nil {
		b.err = err
	}
	b.signal()
}

func (b *bodyBuf) signal() {
	if b.waiting {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// Read waits at most read_timeout for bytes.
func (b *bodyBuf) Read(p []byte) (int, error) {
	c := b.st.c
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		c.mu.Lock()
		if b.r < len(b.buf) {
			n := copy(p, b.buf[b.r:])
			b.r += n
			if b.r == len(b.buf) {
				b.buf, b.r = b.buf[:0], 0
			}
			before := len(c.out)
			c.giveBackLocked(b.st, int64(n))
			update := len(c.out) > before
			c.mu.Unlock()
			if update {
				c.flush()
			}
			return n, nil
		}
		if b.err != nil {
			err := b.err
			c.mu.Unlock()
			return 0, err
		}
		b.waiting = true
		c.mu.Unlock()
		if t == nil {
			t = time.NewTimer(c.cfg.ReadTimeout)
		} else {
			t.Reset(c.cfg.ReadTimeout)
		}
		select {
		case <-b.wake:
			c.mu.Lock()
			b.waiting = false
			c.mu.Unlock()
		case <-t.C:
			c.mu.Lock()
			b.waiting = false
			c.mu.Unlock()
			c.cfg.Count("body_timeout")
			return 0, errBodyTimeout
		}
	}
}
