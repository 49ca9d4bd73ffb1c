package h1

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/accel-proxy/accel/internal/testproc"
	"github.com/accel-proxy/accel/parser"
)

// liveHeap is the heap in live objects after collections: two, so that
// sync.Pool's victim cache is emptied too.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// idleCost is the live heap per connection above before once the n
// connections went idle. A client reads its answer before the server's
// goroutine gives its buffers back, so a few measures are taken (bounded)
// until it is under bound.
func idleCost(before int64, n int, bound int64) int64 {
	per := int64(0)
	for range 20 {
		if per = (liveHeap() - before) / int64(n); per < bound {
			break
		}
	}
	return per
}

// askFast sends GET /fast on c and reads the answer.
func askFast(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	if _, err := c.Write([]byte("GET /fast HTTP/1.1\r\nHost: a.example\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || n != int64(len(storedBody)) {
		t.Fatalf("status %d, %d body bytes", resp.StatusCode, n)
	}
}

// TestIdleConnHoldsNoBuffer: a keep-alive connection waiting for its next
// request holds neither its read nor its write buffer, so each costs less
// than one buffer (the rest is the connection's own state and both ends'
// sockets), and it still answers when the next request comes.
func TestIdleConnHoldsNoBuffer(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes what the heap holds")
	}
	const n = 300
	addr := start(t, &handler{})
	conns := make([]net.Conn, n)
	brs := make([]*bufio.Reader, n)
	for i := range conns {
		conns[i] = dial(t, addr)
		brs[i] = bufio.NewReaderSize(conns[i], 16)
	}
	before := liveHeap()
	for i, c := range conns {
		askFast(t, c, brs[i])
	}
	if per := idleCost(before, n, bufSize); per >= bufSize {
		t.Errorf("an idle connection holds %d bytes, want less than one %d-byte buffer", per, bufSize)
	}
	for i, c := range conns {
		askFast(t, c, brs[i])
	}
}

// TestBufferBurstIsReturned is the degenerate case of the buffer pool: a
// burst of connections all in the middle of an exchange at once holds a
// read and a write buffer each; once they are idle, the pool does not keep
// those buffers past two collections.
func TestBufferBurstIsReturned(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes what the heap holds")
	}
	const n = 300
	inside := make(chan struct{})
	release := make(chan struct{})
	h := &handler{serve: func(_ *parser.Request, _ io.Reader, w *Writer) {
		w.SetContentLength(2)
		w.WriteHead(200, nil)
		w.Write([]byte("ok"))
		inside <- struct{}{}
		<-release
	}}
	addr := start(t, h)
	conns := make([]net.Conn, n)
	brs := make([]*bufio.Reader, n)
	for i := range conns {
		conns[i] = dial(t, addr)
		brs[i] = bufio.NewReaderSize(conns[i], 16)
	}
	before := liveHeap()
	for _, c := range conns {
		if _, err := c.Write([]byte("GET /wait HTTP/1.1\r\nHost: a.example\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		<-inside
	}
	if per := (liveHeap() - before) / n; per < 2*bufSize {
		t.Fatalf("a connection mid-exchange holds %d bytes, want two %d-byte buffers or more: the test measures nothing", per, bufSize)
	}
	close(release)
	for _, br := range brs {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
	}
	// The answers were flushed before each connection went idle; the
	// buffers are in the pool or already gone.
	if per := idleCost(before, n, bufSize); per >= bufSize {
		t.Errorf("after the burst each idle connection still costs %d bytes, want less than one %d-byte buffer", per, bufSize)
	}

}

// TestHeadAfterIdle: a request that comes after the buffers were given
// back is read whole however it arrives: in pieces, or larger than one
// buffer; over a socket (the readiness wait) and over TLS (the one-byte
// wait).
func TestHeadAfterIdle(t *testing.T) {
	t.Run("cleartext", func(t *testing.T) {
		testHeadAfterIdle(t, dial(t, start(t, &handler{})))
	})
	t.Run("tls", func(t *testing.T) {
		cert := testproc.SelfSigned(t)
		addr := startTLS(t, &handler{}, &tls.Config{Certificates: []tls.Certificate{cert}})
		c := dial(t, addr)
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		testHeadAfterIdle(t, tc)
	})
}

func testHeadAfterIdle(t *testing.T, c net.Conn) {
	br := bufio.NewReader(c)
	askFast(t, c, br)
	for _, parts := range [][]string{
		{"GET /fa", "st HTTP/1.1\r\nHost: a.exa", "mple\r\n\r\n"},
		{"GET /fast HTTP/1.1\r\nHost: a.example\r\nX-Big: " + strings.Repeat("b", 3*bufSize) + "\r\n\r\n"},
		{"GET /fast HTTP/1.1\r\nHost: a.example\r\n\r\nGET /fast HTTP/1.1\r\nHost: a.example\r\n\r\n"},
	} {
		for _, p := range parts {
			if _, err := c.Write([]byte(p)); err != nil {
				t.Fatal(err)
			}
		}
		for range strings.Count(strings.Join(parts, ""), "GET ") {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := io.Copy(io.Discard, resp.Body); resp.StatusCode != 200 || n != int64(len(storedBody)) {
				t.Fatalf("%.40q: status %d, %d body bytes", parts[0], resp.StatusCode, n)
			}
		}
	}
}
