package h1

import (
	"io"
	"net"
	"runtime"
	"time"
)

// rbuf is an HTTP/1 connection's read side: one buffer that holds request
// heads while they are parsed (their fields alias it until the exchange
// ends) and hands any body bytes that arrived with a head to the body
// reader before reading the socket directly. Between requests the buffer
// goes back to bufPool (release) and fill borrows one when bytes come.
type rbuf struct {
	conn net.Conn
	// buf is nil while released.
	buf  []byte
	r, w int
	// idle waits for a request without holding a buffer, where the
	// connection allows (rbuf_unix.go).
	idle idleReader
	// tls is set on a connection read through crypto/tls: the wait for a
	// request reads one byte into first, then borrows the buffer for
	// what crypto/tls holds of the rest.
	tls   bool
	first [1]byte
	// pushed holds bytes read past the end of a chunked body by its
	// bufio.Reader; they belong to the next request and are served first.
	pushed []byte
	max    int
	// readTimeout bounds each wait for body bytes.
	readTimeout time.Duration
}

// buffered is the number of bytes read but not consumed.
func (b *rbuf) buffered() int { return len(b.pushed) + b.w - b.r }

// compact moves unconsumed bytes to the front before a new head is read;
// the previous exchange is over, so nothing aliases the buffer any more.
func (b *rbuf) compact() {
	if len(b.pushed) > 0 {
		rest := b.buf[b.r:b.w]
		nb := make([]byte, 0, max(len(b.buf), len(b.pushed)+len(rest)))
		nb = append(append(nb, b.pushed...), rest...)
		putBuf(b.buf)
		b.buf, b.r, b.w, b.pushed = nb[:cap(nb)], 0, len(nb), nil
		return
	}
	if b.r > 0 {
		n := copy(b.buf, b.buf[b.r:b.w])
		b.r, b.w = 0, n
	}
}

// release gives the buffer back while the connection waits for a
// request; nothing is buffered then, and nothing aliases it.
func (b *rbuf) release() {
	putBuf(b.buf)
	b.buf, b.r, b.w = nil, 0, 0
}

// fillBorrowed is fillIdle without a readiness wait. Over TLS the wait is
// a one-byte read, and the rest of the record, which crypto/tls then
// holds, is read into the borrowed buffer at once (no syscall, and no
// header deadline set for it, so a hit changes no deadline). Otherwise the
// buffer is borrowed before the wait.
func (b *rbuf) fillBorrowed() error {
	if !b.tls {
		b.buf = getBuf()
		return b.fill()
	}
	if n, err := b.conn.Read(b.first[:]); n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	b.buf = getBuf()
	b.buf[0] = b.first[0]
	// An error here comes again from the next read, once the byte read
	// is parsed.
	n, _ := b.conn.Read(b.buf[1:])
	b.r, b.w = 0, 1+n
	return nil
}

// fill reads more head bytes, growing the buffer up to one byte past the
// head limit so that the parser can tell an oversized head. A released
// buffer is borrowed again first (fillIdle).
//
// A wait for the next request (the buffer released) first lets the
// other goroutines run. A client that does not pipeline sends its next
// request only after it read our answer, so a read right after the
// answer finds nothing; and it costs more than nothing, because Go's
// poller tries the socket before it waits: a read that fails (EAGAIN),
// then a park, then a wake-up through the poller. On a busy server the
// other goroutines' turns take about as long as the client's round trip,
// so after the yield the request is mostly there and one read takes it.
// With accel on one core of its own and wrk -c64 on another, reads per
// request fell from 2.00 to 1.29 on 1 KiB hits and from 2.65 to 1.80 on
// no-store misses (client and origin reads), and CPU per request by 5 to
// 10 %. On an idle server the yield returns at once: the cost is a turn
// of the scheduler, a fraction of a microsecond, per request.
func (b *rbuf) fill() error {
	if b.buf == nil {
		runtime.Gosched()
		return b.fillIdle()
	}
	if b.w == len(b.buf) {
		if len(b.buf) > b.max {
			return io.ErrShortBuffer
		}
		nb := make([]byte, min(2*len(b.buf), b.max+1))
		copy(nb, b.buf[b.r:b.w])
		putBuf(b.buf)
		b.buf, b.w, b.r = nb, b.w-b.r, 0
	}
	n, err := b.conn.Read(b.buf[b.w:])
	b.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// Read serves body bytes: pushed-back and buffered ones first, then the
// socket directly into p, so a large body is never copied twice.
func (b *rbuf) Read(p []byte) (int, error) {
	if len(b.pushed) > 0 {
		n := copy(p, b.pushed)
		b.pushed = b.pushed[n:]
		return n, nil
	}
	if b.r < b.w {
		n := copy(p, b.buf[b.r:b.w])
		b.r += n
		return n, nil
	}
	if b.readTimeout > 0 {
		b.conn.SetReadDeadline(time.Now().Add(b.readTimeout))
	}
	return b.conn.Read(p)
}

// unread gives back bytes a bufio.Reader took past the end of a body.
func (b *rbuf) unread(p []byte) {
	if len(p) > 0 {
		b.pushed = append(append([]byte(nil), p...), b.pushed...)
	}
}
