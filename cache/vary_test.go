package cache

import (
	"net/http"
	"testing"
)

func TestVaryVariants(t *testing.T) {
	e := newEnv(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding")
		w.Write([]byte("body for " + r.Header.Get("Accept-Encoding")))
	})
	e.get("/v", "Accept-Encoding", "gzip")
	e.settle()
	e.get("/v", "Accept-Encoding", "br")
	e.settle()
	for _, tc := range []struct{ ae, want string }{
		{"gzip", "body for gzip"}, {"br", "body for br"}, {" GZIP ", "body for gzip"},
	} {
		r := e.get("/v", "Accept-Encoding", tc.ae)
		if r.body.String() != tc.want || !hasStatus(r, "; hit") {
			t.Errorf("%q: %q %q", tc.ae, r.body.String(), r.get("Cache-Status"))
		}
	}
	r := e.get("/v", "Accept-Encoding", "deflate")
	if r.body.String() != "body for deflate" || !hasStatus(r, "fwd=vary-miss") {
		t.Errorf("deflate: %q %q", r.body.String(), r.get("Cache-Status"))
	}
	if n := e.o.hits.Load(); n != 3 {
		t.Fatalf("origin saw %d requests, want 3", n)
	}
}

func TestVaryStarNeverHit(t *testing.T) {
	e := newEnv(t, Config{}, serveBody("star", "Cache-Control", "max-age=60", "Vary", "*"))
	for range 3 {
		r := e.get("/s")
		e.settle()
		if hasStatus(r, "; hit") {
			t.Fatalf("Vary: * served from cache: %q", r.get("Cache-Status"))
		}
	}
	if n := e.o.hits.Load(); n != 3 {
		t.Fatalf("origin saw %d requests, want 3", n)
	}
}

func TestKeyOptions(t *testing.T) {
	e := newEnv(t, Config{}, serveBody("k", "Cache-Control", "max-age=60"))
	e.rules.Key.SortQuery = true
	e.rules.Key.IgnoreQuery = []string{"utm"}
	e.rules.Key.Cookies = []string{"lang"}
	e.get("/q?b=2&a=1&utm=x", "Cookie", "lang=en; sid=1")
	e.settle()
	if r := e.get("/q?a=1&b=2", "Cookie", "sid=2; lang=en"); !hasStatus(r, "; hit") {
		t.Errorf("sorted, ignored, same cookie: %q", r.get("Cache-Status"))
	}
	if r := e.get("/q?a=1&b=2", "Cookie", "lang=de"); hasStatus(r, "; hit") {
		t.Errorf("other cookie value was a hit")
	}
	if r := e.get("/q?a=1&b=3", "Cookie", "lang=en"); hasStatus(r, "; hit") {
		t.Errorf("other query was a hit")
	}
}

func TestHostNormalised(t *testing.T) {
	if a, b := primaryKey("http", []byte("Example.COM:80"), []byte("/x"), nil0()), primaryKey("http", []byte("example.com"), []byte("/x"), nil0()); a != b {
		t.Fatalf("%q != %q", a, b)
	}
	if a, b := primaryKey("https", []byte("example.com:80"), []byte("/x"), nil0()), primaryKey("https", []byte("example.com"), []byte("/x"), nil0()); a == b {
		t.Fatalf("port 80 dropped for https")
	}
}
