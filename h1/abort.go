package h1

import (
	"context"
	"errors"
	"net"
	"os"
	"time"
)

// abortWatch reads the connection while a bodiless request is served, so
// that a client that goes away cancels the origin request instead of
// leaving it to run (as net/http's background read does). A byte that
// arrives meanwhile is the start of the next request and is kept.
type abortWatch struct {
	c    net.Conn
	done chan struct{}
	b    [1]byte
	n    int
	err  error
}

func watchAbort(c net.Conn, cancel context.CancelFunc) *abortWatch {
	a := &abortWatch{c: c, done: make(chan struct{})}
	c.SetReadDeadline(time.Time{})
	go func() {
		defer close(a.done)
		a.n, a.err = c.Read(a.b[:])
		if a.n == 0 && !errors.Is(a.err, os.ErrDeadlineExceeded) {
			cancel()
		}
	}()
	return a
}

// stop ends the watch and hands a byte it read to rb. It reports whether
// the connection is still good for another request.
func (a *abortWatch) stop(rb *rbuf) bool {
	a.c.SetReadDeadline(time.Unix(1, 0))
	<-a.done
	if a.n > 0 {
		rb.unread(a.b[:a.n])
		return true
	}
	return errors.Is(a.err, os.ErrDeadlineExceeded)
}
