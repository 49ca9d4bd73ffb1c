package accel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accel-proxy/accel/policy"
)

// origin is a real HTTP/1.1 origin on loopback that records what it
// received: each request's head bytes exactly as they arrived, and body.
type origin struct {
	t        *testing.T
	ln       net.Listener
	mu       sync.Mutex
	heads    []string
	bodies   [][]byte
	accepts  atomic.Int64
	requests atomic.Int64
	// hashBodies records each body's SHA-256 and length instead of the
	// body, so that large uploads do not sit in the test's own heap.
	hashBodies bool
	// handle answers one request; nil answers 200 "ok".
	handle func(r *http.Request, body []byte) (status int, h http.Header, respBody []byte)
}

func startOrigin(t *testing.T) *origin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &origin{t: t, ln: ln}
	go o.serve()
	t.Cleanup(func() { ln.Close() })
	return o
}

func (o *origin) addr() string { return o.ln.Addr().String() }

func (o *origin) serve() {
	for {
		c, err := o.ln.Accept()
		if err != nil {
			return
		}
		o.accepts.Add(1)
		go o.conn(c)
	}
}

// conn reads requests with net/http's parser, after copying the head bytes
// aside so the test can compare them byte for byte.
func (o *origin) conn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	for {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		head, err := peekHead(br)
		if err != nil {
			return
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		var body []byte
		if o.hashBodies {
			h := sha256.New()
			n, err := io.Copy(h, req.Body)
			if err != nil {
				return
			}
			body = fmt.Appendf(h.Sum(nil), " %d", n)
		} else if body, err = io.ReadAll(req.Body); err != nil {
			return
		}
		o.mu.Lock()
		o.heads = append(o.heads, head)
		o.bodies = append(o.bodies, body)
		o.mu.Unlock()
		o.requests.Add(1)
		status, h, resp := 200, http.Header{}, []byte("ok")
		if o.handle != nil {
			status, h, resp = o.handle(req, body)
		}
		var b bytes.Buffer
		b.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n")
		h.Write(&b)
		b.WriteString("Content-Length: " + strconv.Itoa(len(resp)) + "\r\n\r\n")
		if req.Method != "HEAD" {
			b.Write(resp)
		}
		if _, err := c.Write(b.Bytes()); err != nil {
			return
		}
	}
}

// peekHead returns the head bytes at the front of br without consuming
// them, reading one more byte at a time as needed.
func peekHead(br *bufio.Reader) (string, error) {
	if _, err := br.Peek(1); err != nil {
		return "", err
	}
	for {
		b, _ := br.Peek(br.Buffered())
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			return string(b[:i+4]), nil
		}
		if len(b) == br.Size() {
			return string(b), nil
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return "", err
		}
	}
}

func (o *origin) received() (heads []string, bodies [][]byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.heads...), append([][]byte(nil), o.bodies...)
}

// startAccel runs accel in-process from a YAML config in which ORIGIN
// stands for the origin's address and DATADIR for a fresh directory, on a
// loopback port of its own.
func startAccel(t testing.TB, yamlText string, originAddr string) *Server {
	t.Helper()
	return startAccelDir(t, yamlText, originAddr, t.TempDir())
}

// startAccelDir is startAccel with a given data directory, for restarts.
func startAccelDir(t testing.TB, yamlText string, originAddr, dir string) *Server {
	t.Helper()
	return startAccelLog(t, yamlText, originAddr, dir, nil)
}

// startAccelLog is startAccelDir with the log going to logw as JSON lines,
// when logw is not nil.
func startAccelLog(t testing.TB, yamlText string, originAddr, dir string, logw io.Writer) *Server {
	t.Helper()
	return startAccelClock(t, yamlText, originAddr, dir, logw, nil)
}

// testClock is a settable clock for the cache: freshness tests move it
// past a max-age instead of sleeping through it. An origin whose answers
// are revalidated dates them by it too (dateBy), as a real origin's clock
// agrees with accel's.
type testClock struct{ off atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// dateBy sets the Date field of an origin's answer from clk.
func dateBy(w http.ResponseWriter, clk *testClock) {
	w.Header().Set("Date", clk.now().UTC().Format(http.TimeFormat))
}

// startAccelClock is startAccelLog with the cache's clock clk, when it is
// not nil.
func startAccelClock(t testing.TB, yamlText string, originAddr, dir string, logw io.Writer, clk *testClock) *Server {
	t.Helper()
	yamlText = strings.ReplaceAll(yamlText, "ORIGIN", originAddr)
	yamlText = strings.ReplaceAll(yamlText, "DATADIR", dir)
	file := filepath.Join(dir, "accel.yaml")
	if err := os.WriteFile(file, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	switch {
	case logw != nil:
		log = slog.New(slog.NewJSONHandler(logw, nil))
	case testing.Verbose():
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	s.SetConfigSource(func() (*policy.Config, error) { return policy.Load(file) })
	if clk != nil {
		// Start opens the cache with the settings New wired.
		s.state.Load().set.cache.Now = clk.now
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// baseConfig is one listener with TLS (self-signed) and cleartext on the
// same port, one pool, and one route without cache.
const baseConfig = `
listen:
  - address: "127.0.0.1:0"
    tls:
      self_signed: true
pools:
  - name: app
    servers:
      - address: "ORIGIN"
routes:
  - pool: app
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "off"
`

// modes are the four ways a client reaches accel's one port.
var modes = []string{"h1", "h1tls", "h2", "h2c"}

// client returns an HTTP client that speaks mode to addr.
func client(t *testing.T, mode string) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives: false,
	}
	var p http.Protocols
	switch mode {
	case "h1", "h1tls":
		p.SetHTTP1(true)
	case "h2":
		p.SetHTTP2(true)
	case "h2c":
		p.SetUnencryptedHTTP2(true)
	}
	tr.Protocols = &p
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func baseURL(s *Server, mode string) string {
	scheme := "http"
	if mode == "h1tls" || mode == "h2" {
		scheme = "https"
	}
	return scheme + "://" + s.Addrs()[0].String()
}

// dialAccel connects to accel's first listener with a deadline that bounds
// the whole test exchange; the connection closes with the test.
func dialAccel(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// rawExchange writes raw bytes to accel and returns everything it answered
// until it closed the connection or the deadline passed.
func rawExchange(t *testing.T, addr string, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(c)
	return string(out)
}

// rawOrigin runs handle on each connection accepted on a loopback port and
// returns the address.
func rawOrigin(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().String()
}
