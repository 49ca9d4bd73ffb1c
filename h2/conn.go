package h2

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The receive windows accel grants. A stream's window bounds the request
// body bytes buffered for it, the connection's window all of them: 1 MiB
// per connection at most, whatever the number of streams.
const (
	streamWindow = 256 << 10
	connWindow   = 1 << 20
	// maxWindow is the largest flow-control window (RFC 9113 §6.9.1).
	maxWindow = 1<<31 - 1
)

// flushThreshold is the output size at which a writer goroutine writes out
// without waiting for the end of its body.
const flushThreshold = 64 << 10

// maxSpare is the largest output buffer a connection keeps between writes,
// and the most body bytes one write copies: a peer's window, which it
// sets up to 2 GiB, does not size the copy of a body over TLS.
const maxSpare = 128 << 10

// maxQueuedControl bounds the control frames (SETTINGS and PING acks,
// resets) queued for the peer before they are written out: a peer that
// sends them faster than it reads the answers is then cut by the write
// timeout instead of filling memory (x/net queues 10000; one read here
// holds at most about 1800).
const maxQueuedControl = 1000

// conn is one HTTP/2 connection. The fields above mu belong to the
// connection's goroutine (serve); the ones below are shared with the
// stream goroutines' writers and body readers.
type conn struct {
	s     *Server
	cfg   *Config
	nc    net.Conn
	isTLS bool
	info  Conn
	// br is the read buffer, borrowed from readerPool; an idle connection
	// gives it back (waitReadable). The Framer reads through it as
	// frameReader, so that another one may be borrowed.
	br *bufio.Reader
	// pr feeds br: bytes read before it (the sniffed preface, the byte an
	// idle wait read), then the connection.
	pr     preReader
	first  [1]byte
	fr     *http2.Framer
	dec    *decoder
	ctx    context.Context
	cancel context.CancelFunc

	// lastStreamID is the highest stream id the client opened (changed
	// under mu: Shutdown reads it for GOAWAY).
	lastStreamID uint32
	// ignoredMax is the highest stream id opened after our GOAWAY.
	ignoredMax uint32
	// recent holds the last stream ids opened.
	recent  [recentIDs]uint32
	recentN int
	// hdr is the header block being decoded.
	hdr headerBlock
	// start lists the streams to hand to Serve at the end of this read:
	// one reset within the same read never reaches the pipeline.
	start []*stream
	// free holds streams to reuse for requests answered inline.
	free  []*stream
	now   time.Time
	abuse abuse
	// fastW is the writer of requests answered inline.
	fastW Writer
	// hbuf holds a frame payload read by the loop itself (HEADERS,
	// CONTINUATION).
	hbuf []byte
	// sawSettings is set once the client's first SETTINGS arrived.
	sawSettings bool

	mu sync.Mutex
	// streams are the streams alive: open, or closed with a handler
	// still running. Their number is the work in flight.
	streams map[uint32]*stream
	// open counts the streams not yet closed (RFC 9113 §5.1.2);
	// resetRunning the reset ones whose handler still runs (an origin
	// fetch, maybe): both count against MaxConcurrentStreams, so that
	// resetting streams frees no room for more work (MadeYouReset). A
	// stream whose answer went out whole counts no more.
	open         int
	resetRunning int
	// out holds the frames waiting for the next write; vec and mark
	// splice in body bytes written from where they are (cleartext only).
	out  []byte
	vec  net.Buffers
	mark int
	// spare is the buffer out swaps with during a write.
	spare  []byte
	enc    *hpack.Encoder
	encBuf appendWriter
	intern intern
	// inflow is what the peer may still send on the connection;
	// unacked what was consumed and not yet given back.
	inflow  int64
	unacked int64
	// outflow is the connection's send window; peerWindow the peer's
	// initial stream window; peerMaxFrame the largest frame it takes.
	outflow      int64
	peerWindow   int64
	peerMaxFrame int
	// goingAway is set once the final GOAWAY, naming lastStreamID, is
	// queued (or the peer sent its own): newer streams are ignored.
	// draining is set by a graceful shutdown, which first sends GOAWAY
	// with the largest stream id and a PING; prefaced once SETTINGS is
	// queued, before which nothing else may go out; drainTimer sends the
	// final GOAWAY when the PING's ack is late.
	goingAway  bool
	draining   bool
	prefaced   bool
	drainTimer *time.Timer
	closed     bool
	werr       error
	// queuedControl counts control frames queued since the last write.
	queuedControl int
	// heldBack is set when body bytes that the windows allowed wait for
	// room in out (sendDataLocked): the write that empties out sends
	// them next.
	heldBack bool
	// rdl is the read deadline set; zero for none.
	rdl time.Time
	// rewait is set with a deadline of now when the last stream ends
	// while the loop waits with its read buffer: the loop then waits
	// again, idle, without it.
	rewait bool
	// waiting is set while the loop waits for bytes in waitRead: only
	// then may another goroutine wake it with a deadline of now. In the
	// middle of a frame (a DATA payload still arriving), such a deadline
	// would fail the read and end the connection.
	waiting bool

	// wmu is held while writing to nc, so that writes never interleave;
	// it guards wvec, the segments being written.
	wmu  sync.Mutex
	wvec net.Buffers
	wdl  time.Time // the write deadline set
}

// appendWriter is the hpack encoder's output.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func newConn(s *Server, nc net.Conn, pre []byte, isTLS bool) *conn {
	c := &conn{
		s:            s,
		cfg:          &s.cfg,
		nc:           nc,
		isTLS:        isTLS,
		info:         Conn{Remote: nc.RemoteAddr(), TLS: isTLS},
		streams:      map[uint32]*stream{},
		inflow:       connWindow,
		outflow:      65535,
		peerWindow:   65535,
		peerMaxFrame: 16384,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.br = readerPool.Get().(*bufio.Reader)
	c.pr = preReader{pre: pre, r: nc}
	c.br.Reset(&c.pr)
	c.fr = http2.NewFramer(nil, frameReader{c})
	c.fr.SetMaxReadFrameSize(uint32(s.cfg.MaxFrameSize))
	c.fr.SetReuseFrames()
	c.dec = newDecoder(s.cfg.MaxHeaderListSize, c.onField)
	c.enc = hpack.NewEncoder(&c.encBuf)
	c.fastW.c = c
	return c
}

// frameReader is what the Framer reads: the connection's current read
// buffer.
type frameReader struct{ c *conn }

func (r frameReader) Read(p []byte) (int, error) { return r.c.br.Read(p) }

// preReader gives back the bytes read before the read buffer (by the
// listener while sniffing, or by an idle wait), then reads the connection.
type preReader struct {
	pre []byte
	r   io.Reader
}

func (p *preReader) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// connError ends the connection with GOAWAY code.
type connError struct {
	code   http2.ErrCode
	reason string // the metric name; "" counts nothing
}

func (e connError) Error() string { return "h2: connection error " + e.code.String() + " " + e.reason }

var errIdle = errors.New("h2: idle")

// serve runs the connection: the preface, then frames until the peer goes,
// a connection error, shutdown or idleness ends it.
func (c *conn) serve() {
	defer c.teardown()
	c.nc.SetReadDeadline(time.Now().Add(c.cfg.IdleTimeout))
	var pre [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, pre[:]); err != nil || string(pre[:]) != http2.ClientPreface {
		// Not HTTP/2: nothing sensible can be answered (RFC 9113 §3.4).
		c.cfg.Count("bad_preface")
		return
	}
	c.now = time.Now()
	c.mu.Lock()
	c.out = appendSettings(c.out, c.cfg)
	c.out = appendWindowUpdate(c.out, 0, connWindow-65535)
	c.prefaced = true
	if c.draining {
		// Shutdown came before the preface: its GOAWAY follows SETTINGS.
		c.startDrainLocked()
	}
	c.mu.Unlock()
	if c.flush() != nil {
		return
	}
	for {
		if !c.frameReady() {
			c.endBatch()
			if err := c.waitRead(); err != nil {
				c.finish(err)
				return
			}
		}
		if err := c.readFrame(); err != nil {
			c.finish(err)
			return
		}
		c.mu.Lock()
		many := c.queuedControl > maxQueuedControl
		c.mu.Unlock()
		if many {
			c.flush()
		}
	}
}

// frameReady reports whether a whole frame is buffered, so that handling
// it needs no read: the batch goes on.
func (c *conn) frameReady() bool {
	n := c.br.Buffered()
	if n < frameHeaderLen {
		return false
	}
	h, _ := c.br.Peek(frameHeaderLen)
	return n >= frameHeaderLen+int(uint32(h[0])<<16|uint32(h[1])<<8|uint32(h[2]))
}

// endBatch starts the streams that must wait and writes out everything the
// last read produced, in one write.
func (c *conn) endBatch() {
	for i, st := range c.start {
		c.start[i] = nil
		c.startStream(st)
	}
	c.start = c.start[:0]
	c.flush()
}

// waitRead sets the read deadline for the wait ahead and fills the read
// buffer: idle_timeout when no stream is at work, the first stalled
// stream's write_timeout otherwise. A timeout that only ends stalled
// streams is handled here and the wait goes on.
func (c *conn) waitRead() error {
	for {
		c.mu.Lock()
		if c.goingAway && len(c.streams) == 0 || c.werr != nil {
			c.mu.Unlock()
			return errIdle
		}
		idle := len(c.streams) == 0
		deadline := time.Time{}
		if idle {
			deadline = time.Now().Add(c.cfg.IdleTimeout)
		} else {
			for _, st := range c.streams {
				if st.stalled() && (deadline.IsZero() || st.stalledSince.Before(deadline)) {
					deadline = st.stalledSince
				}
			}
			if !deadline.IsZero() {
				deadline = deadline.Add(c.cfg.WriteTimeout)
			}
		}
		c.rewait = false
		c.waiting = true
		c.setReadDeadlineLocked(deadline)
		c.mu.Unlock()
		err := c.waitReadable(idle)
		c.now = time.Now()
		c.mu.Lock()
		c.waiting = false
		if err == nil && c.rdl.Before(c.now) && !c.rdl.IsZero() {
			// A wake-up came with the bytes: the frame they start must
			// not read against it. The next wait looks again.
			c.rewait = false
			c.setReadDeadlineLocked(c.now.Add(c.cfg.IdleTimeout))
		}
		c.mu.Unlock()
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		c.mu.Lock()
		shutdown := c.goingAway
		idle = len(c.streams) == 0
		rewait := c.rewait
		c.resetStalled()
		c.mu.Unlock()
		if rewait {
			continue
		}
		if idle && !shutdown {
			c.cfg.Count("idle_timeout")
			return errIdle
		}
		c.flush()
	}
}

// waitReadable waits for the next bytes. A connection with no stream at
// work and nothing buffered gives its read buffer back for the wait, which
// reads one byte (as nginx frees an idle connection's buffers): 10 000
// idle connections do not hold 16 KiB each. Only the loop adds streams, so
// idle stays true until the read returns.
func (c *conn) waitReadable(idle bool) error {
	if !idle || c.br.Buffered() > 0 || len(c.pr.pre) > 0 {
		_, err := c.br.Peek(1)
		return err
	}
	c.br.Reset(nil)
	readerPool.Put(c.br)
	c.br = nil
	c.shrinkWriteBufs()
	n, err := c.nc.Read(c.first[:])
	c.br = readerPool.Get().(*bufio.Reader)
	c.pr = preReader{pre: c.first[:n], r: c.nc}
	c.br.Reset(&c.pr)
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// finish ends the connection after err: GOAWAY with the code of a
// connection error, NO_ERROR when idle or shutting down, nothing when the
// peer is gone.
func (c *conn) finish(err error) {
	var ce connError
	switch {
	case errors.As(err, &ce):
		if ce.reason != "" {
			c.cfg.Count(ce.reason)
		}
		c.goAway(ce.code)
	case err == errIdle:
		c.goAway(http2.ErrCodeNo)
	default:
		return
	}
	c.flush()
	c.linger()
}

// linger shuts the write side and reads what the peer still sends, for a
// second at most, so that the GOAWAY is read before a TCP reset could
// discard it.
func (c *conn) linger() {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := c.nc.(closeWriter); ok {
		cw.CloseWrite()
	}
	c.nc.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, io.LimitReader(c.br, 256<<10))
}

// teardown closes the connection and tells every stream still at work.
func (c *conn) teardown() {
	c.mu.Lock()
	c.closed = true
	if c.drainTimer != nil {
		c.drainTimer.Stop()
	}
	for _, st := range c.streams {
		st.wakeAll(errConnClosed)
	}
	c.mu.Unlock()
	c.cancel()
	c.nc.Close()
	c.br.Reset(nil)
	readerPool.Put(c.br)
}

// drainTimeout bounds the wait for the ack of the shutdown PING: a peer
// slower than that (or one that never acks) gets the final GOAWAY then, as
// from Go's x/net server (goAwayTimeout).
const drainTimeout = time.Second

// drainPing is the payload of the shutdown PING, told from a client's own.
var drainPing = [8]byte{'g', 'o', 'a', 'w', 'a', 'y', 'h', '2'}

// startShutdown begins the two-step graceful GOAWAY of RFC 9113 §6.8:
// GOAWAY with the largest stream id and a PING, so that the client stops
// opening streams; once the PING is acked (or after drainTimeout) every
// stream the client opened before it saw the first GOAWAY has reached us,
// and the final GOAWAY names the last one. A single GOAWAY would refuse,
// unprocessed, the streams that crossed it on the wire. The streams opened
// so far finish, newer ones are ignored, and the connection closes when
// its last stream ends.
func (c *conn) startShutdown() {
	c.mu.Lock()
	if c.goingAway || c.draining {
		c.mu.Unlock()
		return
	}
	c.draining = true
	if !c.prefaced {
		// serve starts it after SETTINGS.
		c.mu.Unlock()
		return
	}
	c.startDrainLocked()
	c.mu.Unlock()
	c.flush()
}

// startDrainLocked queues the first GOAWAY and its PING and arms the
// bound on the wait for the ack.
func (c *conn) startDrainLocked() {
	c.out = appendGoAway(c.out, maxWindow, http2.ErrCodeNo)
	c.out = appendFrameHeader(c.out, 8, http2.FramePing, 0, 0)
	c.out = append(c.out, drainPing[:]...)
	c.drainTimer = time.AfterFunc(drainTimeout, func() { c.finalGoAway(true) })
}

// finalGoAway queues the final GOAWAY of a graceful shutdown, with the
// last stream id, and writes it out. From the timer, wake makes the loop
// look again (if nothing is at work it ends now); the loop itself (the
// PING ack) looks before its next wait anyway.
func (c *conn) finalGoAway(wake bool) {
	c.mu.Lock()
	// A PING ack nobody asked for changes nothing.
	if !c.draining || c.goingAway || c.closed {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	c.out = appendGoAway(c.out, c.lastStreamIDLocked(), http2.ErrCodeNo)
	if wake {
		c.wakeLocked()
	}
	c.mu.Unlock()
	c.flush()
}

// goAway queues GOAWAY once.
func (c *conn) goAway(code http2.ErrCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.goingAway && code == http2.ErrCodeNo {
		return
	}
	c.goingAway = true
	c.out = appendGoAway(c.out, c.lastStreamIDLocked(), code)
}

// endedOutsideLocked is called where streams may end outside the loop (a
// stream's goroutine, a write sending held-back bytes): once none is left,
// the loop, maybe waiting without a deadline and with its read buffer,
// must end at once when going away, or wait again as idle (waitReadable)
// and then time out as idle.
func (c *conn) endedOutsideLocked() {
	if len(c.streams) > 0 {
		return
	}
	if !c.goingAway && c.waiting {
		c.rewait = true
	}
	c.wakeLocked()
}

// wakeLocked makes a loop waiting in waitRead look again now. A loop that
// is reading or handling frames looks again before its next wait anyway.
func (c *conn) wakeLocked() {
	if c.waiting {
		c.setReadDeadlineLocked(time.Now())
	}
}

// setReadDeadlineLocked sets the read deadline, unless it only moves an
// idle deadline later by less than slack: the idle timeout may then come
// that much early, and a batch of hits costs no timer update.
func (c *conn) setReadDeadlineLocked(d time.Time) {
	if !d.IsZero() && !c.rdl.IsZero() && d.After(c.rdl) && d.Sub(c.rdl) < slack(c.cfg.IdleTimeout) {
		return
	}
	if d.Equal(c.rdl) {
		return
	}
	c.rdl = d
	c.nc.SetReadDeadline(d)
}

// slack is how far a deadline may lag behind its timeout: an eighth of
// it, a second at most.
func slack(timeout time.Duration) time.Duration { return min(time.Second, timeout/8) }

// lastStreamIDLocked reads lastStreamID for GOAWAY; Shutdown calls it from
// another goroutine, under mu, which the loop holds when it changes it.
func (c *conn) lastStreamIDLocked() uint32 { return c.lastStreamID }

// flush writes out the queued frames, in one write. Any goroutine may
// call it.
func (c *conn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for {
		more, err := c.writeOut()
		if !more || err != nil {
			return err
		}
	}
}

// writeOut writes out what is queued, in one write, and reports whether
// that queued more: body bytes held back for room, which it then sends.
// wmu is held.
func (c *conn) writeOut() (more bool, err error) {
	c.mu.Lock()
	if c.werr != nil {
		err := c.werr
		c.mu.Unlock()
		return false, err
	}
	if len(c.out) == 0 {
		c.mu.Unlock()
		return false, nil
	}
	buf := c.out
	// The spliced segments move to wvec, owned by the writer (wmu), so
	// that writing them costs no allocation.
	c.wvec, c.vec = c.vec, c.wvec[:0]
	if len(c.wvec) > 0 {
		c.wvec = append(c.wvec, buf[c.mark:])
	}
	c.out, c.mark = c.spare[:0], 0
	c.spare = nil
	c.queuedControl = 0
	c.mu.Unlock()

	// The deadline moves only by more than slack: a write may be cut that
	// much before write_timeout, and a batch of hits costs no timer update.
	if now := time.Now(); now.Add(c.cfg.WriteTimeout).Sub(c.wdl) > slack(c.cfg.WriteTimeout) {
		c.wdl = now.Add(c.cfg.WriteTimeout)
		c.nc.SetWriteDeadline(c.wdl)
	}
	if len(c.wvec) > 0 {
		keep := c.wvec
		_, err = c.wvec.WriteTo(c.nc)
		clear(keep)
		c.wvec = keep[:0]
	} else {
		_, err = c.nc.Write(buf)
	}
	c.mu.Lock()
	if cap(buf) <= maxSpare {
		// A buffer grown past maxSpare is not kept.
		c.spare = buf[:0]
	}
	if err != nil && c.werr == nil {
		// A peer that does not take its bytes within write_timeout, or
		// is gone: the loop sees the closed conn and ends.
		c.werr = err
		c.nc.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.cfg.Count("slow_reader")
			c.cfg.Log.Warn("http2 connection cut: the client took no data within write_timeout",
				"peer", c.info.Remote.String(), "limit", "write_timeout", "max", c.cfg.WriteTimeout)
		}
	}
	if err == nil && c.heldBack {
		c.heldBack = false
		c.pushAllLocked()
		c.endedOutsideLocked()
		more = len(c.out) > 0
	}
	c.mu.Unlock()
	return more, err
}

// idleKeep is the largest output buffer an idle connection keeps: what a
// batch of small answers needs, so that going idle between batches costs
// no allocation. Buffers grown by large bodies (up to maxSpare each, 256
// KiB for the two) are dropped.
const idleKeep = 64 << 10

// shrinkWriteBufs drops the output buffers larger than idleKeep while the
// connection waits idle: not while frames are queued (a GOAWAY from
// Shutdown) or a write is under way (a stream's goroutine sending its
// last bytes).
func (c *conn) shrinkWriteBufs() {
	if !c.wmu.TryLock() {
		return
	}
	defer c.wmu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.out) == 0 && cap(c.out) > idleKeep {
		c.out = nil
	}
	if cap(c.spare) > idleKeep {
		c.spare = nil
	}
}

// copies reports whether body bytes go into out, copied, rather than
// written from where they are: over TLS, which copies anyway while
// encrypting (and one buffer makes fewer records), or from a writer that
// may reuse them.
func (c *conn) copies(inPlace bool) bool { return !inPlace || c.isTLS }

// appendBody appends body bytes for a DATA frame: written from where they
// are when they may be and are large, copied otherwise.
func (c *conn) appendBody(p []byte, inPlace bool) {
	if !c.copies(inPlace) && len(p) >= 2048 {
		c.vec = append(c.vec, c.out[c.mark:], p)
		c.mark = len(c.out)
		return
	}
	c.out = append(c.out, p...)
}

var errConnClosed = errors.New("h2: connection closed")

// Frame encoding. Every append holds mu.

// frameHeaderLen is the length of every frame's header (RFC 9113 §4.1).
const frameHeaderLen = 9

func appendFrameHeader(b []byte, length int, t http2.FrameType, flags http2.Flags, id uint32) []byte {
	return append(b, byte(length>>16), byte(length>>8), byte(length), byte(t), byte(flags),
		byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
}

func appendSettings(b []byte, cfg *Config) []byte {
	settings := [...]struct {
		id  http2.SettingID
		val uint32
	}{
		{http2.SettingMaxConcurrentStreams, uint32(cfg.MaxConcurrentStreams)},
		{http2.SettingInitialWindowSize, streamWindow},
		{http2.SettingMaxFrameSize, uint32(cfg.MaxFrameSize)},
		{http2.SettingMaxHeaderListSize, uint32(cfg.MaxHeaderListSize)},
		{http2.SettingEnablePush, 0},
	}
	b = appendFrameHeader(b, 6*len(settings), http2.FrameSettings, 0, 0)
	for _, s := range settings {
		b = append(b, byte(s.id>>8), byte(s.id))
		b = binary.BigEndian.AppendUint32(b, s.val)
	}
	return b
}

func appendWindowUpdate(b []byte, id uint32, inc int64) []byte {
	b = appendFrameHeader(b, 4, http2.FrameWindowUpdate, 0, id)
	return binary.BigEndian.AppendUint32(b, uint32(inc))
}

func appendRST(b []byte, id uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 4, http2.FrameRSTStream, 0, id)
	return binary.BigEndian.AppendUint32(b, uint32(code))
}

func appendGoAway(b []byte, last uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 8, http2.FrameGoAway, 0, 0)
	b = binary.BigEndian.AppendUint32(b, last)
	return binary.BigEndian.AppendUint32(b, uint32(code))
}
