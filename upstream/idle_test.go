package upstream

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A keep-alive connection idle for longer than FirstByteTimeout (but
// within IdleTimeout) is reused: the deadline of its last response does
// not make the idle check take it for broken.
func TestIdleConnReusedAfterFirstByteTimeout(t *testing.T) {
	o := startOrigin(t, "127.0.0.1:0", ok)
	p := newTestPool(t, Config{
		Servers:          servers(o),
		FirstByteTimeout: 100 * time.Millisecond,
		IdleTimeout:      time.Minute,
	})
	if _, _, err := fetch(p, get("/a")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // idle: past FirstByteTimeout, far within IdleTimeout
	if _, _, err := fetch(p, get("/b")); err != nil {
		t.Fatal(err)
	}
	if n := o.accepts.Load(); n != 1 {
		t.Fatalf("origin accepted %d connections for two sequential requests on an idle-but-live keep-alive connection, want 1", n)
	}
}

// idleConnsOrigin starts an origin and a pool (set up further by tune)
// holding n connections to it, opened at once by n requests held until all
// arrived, then left idle.
func idleConnsOrigin(t *testing.T, n int, tune func(*Pool)) (*origin, *Pool) {
	t.Helper()
	var gate sync.WaitGroup
	release := make(chan struct{})
	o := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			gate.Done()
			<-release
		}
		ok(w, r)
	})
	p := newTestPool(t, Config{Servers: servers(o), MaxConnsPerServer: 64, Retries: -1})
	tune(p)
	gate.Add(n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, _, err := fetch(p, get("/hold")); err != nil {
				t.Error(err)
			}
		})
	}
	gate.Wait()
	close(release)
	wg.Wait()
	return o, p
}

// After an origin closed more idle keep-alive connections than exchange
// tests one by one (its own idle timeout, a restart), a POST still goes
// out on a live connection: the idle set is dropped and a fresh one dialed.
func TestManyDeadIdleConnsPostSucceeds(t *testing.T) {
	const n = 12
	o, p := idleConnsOrigin(t, n, func(*Pool) {})
	if got := o.accepts.Load(); got != n {
		t.Fatalf("setup: %d connections, want %d", got, n)
	}
	// The origin closes every idle connection (as its idle timeout would).
	o.srv.SetKeepAlivesEnabled(false)
	o.srv.SetKeepAlivesEnabled(true)
	time.Sleep(100 * time.Millisecond) // let the FINs arrive

	_, body, err := fetch(p, post("/p", strings.NewReader("x"), 1))
	if err != nil {
		t.Fatalf("POST on a live origin failed (status %d): %v", Status(err), err)
	}
	if string(body) != "ok" {
		t.Fatalf("body %q", body)
	}
}

// closingOrigin answers every request with a keep-alive response and then
// closes the connection, as an origin does whose idle timeout is shorter
// than the pause between two requests, or which drops keep-alive without
// saying Connection: close. Each close is reported on closed once done, so
// the FIN is on its way before the next request; seen counts the requests
// per path.
func closingOrigin(t *testing.T) (addr string, closed <-chan struct{}, seen func(path string) int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan struct{}, 1024)
	var mu sync.Mutex
	paths := map[string]int{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.SetDeadline(time.Now().Add(20 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err == nil {
					io.Copy(io.Discard, req.Body)
					mu.Lock()
					paths[req.URL.Path]++
					mu.Unlock()
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
				c.Close()
				ch <- struct{}{}
			}()
		}
	}()
	return ln.Addr().String(), ch, func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return paths[path]
	}
}

// An origin that closes each kept-alive connection after its answer costs
// no client an error. A GET on a connection given back moments ago goes
// out unchecked (checkIdleAfter), meets the close and is retried at once
// on a checked one; with the check on every reuse it never meets one. A
// POST is always checked first, so it reaches the origin exactly once and
// is never lost to the closed connection. The closed connections eject
// no server.
func TestOriginClosingIdleConns(t *testing.T) {
	for _, tc := range []struct {
		name       string
		checkAfter time.Duration
		getFails   bool // GETs meet the closed connections
	}{
		{"reused unchecked", time.Hour, true},
		{"every reuse checked", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, aClosed, aSeen := closingOrigin(t)
			b, bClosed, bSeen := closingOrigin(t)
			var failedTries, ejects atomic.Int64
			p := newTestPool(t, Config{
				Servers:       []ServerConfig{{Addr: a}, {Addr: b}},
				FailThreshold: 1,
				Retries:       -1,
				OnTry: func(_ string, _ time.Duration, _ int, err error) {
					if err != nil {
						failedTries.Add(1)
					}
				},
				OnEject: func(string) { ejects.Add(1) },
			})
			p.checkIdleAfter = tc.checkAfter
			seen := func(path string) int { return aSeen(path) + bSeen(path) }
			waitClosed := func() {
				select {
				case <-aClosed:
				case <-bClosed:
				case <-time.After(10 * time.Second):
					t.Fatal("the origin did not close its connection")
				}
			}
			const n = 20
			for i := range n {
				path := fmt.Sprintf("/get/%d", i)
				if _, body, err := fetch(p, get(path)); err != nil || string(body) != "ok" {
					t.Fatalf("GET %d: %v, body %q", i, err, body)
				}
				waitClosed()
				if got := seen(path); got != 1 {
					t.Fatalf("origin saw GET %d %d times", i, got)
				}
			}
			if got := failedTries.Load(); tc.getFails != (got > 0) {
				t.Errorf("%d GET tries met a closed connection; want some: %v", got, tc.getFails)
			}
			for i := range n {
				path := fmt.Sprintf("/post/%d", i)
				before := failedTries.Load()
				if _, body, err := fetch(p, post(path, strings.NewReader("x"), 1)); err != nil || string(body) != "ok" {
					t.Fatalf("POST %d: %v, body %q", i, err, body)
				}
				waitClosed()
				if got := seen(path); got != 1 {
					t.Fatalf("origin saw POST %d %d times, want exactly once", i, got)
				}
				if failedTries.Load() != before {
					t.Fatalf("POST %d was sent on a closed connection", i)
				}
			}
			if ejects.Load() != 0 {
				t.Errorf("%d ejections: connections the origin closed were taken for failures", ejects.Load())
			}
		})
	}
}

// After an origin's idle timeout closed every kept-alive connection, GETs
// that take them unchecked (given back moments ago, as far as
// checkIdleAfter can tell) still all succeed: the first meets a closed
// connection and is retried with the idle set checked, the rest find live
// connections.
func TestDeadIdleConnsGetsSucceed(t *testing.T) {
	const n = 12
	o, p := idleConnsOrigin(t, n, func(p *Pool) { p.checkIdleAfter = time.Hour })
	before := o.requests.Load()
	// The origin closes every idle connection, as its idle timeout would.
	o.srv.SetKeepAlivesEnabled(false)
	o.srv.SetKeepAlivesEnabled(true)
	for i := range 2 * n {
		if _, body, err := fetch(p, get(fmt.Sprintf("/after/%d", i))); err != nil || string(body) != "ok" {
			t.Fatalf("GET %d after the origin closed its idle connections: %v, body %q", i, err, body)
		}
	}
	if got := o.requests.Load() - before; got != 2*n {
		t.Errorf("origin answered %d requests, want %d", got, 2*n)
	}
}
