package h1

import (
	"net"
	"sync"
	"time"
)

// wbuf is a connection's write side: responses collect in one buffer
// that goes out when the connection next waits for a request, so that a
// small answer (or several pipelined ones) leaves in one write. A write
// that does not fit goes out with what is buffered in one vectored write
// (writev on TCP): a large stored body is never copied, and its head does
// not leave alone. The buffer is borrowed from bufPool at the first
// write and given back (idle) while the connection waits for a request.
type wbuf struct {
	c net.Conn
	// buf is nil while given back.
	buf     []byte
	timeout time.Duration
	// until is the write deadline last set. It moves only once it is a
	// second or more short of the timeout, so a connection answering many
	// small responses changes it about once a second, not per write.
	until time.Time
	vec   [2][]byte
	v     net.Buffers // vec as WriteTo takes it, kept here so it is no allocation
	err   error
}

var wbufPool = sync.Pool{New: func() any { return new(wbuf) }}

func newWbuf(c net.Conn, timeout time.Duration) *wbuf {
	b := wbufPool.Get().(*wbuf)
	b.c, b.timeout, b.until, b.err = c, timeout, time.Time{}, nil
	return b
}

func (b *wbuf) release() {
	putBuf(b.buf)
	b.c, b.buf = nil, nil
	wbufPool.Put(b)
}

// idle gives the buffer back once everything in it went out.
func (b *wbuf) idle() {
	if b.buf != nil && len(b.buf) == 0 {
		putBuf(b.buf)
		b.buf = nil
	}
}

func (b *wbuf) arm(now time.Time) {
	if b.timeout <= 0 {
		return
	}
	if b.until.Sub(now) <= b.timeout-min(time.Second, b.timeout/4) {
		b.until = now.Add(b.timeout)
		b.c.SetWriteDeadline(b.until)
	}
}

func (b *wbuf) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.buf == nil {
		b.buf = getBuf()[:0]
	}
	if len(b.buf)+len(p) <= cap(b.buf) {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	b.arm(time.Now())
	held := len(b.buf)
	b.vec = [2][]byte{b.buf, p}
	b.v = b.vec[:]
	n, err := b.v.WriteTo(b.c)
	b.vec, b.v = [2][]byte{}, nil
	b.buf = b.buf[:0]
	if err != nil {
		b.err = err
		return max(0, int(n)-held), err
	}
	return len(p), nil
}

func (b *wbuf) WriteString(s string) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.buf == nil {
		b.buf = getBuf()[:0]
	}
	if len(b.buf)+len(s) <= cap(b.buf) {
		b.buf = append(b.buf, s...)
		return len(s), nil
	}
	return b.Write([]byte(s))
}

// Flush writes what is buffered.
func (b *wbuf) Flush() error {
	if b.err != nil || len(b.buf) == 0 {
		return b.err
	}
	return b.flushAt(time.Now())
}

// flushAt is Flush for a caller that has just read the clock: the
// connection loop reads it once for this write's deadline and the idle
// wait's.
func (b *wbuf) flushAt(now time.Time) error {
	if b.err != nil || len(b.buf) == 0 {
		return b.err
	}
	b.arm(now)
	_, err := b.c.Write(b.buf)
	b.buf = b.buf[:0]
	b.err = err
	return err
}
