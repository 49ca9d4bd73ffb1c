package upstream

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// scriptedOrigin answers each request on any of its keep-alive
// connections with the raw bytes replies[path], and closes the
// connection after it when the path is in closeAfter. It records which
// connection (numbered from 1 in accept order) each request came on.
type scriptedOrigin struct {
	addr string
	mu   sync.Mutex
	seen map[string][]int // path -> connection numbers
}

func newScriptedOrigin(t *testing.T, replies map[string]string, closeAfter map[string]bool) *scriptedOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	o := &scriptedOrigin{addr: ln.Addr().String(), seen: map[string][]int{}}
	go func() {
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn, n int) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					o.mu.Lock()
					o.seen[req.URL.Path] = append(o.seen[req.URL.Path], n)
					o.mu.Unlock()
					// One write: a body after a bodiless head arrives
					// with it, as a broken origin sends it.
					if _, err := c.Write([]byte(replies[req.URL.Path])); err != nil || closeAfter[req.URL.Path] {
						return
					}
				}
			}(c, n)
		}
	}()
	return o
}

func (o *scriptedOrigin) conns(path string) []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]int(nil), o.seen[path]...)
}

// TestResponseFramingOnTheWire: origin responses are framed by
// parser.ResponseFraming, whatever their Content-Length says: no body for
// HEAD, 304 and 204; a body until close without a length. A connection
// goes back to the pool only when nothing but the response came on it:
// after bytes past a bodiless response, or a close-delimited body, the
// next request goes on a new connection and gets its own answer.
func TestResponseFramingOnTheWire(t *testing.T) {
	const next = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
	for _, tc := range []struct {
		name, method, reply string
		close               bool
		status              int
		length              int64
		body                string
		reused              bool // the next request came on the same connection
	}{
		{name: "HEAD with Content-Length", method: "HEAD", reply: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
			status: 200, length: 1234, reused: true},
		{name: "304 with Content-Length", method: "GET", reply: "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nETag: \"a\"\r\n\r\n",
			status: 304, length: 50, reused: true},
		{name: "204 with body bytes following", method: "GET", reply: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
			status: 204, length: 5, reused: false},
		{name: "close-delimited", method: "GET", reply: "HTTP/1.1 200 OK\r\n\r\nuntil the end", close: true,
			status: 200, length: -1, body: "until the end", reused: false},
		{name: "chunked", method: "GET", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
			status: 200, length: -1, body: "abc", reused: true},
		{name: "Content-Length", method: "GET", reply: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyz",
			status: 200, length: 3, body: "xyz", reused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newScriptedOrigin(t, map[string]string{"/case": tc.reply, "/next": next}, map[string]bool{"/case": tc.close})
			p := newTestPool(t, Config{Servers: []ServerConfig{{Addr: o.addr}}})
			req := get("/case")
			req.Head.Method = []byte(tc.method)
			resp, body, err := fetch(p, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Head.Status != tc.status || resp.Head.ContentLength != tc.length || string(body) != tc.body {
				t.Errorf("status %d, length %d, body %q; want %d, %d, %q", resp.Head.Status, resp.Head.ContentLength, body, tc.status, tc.length, tc.body)
			}
			if tc.status == 304 && string(resp.Head.Fields.Get("ETag")) != `"a"` {
				t.Errorf("304 fields lost: %q", resp.Head.Fields)
			}
			resp, body, err = fetch(p, get("/next"))
			if err != nil || resp.Head.Status != 200 || string(body) != "next" {
				t.Fatalf("next request: %v, body %q: the connection was reused with bytes of the last response", err, body)
			}
			first, second := o.conns("/case"), o.conns("/next")
			if len(first) != 1 || len(second) != 1 {
				t.Fatalf("origin saw /case on %v, /next on %v: want each once", first, second)
			}
			if reused := first[0] == second[0]; reused != tc.reused {
				t.Errorf("next request on the same connection: %v, want %v", reused, tc.reused)
			}
		})
	}
}
