package upstream

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accel-proxy/accel/parser"
)

// origin is a real HTTP server on loopback that counts what reaches it.
type origin struct {
	addr     string
	accepts  atomic.Int64 // connections accepted
	requests atomic.Int64 // requests whose handler ran
	srv      *http.Server
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// startOrigin serves h on addr ("127.0.0.1:0" for a fresh port) until the
// test ends or kill.
func startOrigin(t *testing.T, addr string, h http.HandlerFunc) *origin {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return serveOrigin(t, ln, h)
}

// serveOrigin serves h on ln until the test ends or kill.
func serveOrigin(t *testing.T, ln net.Listener, h http.HandlerFunc) *origin {
	o := &origin{addr: ln.Addr().String()}
	o.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			o.requests.Add(1)
			h(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go o.srv.Serve(countingListener{ln, &o.accepts})
	t.Cleanup(o.kill)
	return o
}

// kill closes the listener and every connection at once.
func (o *origin) kill() { o.srv.Close() }

func ok(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	io.WriteString(w, "ok")
}

func newTestPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	p, err := NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func servers(os ...*origin) []ServerConfig {
	var sc []ServerConfig
	for _, o := range os {
		sc = append(sc, ServerConfig{Addr: o.addr})
	}
	return sc
}

func get(path string) *Request {
	return &Request{
		Head: &parser.Request{
			Method: []byte("GET"), Target: []byte(path), Host: []byte("test"),
			Major: 1, Minor: 1,
			Fields: parser.Fields{{Name: []byte("Host"), Value: []byte("test")}},
		},
		Retryable: true,
	}
}

func post(path string, body io.Reader, n int64) *Request {
	return &Request{
		Head: &parser.Request{
			Method: []byte("POST"), Target: []byte(path), Host: []byte("test"),
			Major: 1, Minor: 1, ContentLength: n,
			Fields: parser.Fields{{Name: []byte("Host"), Value: []byte("test")}},
		},
		Body: body,
	}
}

// fetch runs Do and reads the whole body.
func fetch(p *Pool, req *Request) (*Response, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := p.Do(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	// A Response dies with its body: keep a copy.
	out := &Response{Head: resp.Head, Server: resp.Server, Buffered: resp.Buffered}
	out.Head.Fields = resp.Head.Fields.Clone()
	out.Head.Reason = append([]byte(nil), resp.Head.Reason...)
	return out, b, err
}

// closedAddr is a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// testClock is a pool's clock that moves only when the test says.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func useClock(p *Pool) *testClock {
	c := &testClock{now: time.Now()}
	p.now = c.Now
	return c
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// heapWatch samples the live heap until stopped and returns its peak.
func heapWatch() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}
