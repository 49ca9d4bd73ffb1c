//go:build unix

package h1

import (
	"io"
	"net"
	"syscall"
)

// idleReader reads a socket (a cleartext connection, not TLS nor a PROXY
// protocol wrapper) through its RawConn: the goroutine waits for the
// socket to become readable, then borrows a buffer and reads into it, so a
// connection that waits for its next request holds no buffer. Other
// connections wait as fillBorrowed says.
type idleReader struct {
	rc syscall.RawConn
	// read is rbuf.rawRead, made once per connection so that a wait
	// allocates nothing.
	read func(fd uintptr) bool
	err  error
}

// useRaw makes the waits for a request on c bufferless when c is a
// socket.
func (b *rbuf) useRaw(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	b.idle = idleReader{rc: rc, read: b.rawRead}
}

// fillIdle reads the first bytes of a request into a borrowed buffer.
// The wait honours the read deadline (idle timeout, Shutdown).
func (b *rbuf) fillIdle() error {
	if b.idle.rc == nil {
		return b.fillBorrowed()
	}
	b.idle.err = nil
	if err := b.idle.rc.Read(b.idle.read); err != nil {
		return err
	}
	return b.idle.err
}

// rawRead is called by RawConn.Read: first at once (bytes may be there
// already), then each time the socket is readable. It reports false to
// wait, with the buffer given back.
func (b *rbuf) rawRead(fd uintptr) bool {
	buf := getBuf()
	for {
		n, err := syscall.Read(int(fd), buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			putBuf(buf)
			return false
		case err == nil && n > 0:
			b.buf, b.r, b.w = buf, 0, n
			return true
		case err == nil:
			err = io.EOF
		}
		putBuf(buf)
		b.idle.err = err
		return true
	}
}
