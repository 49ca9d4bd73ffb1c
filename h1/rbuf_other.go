//go:build !unix

package h1

import "net"

// idleReader is empty where sockets have no readiness wait without a
// read: the read buffer is borrowed before the wait.
type idleReader struct{}

func (b *rbuf) useRaw(net.Conn) {}

// fillIdle borrows the read buffer and waits in Read.
func (b *rbuf) fillIdle() error {
	b.buf = getBuf()
	return b.fill()
}
