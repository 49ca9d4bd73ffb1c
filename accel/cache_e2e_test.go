package accel

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accel-proxy/accel/internal/testproc"
)

// cacheConfig caches on its one route.
const cacheConfig = `
listen:
  - address: "127.0.0.1:0"
pools:
  - name: app
    servers:
      - address: "ORIGIN"
routes:
  - pool: app
    cache: {enabled: true}
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "off"
`

// httpOrigin is a net/http origin on loopback, for handlers that stream or
// block; it counts requests.
type httpOrigin struct {
	addr     string
	requests atomic.Int64
	srv      *http.Server
}

func startHTTPOrigin(t testing.TB, h http.HandlerFunc) *httpOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &httpOrigin{addr: ln.Addr().String()}
	o.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		h(w, r)
	})}
	go o.srv.Serve(ln)
	t.Cleanup(func() { o.srv.Close() })
	return o
}

type got struct {
	status int
	body   string
	header http.Header
}

func fetch(t *testing.T, s *Server, method, path string, hdr ...string) got {
	t.Helper()
	req, _ := http.NewRequest(method, baseURL(s, "h1")+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client(t, "h1").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return got{resp.StatusCode, string(b), resp.Header}
}

// TestCacheHitAgeRestart: the second GET within max-age does not reach the
// origin, Age grows, Cache-Status says hit; after a restart on the same
// data directory the first GET is a hit.
func TestCacheHitAgeRestart(t *testing.T) {
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "cached body")
	})
	dir := t.TempDir()
	// The key holds the Host with its port: a restart keeps the port.
	cfg := strings.Replace(cacheConfig, "127.0.0.1:0", "127.0.0.1:"+strconv.Itoa(testproc.FreePort(t)), 1)
	clk := &testClock{}
	s := startAccelClock(t, cfg, o.addr, dir, nil, clk)
	first := fetch(t, s, "GET", "/page")
	if cs := first.header.Get("Cache-Status"); !strings.Contains(cs, "fwd=uri-miss") || !strings.Contains(cs, "stored") {
		t.Errorf("first Cache-Status %q", cs)
	}
	clk.advance(1100 * time.Millisecond)
	second := fetch(t, s, "GET", "/page")
	if second.body != "cached body" || o.requests.Load() != 1 {
		t.Fatalf("second GET: %q, origin saw %d", second.body, o.requests.Load())
	}
	if cs := second.header.Get("Cache-Status"); !strings.HasPrefix(cs, "accel; hit") {
		t.Errorf("second Cache-Status %q", cs)
	}
	if age, _ := strconv.Atoi(second.header.Get("Age")); age < 1 {
		t.Errorf("Age %q did not grow", second.header.Get("Age"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	s2 := startAccelDir(t, cfg, o.addr, dir)
	after := fetch(t, s2, "GET", "/page")
	if after.body != "cached body" || !strings.HasPrefix(after.header.Get("Cache-Status"), "accel; hit") || o.requests.Load() != 1 {
		t.Errorf("after restart: %q %q, origin saw %d", after.body, after.header.Get("Cache-Status"), o.requests.Load())
	}
}

// TestCacheVary: gzip and br variants of one URL live side by side and go
// to the right clients; Vary: * is never a hit.
func TestCacheVary(t *testing.T) {
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/star" {
			w.Header().Set("Vary", "*")
		} else {
			w.Header().Set("Vary", "Accept-Encoding")
		}
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "encoded as "+r.Header.Get("Accept-Encoding"))
	})
	s := startAccel(t, cacheConfig, o.addr)
	for _, ae := range []string{"gzip", "br", "gzip", "br"} {
		g := fetch(t, s, "GET", "/v", "Accept-Encoding", ae)
		if g.body != "encoded as "+ae {
			t.Errorf("%s client got %q", ae, g.body)
		}
	}
	if n := o.requests.Load(); n != 2 {
		t.Errorf("origin saw %d requests for two variants, want 2", n)
	}
	for i := 0; i < 3; i++ {
		if g := fetch(t, s, "GET", "/star"); strings.Contains(g.header.Get("Cache-Status"), "; hit") {
			t.Errorf("Vary: * served from cache: %q", g.header.Get("Cache-Status"))
		}
	}
	if n := o.requests.Load(); n != 5 {
		t.Errorf("origin saw %d requests, want 5", n)
	}
}

// TestCacheRevalidate304: after max-age the origin gets a conditional
// request, answers 304, and the client gets the full 200 with the headers
// the 304 updated.
func TestCacheRevalidate304(t *testing.T) {
	var conditional atomic.Int64
	clk := &testClock{}
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		dateBy(w, clk)
		// Two seconds: Date has a resolution of one, so a response just
		// revalidated may already look almost a second old.
		w.Header().Set("Cache-Control", "max-age=2")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			conditional.Add(1)
			w.Header().Set("X-Revision", "2")
			w.WriteHeader(304)
			return
		}
		w.Header().Set("X-Revision", "1")
		io.WriteString(w, "full body")
	})
	s := startAccelClock(t, cacheConfig, o.addr, t.TempDir(), nil, clk)
	fetch(t, s, "GET", "/r")
	clk.advance(3100 * time.Millisecond)
	g := fetch(t, s, "GET", "/r")
	if conditional.Load() != 1 {
		t.Fatalf("origin saw %d conditional requests, want 1", conditional.Load())
	}
	if g.status != 200 || g.body != "full body" || g.header.Get("X-Revision") != "2" {
		t.Errorf("client got %d %q X-Revision=%q", g.status, g.body, g.header.Get("X-Revision"))
	}
	// The 304 refreshed the stored response: fresh again, no origin trip.
	if g := fetch(t, s, "GET", "/r"); g.header.Get("X-Revision") != "2" || o.requests.Load() != 2 {
		t.Errorf("after revalidation: X-Revision=%q, origin saw %d", g.header.Get("X-Revision"), o.requests.Load())
	}
}

// TestCacheStaleWhileRevalidate: in the window a stale response is served
// at once, while the origin is still busy, and exactly one background
// request reaches it.
func TestCacheStaleWhileRevalidate(t *testing.T) {
	var version atomic.Int64
	hold := make(chan struct{})
	clk := &testClock{}
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		v := version.Add(1)
		if v > 1 {
			<-hold
		}
		dateBy(w, clk)
		// Two seconds: Date has a resolution of one, so version 2 may
		// look almost a second old once stored; with max-age=1 it could
		// be stale again at once, and a second revalidation go out.
		w.Header().Set("Cache-Control", "max-age=2, stale-while-revalidate=60")
		io.WriteString(w, "version "+strconv.FormatInt(v, 10))
	})
	s := startAccelClock(t, cacheConfig, o.addr, t.TempDir(), nil, clk)
	fetch(t, s, "GET", "/swr")
	clk.advance(3100 * time.Millisecond)
	for i := 0; i < 5; i++ {
		// The origin is held: these answers can only come from the cache.
		if g := fetch(t, s, "GET", "/swr"); g.body != "version 1" {
			t.Fatalf("stale request %d got %q", i, g.body)
		}
	}
	close(hold)
	for i := 0; i < 100 && fetch(t, s, "GET", "/swr").body != "version 2"; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := o.requests.Load(); n != 2 {
		t.Errorf("origin saw %d requests, want 2 (one background revalidation)", n)
	}
}

// TestCacheStaleIfError: with the origin stopped, the stale body is served
// inside the stale-if-error window, and an error after it.
func TestCacheStaleIfError(t *testing.T) {
	clk := &testClock{}
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=2")
		io.WriteString(w, "last good")
	})
	// The refused connections are the answer at once: redialling an
	// origin that restarts is another test's (upstream's).
	cfg := strings.Replace(cacheConfig, "  - name: app\n", "  - name: app\n    redial_window: 1ms\n", 1)
	s := startAccelClock(t, cfg, o.addr, t.TempDir(), nil, clk)
	fetch(t, s, "GET", "/sie")
	o.srv.Close()
	clk.advance(1200 * time.Millisecond)
	if g := fetch(t, s, "GET", "/sie"); g.status != 200 || g.body != "last good" {
		t.Fatalf("inside the window: %d %q", g.status, g.body)
	}
	clk.advance(2500 * time.Millisecond)
	if g := fetch(t, s, "GET", "/sie"); g.status != 502 && g.status != 504 {
		t.Errorf("after the window: %d %q, want 502 or 504", g.status, g.body)
	}
}

// TestCacheCoalescing: 200 concurrent requests for a cold URL make one
// origin request; every client gets its first bytes while the origin is
// still sending, and all 200 bodies are the same.
func TestCacheCoalescing(t *testing.T) {
	const clients = 200
	release := make(chan struct{})
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", "20")
		io.WriteString(w, "first-half|")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(20 * time.Second):
		}
		io.WriteString(w, "secondhlf")
	})
	s := startAccel(t, cacheConfig, o.addr)
	var firstBytes sync.WaitGroup
	firstBytes.Add(clients)
	bodies := make(chan string, clients)
	for i := 0; i < clients; i++ {
		go func() {
			c, err := net.Dial("tcp", s.Addrs()[0].String())
			if err != nil {
				firstBytes.Done()
				bodies <- err.Error()
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			io.WriteString(c, "GET /cold HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
			buf := make([]byte, 0, 4096)
			tmp := make([]byte, 512)
			signalled := false
			for {
				n, err := c.Read(tmp)
				buf = append(buf, tmp[:n]...)
				if !signalled && strings.Contains(string(buf), "first-half|") {
					signalled = true
					firstBytes.Done()
				}
				if err != nil {
					break
				}
			}
			if !signalled {
				firstBytes.Done()
			}
			out := string(buf)
			bodies <- out[strings.Index(out, "\r\n\r\n")+4:]
		}()
	}
	waited := make(chan struct{})
	go func() { firstBytes.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(20 * time.Second):
		t.Error("clients did not get their first bytes while the origin was still sending")
	}
	close(release)
	for i := 0; i < clients; i++ {
		if b := <-bodies; b != "first-half|secondhlf" {
			t.Fatalf("client body %q", b)
		}
	}
	if n := o.requests.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
}

// TestCachePrivateNotSerialised: 200 concurrent requests for a private URL
// all reach the origin at once: none waits for another.
func TestCachePrivateNotSerialised(t *testing.T) {
	const clients = 200
	var arrived atomic.Int64
	all := make(chan struct{})
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == clients {
			close(all)
		}
		select {
		case <-all:
		case <-time.After(20 * time.Second):
			w.WriteHeader(500)
			return
		}
		w.Header().Set("Cache-Control", "private, max-age=600")
		io.WriteString(w, "yours")
	})
	s := startAccel(t, cacheConfig, o.addr)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client(t, "h1").Get(baseURL(s, "h1") + "/private")
			if err != nil {
				bad.Add(1)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "yours" {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 || o.requests.Load() != clients {
		t.Errorf("%d bad answers; origin saw %d requests, want %d all at once", bad.Load(), o.requests.Load(), clients)
	}
}

// TestCachePostInvalidates: a successful POST to a URL invalidates its
// stored GET.
func TestCachePostInvalidates(t *testing.T) {
	var gets atomic.Int64
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" {
			gets.Add(1)
			w.Header().Set("Cache-Control", "max-age=600")
		}
		io.WriteString(w, r.Method)
	})
	s := startAccel(t, cacheConfig, o.addr)
	fetch(t, s, "GET", "/item")
	fetch(t, s, "GET", "/item")
	if gets.Load() != 1 {
		t.Fatalf("GET not cached: origin saw %d", gets.Load())
	}
	if g := fetch(t, s, "POST", "/item"); g.body != "POST" {
		t.Fatalf("POST got %q", g.body)
	}
	fetch(t, s, "GET", "/item")
	if gets.Load() != 2 {
		t.Errorf("GET after POST was served from cache: origin saw %d GETs, want 2", gets.Load())
	}
}

// TestCacheHeadFromGet: a HEAD is answered from the stored GET, with its
// length and no body.
func TestCacheHeadFromGet(t *testing.T) {
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "twelve bytes")
	})
	s := startAccel(t, cacheConfig, o.addr)
	fetch(t, s, "GET", "/h")
	out := rawExchange(t, s.Addrs()[0].String(), "HEAD /h HTTP/1.1\r\nHost: "+s.Addrs()[0].String()+"\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200 ") || !strings.Contains(out, "\r\nContent-Length: 12\r\n") || !strings.HasSuffix(out, "\r\n\r\n") {
		t.Errorf("HEAD answer:\n%q", out)
	}
	if !strings.Contains(out, "Cache-Status: accel; hit") || o.requests.Load() != 1 {
		t.Errorf("HEAD not served from the stored GET (origin saw %d):\n%s", o.requests.Load(), out)
	}
}

// TestCacheStatusKeepsUpstream: an upstream cache's Cache-Status member
// stays, and accel's follows it (RFC 9211 §2), on misses and hits alike.
func TestCacheStatusKeepsUpstream(t *testing.T) {
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Cache-Status", "origin-cache; hit")
		io.WriteString(w, "x")
	})
	s := startAccel(t, cacheConfig, o.addr)
	for i, want := range []string{"accel; fwd=uri-miss", "accel; hit"} {
		g := fetch(t, s, "GET", "/cs")
		vals := g.header.Values("Cache-Status")
		if len(vals) != 2 || vals[0] != "origin-cache; hit" || !strings.HasPrefix(vals[1], want) {
			t.Errorf("request %d: Cache-Status %q, want the origin's then %q", i, vals, want)
		}
	}
}
