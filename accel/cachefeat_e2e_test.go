package accel

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// CDN-Cache-Control through accel (RFC 9213): it wins over Cache-Control
// and is passed on; the route's own targeted field wins over both and is
// consumed.
func TestTargetedFieldsE2E(t *testing.T) {
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		switch r.URL.Path {
		case "/cdn":
			w.Header().Set("CDN-Cache-Control", "max-age=60")
		case "/own":
			w.Header().Set("CDN-Cache-Control", "no-store")
			w.Header().Set("Accel-Cache-Control", "max-age=60")
		}
		w.Write([]byte("x"))
	})
	cfg := strings.Replace(cacheConfig, "cache: {enabled: true}", "cache: {enabled: true, targeted_field: Accel-Cache-Control}", 1)
	s := startAccel(t, cfg, o.addr)
	for _, path := range []string{"/cdn", "/own"} {
		before := o.requests.Load()
		for i := range 2 {
			g := fetch(t, s, "GET", path)
			if g.header.Get("Accel-Cache-Control") != "" || g.header.Get("CDN-Cache-Control") == "" {
				t.Errorf("%s: Accel-Cache-Control %q, CDN-Cache-Control %q", path, g.header.Get("Accel-Cache-Control"), g.header.Get("CDN-Cache-Control"))
			}
			if i == 1 && !strings.Contains(g.header.Get("Cache-Status"), "hit") {
				t.Errorf("%s: second answer %q", path, g.header.Get("Cache-Status"))
			}
		}
		if n := o.requests.Load() - before; n != 1 {
			t.Errorf("%s: origin asked %d times", path, n)
		}
	}
}

// A HEAD miss through accel reaches the origin as a GET, whose answer is
// stored: the GET after it is a hit.
func TestHeadMissE2E(t *testing.T) {
	var mu sync.Mutex
	var methods []string
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		methods = append(methods, r.Method)
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("body"))
	})
	s := startAccel(t, cacheConfig, o.addr)
	if g := fetch(t, s, "HEAD", "/h"); g.status != 200 || g.body != "" || g.header.Get("Content-Length") != "4" {
		t.Fatalf("HEAD: %d %q %q", g.status, g.body, g.header.Get("Content-Length"))
	}
	// The HEAD's answer goes out with the head, while the fill may still be
	// reading the body: the GET is then a hit or joins that fetch
	// (collapsed). Either way the origin is asked once, which is checked
	// below.
	if g := fetch(t, s, "GET", "/h"); g.body != "body" || !strings.Contains(g.header.Get("Cache-Status"), "hit") && !strings.Contains(g.header.Get("Cache-Status"), "collapsed") {
		t.Fatalf("GET: %q %q", g.body, g.header.Get("Cache-Status"))
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(methods, ",") != "GET" {
		t.Errorf("origin saw %v", methods)
	}
}

// An object too large to store: its Range goes to the origin, the 206 is
// stored and answers, byte for byte, the ranges inside it (curl -r over
// HTTP/1.1 and HTTP/2).
func TestStored206E2E(t *testing.T) {
	var mu sync.Mutex
	var ranges []string
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"big"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(rangeOriginBody))
	})
	cfg := strings.Replace(cacheConfig, "cache: {enabled: true}", "cache: {enabled: true, max_object_size: 64KiB}", 1)
	s := startAccel(t, cfg, o.addr)
	url := "http://" + s.Addrs()[0].String() + "/big"
	// The first learns the object is too large (its range is cut from the
	// whole body); the second's Range goes to the origin, its 206 stored.
	for _, rng := range []string{"0-99", "1000-60999"} {
		if code, h, body := curlRange(t, "--http1.1", "-r", rng, url); code != 206 {
			t.Fatalf("%s: %d", rng, code)
		} else {
			checkRangeBody(t, h, body, 1)
		}
	}
	for _, proto := range []string{"--http1.1", "--http2-prior-knowledge"} {
		for _, rng := range []string{"1000-60999", "5000-5999", "2000-2099,40000-40099"} {
			code, h, body := curlRange(t, proto, "-r", rng, url)
			if code != 206 || !strings.Contains(h.Get("Cache-Status"), "hit") {
				t.Fatalf("%s %s: %d %q", proto, rng, code, h.Get("Cache-Status"))
			}
			checkRangeBody(t, h, body, strings.Count(rng, ",")+1)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(ranges, "|") != "|bytes=1000-60999" {
		t.Errorf("origin saw Ranges %q", ranges)
	}
}
