package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accel-proxy/accel/parser"
)

// handler is a Handler whose answers the tests choose: fast answers a
// GET of /fast with a stored-style 1 KiB response; serve answers the
// rest.
type handler struct {
	serve   func(req *parser.Request, body io.Reader, w *Writer)
	mu      sync.Mutex
	refused []string
}

var (
	storedFields = parser.Fields{}.Add("Content-Type", "text/plain").Add("Date", "Tue, 01 Dec 2026 00:00:00 GMT")
	storedWire   = parser.AppendFields(nil, storedFields)
	storedExtra  = parser.Fields{}.Add("Age", "1")
	storedBody   = bytes.Repeat([]byte("a"), 1024)
	largeBody    = bytes.Repeat([]byte("b"), 64<<10)
)

func (h *handler) ServeFast(req *parser.Request, w *Writer, c *Conn) bool {
	switch string(req.Target) {
	case "/fast":
		w.WriteStored(200, storedFields, storedWire, storedExtra, storedBody)
	case "/large":
		w.WriteStored(200, storedFields, storedWire, storedExtra, largeBody)
	default:
		return false
	}
	return true
}

func (h *handler) Serve(ctx context.Context, req *parser.Request, body io.Reader, w *Writer, c *Conn) {
	h.serve(req, body, w)
}

func (h *handler) Refused(remote net.Addr, status int, reason string) {
	h.mu.Lock()
	h.refused = append(h.refused, reason)
	h.mu.Unlock()
}

// start serves HTTP/1 on a loopback listener with h.
func start(t testing.TB, h Handler) string { return startTLS(t, h, nil) }

// startTLS is start over TLS with config, when it is not nil: Serve is
// given the connection once its handshake is done, as accel does.
func startTLS(t testing.TB, h Handler, config *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{}, h)
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if config != nil {
					tc := tls.Server(c, config)
					if tc.Handshake() != nil {
						return
					}
					c = tc
				}
				s.Serve(c, nil)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.Shutdown()
		wg.Wait()
	})
	return ln.Addr().String()
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	t.Cleanup(func() { c.Close() })
	return c
}

// TestServeFastAllocatesNothing: a request answered by ServeFast costs the
// connection loop no allocation: the head is parsed in place, the Writer
// reused, the stored head copied into the connection's buffer.
func TestServeFastAllocatesNothing(t *testing.T) {
	addr := start(t, &handler{})
	c := dial(t, addr)
	req := []byte("GET /fast HTTP/1.1\r\nHost: a.example\r\nUser-Agent: t\r\n\r\n")
	buf := make([]byte, 8<<10)
	var first []byte
	do := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		n := 0
		for n < len(first) || first == nil {
			m, err := c.Read(buf[n:])
			if err != nil {
				t.Fatal(err)
			}
			n += m
			if first == nil && bytes.HasSuffix(buf[:n], storedBody) {
				first = bytes.Clone(buf[:n])
			}
		}
	}
	do()
	want := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\nAge: 1\r\nContent-Length: 1024\r\n\r\n"
	if !bytes.HasPrefix(first, []byte(want)) || len(first) != len(want)+1024 {
		t.Fatalf("got\n%q\nwant\n%q and the body", first[:min(len(first), 200)], want)
	}
	if n := testing.AllocsPerRun(200, do); !raceEnabled && n != 0 {
		t.Errorf("a fast answer allocates %v times per request, want 0", n)
	}
}

// TestWriterDecidesClose: whether the connection stays open after an
// exchange, for each of the reasons the Writer closes it.
func TestWriterDecidesClose(t *testing.T) {
	h := &handler{}
	addr := start(t, h)
	for _, tc := range []struct {
		name  string
		req   string
		serve func(req *parser.Request, body io.Reader, w *Writer)
		open  bool
	}{
		{"keep-alive", "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", writeOK(2), true},
		{"connection close", "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", writeOK(2), false},
		{"HTTP/1.0", "GET /x HTTP/1.0\r\n\r\n", writeOK(2), false},
		{"HTTP/1.0 keep-alive", "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", writeOK(2), true},
		{"HTTP/1.0 unknown length", "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", writeOK(-1), false},
		{"HTTP/1.1 unknown length is chunked", "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", writeOK(-1), true},
		{"body shorter than announced", "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", func(_ *parser.Request, _ io.Reader, w *Writer) {
			w.SetContentLength(5)
			w.WriteHead(200, nil)
			w.Write([]byte("ab"))
		}, false},
		{"aborted", "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", func(_ *parser.Request, _ io.Reader, w *Writer) {
			w.WriteHead(200, nil)
			w.Write([]byte("ab"))
			w.Abort()
		}, false},
		{"request body read", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", func(_ *parser.Request, body io.Reader, w *Writer) {
			io.ReadAll(body)
			writeOK(2)(nil, nil, w)
		}, true},
		{"small request body left unread", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", writeOK(2), true},
		{"Expect 100-continue never answered", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n", writeOK(2), false},
		{"no answer", "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", func(*parser.Request, io.Reader, *Writer) {}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.serve = tc.serve
			c := dial(t, addr)
			br := bufio.NewReader(c)
			c.Write([]byte(tc.req))
			resp, err := http.ReadResponse(br, &http.Request{Method: strings.Fields(tc.req)[0]})
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// A second request on the same connection: answered when it
			// stayed open, EOF when it closed.
			c.Write([]byte("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n"))
			_, err = http.ReadResponse(br, nil)
			if open := err == nil; open != tc.open {
				t.Errorf("connection open = %v (%v), want %v", open, err, tc.open)
			}
		})
	}
}

// writeOK answers "ok" with Content-Length n (-1: unknown).
func writeOK(n int64) func(*parser.Request, io.Reader, *Writer) {
	return func(_ *parser.Request, _ io.Reader, w *Writer) {
		w.SetContentLength(n)
		w.WriteHead(200, nil)
		w.Write([]byte("ok"))
	}
}

// TestRefusedHead: a head the parser refuses is answered with its status,
// told to the handler, and closes the connection.
func TestRefusedHead(t *testing.T) {
	h := &handler{}
	addr := start(t, h)
	c := dial(t, addr)
	c.Write([]byte("GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
	got, _ := io.ReadAll(c)
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 400 ")) || !bytes.Contains(got, []byte("Connection: close\r\n")) {
		t.Fatalf("got %q", got)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.refused) != 1 {
		t.Errorf("handler told of %v", h.refused)
	}
}

// TestRetire: after Retire a connection that was idle still gets its next
// request answered, on the fast path and the waiting one, with
// Connection: close, and then ends; Shutdown would have closed it
// unanswered.
func TestRetire(t *testing.T) {
	for _, target := range []string{"/fast", "/x"} {
		t.Run(target, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			s := New(Config{}, &handler{serve: writeOK(2)})
			served := make(chan struct{})
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				s.Serve(c, nil)
				c.Close()
				close(served)
			}()
			c := dial(t, ln.Addr().String())
			br := bufio.NewReader(c)
			ask := func() *http.Response {
				t.Helper()
				fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", target)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				return resp
			}
			if resp := ask(); resp.Close {
				t.Fatal("closed before Retire")
			}
			// The connection is idle now, as a keep-alive client's is
			// between two requests.
			s.Retire()
			// resp.Close is Connection: close on an HTTP/1.1 response.
			if resp := ask(); !resp.Close {
				t.Error("the answer after Retire does not say Connection: close")
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("connection after the answer: %v, want EOF", err)
			}
			c.Close()
			<-served
		})
	}
}
