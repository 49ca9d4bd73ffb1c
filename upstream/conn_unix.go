//go:build unix

package upstream

import "syscall"

// peek is one non-blocking look at the socket.
func (oc *originConn) peek(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	// Data, an EOF (0 bytes, no error) or a socket error all mean the
	// connection cannot carry a new request.
	oc.readable = n > 0 || err == nil || err != syscall.EAGAIN
	return true
}
