package h1

import (
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accel-proxy/accel/parser"
)

// ctxHandler serves /wait by waiting for its context to end (or release
// to be closed) and reports what the context said; anything else it
// answers at once with the state of its context.
type ctxHandler struct {
	handler
	ended   chan error
	release chan struct{}
	started chan struct{} // told when /wait starts waiting, when set
}

func (h *ctxHandler) Serve(ctx context.Context, req *parser.Request, body io.Reader, w *Writer, c *Conn) {
	if string(req.Target) == "/wait" {
		if h.started != nil {
			h.started <- struct{}{}
		}
		select {
		case <-ctx.Done():
			h.ended <- ctx.Err()
			return
		case <-h.release:
		case <-time.After(10 * time.Second):
		}
	}
	msg := "live"
	select {
	case <-ctx.Done():
		msg = "ended"
	default:
		if ctx.Err() != nil {
			msg = "err"
		}
	}
	w.SetContentLength(int64(len(msg)))
	w.WriteHead(200, nil)
	w.Write([]byte(msg))
}

// A client that closes its connection while a bodiless request waits ends
// the request's context, as an origin request is cancelled then.
func TestAbortWatchCancels(t *testing.T) {
	h := &ctxHandler{ended: make(chan error, 1), release: make(chan struct{})}
	c := dial(t, start(t, h))
	if _, err := io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	h.waitCanceled(t)
}

// A request that waits after a short one on the same connection is
// watched too: the timer set for the first fires while the second runs,
// younger than the delay, and is set again for it. The watch's clock runs
// 100 ms ahead while the second request is armed, so that it is that much
// younger when the timer fires, whatever the machine's pace.
func TestAbortWatchAfterShortRequest(t *testing.T) {
	oldDelay, oldClock := abortWatchDelay, watchClock
	t.Cleanup(func() { abortWatchDelay, watchClock = oldDelay, oldClock })
	abortWatchDelay = 200 * time.Millisecond
	var skew atomic.Int64
	watchClock = func() time.Duration { return oldClock() + time.Duration(skew.Load()) }
	started := make(chan struct{}, 1)
	h := &ctxHandler{ended: make(chan error, 1), release: make(chan struct{}), started: started}
	c := dial(t, start(t, h))
	if _, err := io.WriteString(c, "GET /now HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if got := readBody(t, newReader(c)); got != "live" {
		t.Fatalf("first answer %q", got)
	}
	skew.Store(int64(100 * time.Millisecond))
	if _, err := io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-started
	skew.Store(0)
	c.Close()
	h.waitCanceled(t)
}

// waitCanceled waits for the context of the request at /wait to end, as
// it must once its client closed the connection.
func (h *ctxHandler) waitCanceled(t *testing.T) {
	t.Helper()
	select {
	case err := <-h.ended:
		if err != context.Canceled {
			t.Fatalf("context ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting request's context did not end after the client closed")
	}
}

// The connection's context is reused: a request after one that waited (and
// one that asked for Done) finds it live, and a request pipelined behind a
// waiting one, whose first bytes the watch may have read, is answered.
func TestAbortWatchKeepsConnection(t *testing.T) {
	for _, delay := range []time.Duration{0, time.Hour} {
		t.Run(delay.String(), func(t *testing.T) {
			old := abortWatchDelay
			abortWatchDelay = delay
			t.Cleanup(func() { abortWatchDelay = old })
			h := &ctxHandler{ended: make(chan error, 1), release: make(chan struct{})}
			c := dial(t, start(t, h))
			br := newReader(c)
			if _, err := io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			// The next request arrives while the first waits; its bytes
			// go to the watch or stay in the socket.
			if _, err := io.WriteString(c, "GET /now HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			close(h.release)
			for i, want := range []string{"live", "live"} {
				if got := readBody(t, br); got != want {
					t.Fatalf("answer %d: %q, want %q", i, got, want)
				}
			}
			select {
			case err := <-h.ended:
				t.Fatalf("context ended (%v) while the client stayed", err)
			default:
			}
			if _, err := io.WriteString(c, "GET /now HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			if got := readBody(t, br); got != "live" {
				t.Fatalf("third answer %q", got)
			}
		})
	}
}

type lineReader struct {
	c   net.Conn
	buf []byte
}

func newReader(c net.Conn) *lineReader { return &lineReader{c: c} }

// readBody reads one response with a Content-Length and returns its body.
func readBody(t *testing.T, r *lineReader) string {
	t.Helper()
	for {
		if i := strings.Index(string(r.buf), "\r\n\r\n"); i >= 0 {
			head := string(r.buf[:i])
			_, v, ok := strings.Cut(head, "\r\nContent-Length: ")
			if !ok {
				t.Fatalf("no Content-Length in\n%s", head)
			}
			v, _, _ = strings.Cut(v, "\r\n")
			n := 0
			for _, d := range v {
				n = n*10 + int(d-'0')
			}
			if len(r.buf) >= i+4+n {
				body := string(r.buf[i+4 : i+4+n])
				r.buf = r.buf[i+4+n:]
				return body
			}
		}
		b := make([]byte, 4096)
		m, err := r.c.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		r.buf = append(r.buf, b[:m]...)
	}
}
