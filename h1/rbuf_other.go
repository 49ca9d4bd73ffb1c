//go:build !unix

package h1

import "net"

// idleReader is empty where sockets have no readiness wait without a
// read: the wait is fillBorrowed's.
type idleReader struct{}

func (b *rbuf) useRaw(net.Conn) {}

func (b *rbuf) fillIdle() error { return b.fillBorrowed() }
