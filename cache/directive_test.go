package cache

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// Each Cache-Control directive changes what a second request gets; the
// table says how, so ignoring a directive fails its row.
func TestDirectives(t *testing.T) {
	type req struct {
		after  time.Duration
		fields []string
	}
	for _, tc := range []struct {
		name  string
		resp  []string // origin response fields
		first []string // first request's fields
		then  req
		want  string // Cache-Status part of the second answer
		hits  int32  // requests the origin saw
	}{
		{"max-age fresh", []string{"Cache-Control", "max-age=60"}, nil, req{30 * time.Second, nil}, "; hit", 1},
		{"max-age expired", []string{"Cache-Control", "max-age=60"}, nil, req{61 * time.Second, nil}, "fwd=stale", 2},
		{"s-maxage over max-age", []string{"Cache-Control", "max-age=10, s-maxage=60"}, nil, req{30 * time.Second, nil}, "; hit", 1},
		{"s-maxage expires first", []string{"Cache-Control", "max-age=600, s-maxage=10"}, nil, req{30 * time.Second, nil}, "fwd=stale", 2},
		{"expires", []string{"Expires", time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)}, nil, req{30 * time.Second, nil}, "; hit", 1},
		{"no-store", []string{"Cache-Control", "no-store, max-age=60"}, nil, req{0, nil}, "fwd=uri-miss", 2},
		{"private", []string{"Cache-Control", "private, max-age=60"}, nil, req{0, nil}, "fwd=uri-miss", 2},
		{"no-cache", []string{"Cache-Control", "no-cache, max-age=60", "ETag", `"a"`}, nil, req{0, nil}, "fwd=stale", 2},
		{"must-revalidate with max-stale", []string{"Cache-Control", "max-age=10, must-revalidate"}, nil, req{30 * time.Second, []string{"Cache-Control", "max-stale=60"}}, "fwd=stale", 2},
		{"proxy-revalidate with max-stale", []string{"Cache-Control", "max-age=10, proxy-revalidate"}, nil, req{30 * time.Second, []string{"Cache-Control", "max-stale=60"}}, "fwd=stale", 2},
		{"request max-stale", []string{"Cache-Control", "max-age=10"}, nil, req{30 * time.Second, []string{"Cache-Control", "max-stale=60"}}, "; hit", 1},
		{"request max-stale exceeded", []string{"Cache-Control", "max-age=10"}, nil, req{90 * time.Second, []string{"Cache-Control", "max-stale=60"}}, "fwd=stale", 2},
		{"request max-age", []string{"Cache-Control", "max-age=60"}, nil, req{30 * time.Second, []string{"Cache-Control", "max-age=10"}}, "fwd=request", 2},
		{"request min-fresh", []string{"Cache-Control", "max-age=60"}, nil, req{30 * time.Second, []string{"Cache-Control", "min-fresh=40"}}, "fwd=request", 2},
		{"request no-cache", []string{"Cache-Control", "max-age=60"}, nil, req{0, []string{"Cache-Control", "no-cache"}}, "fwd=request", 2},
		{"request no-store", []string{"Cache-Control", "max-age=60"}, []string{"Cache-Control", "no-store"}, req{0, nil}, "fwd=uri-miss", 2},
		{"request only-if-cached hit", []string{"Cache-Control", "max-age=60"}, nil, req{0, []string{"Cache-Control", "only-if-cached"}}, "; hit", 1},
		{"request only-if-cached stale", []string{"Cache-Control", "max-age=10"}, nil, req{30 * time.Second, []string{"Cache-Control", "only-if-cached"}}, "only-if-cached", 1},
		{"authorization not stored", []string{"Cache-Control", "max-age=60"}, []string{"Authorization", "Bearer x"}, req{0, nil}, "fwd=uri-miss", 2},
		{"authorization public", []string{"Cache-Control", "public, max-age=60"}, []string{"Authorization", "Bearer x"}, req{0, nil}, "; hit", 1},
		{"set-cookie not stored", []string{"Cache-Control", "max-age=60", "Set-Cookie", "a=1"}, nil, req{0, nil}, "fwd=uri-miss", 2},
		{"stale-while-revalidate", []string{"Cache-Control", "max-age=10, stale-while-revalidate=60"}, nil, req{30 * time.Second, nil}, "; hit; ttl=-", 2},
		{"heuristic", []string{"Last-Modified", time.Now().Add(-100 * time.Hour).UTC().Format(http.TimeFormat)}, nil, req{time.Hour, nil}, "; hit", 1},
		{"heuristic expired", []string{"Last-Modified", time.Now().Add(-10 * time.Hour).UTC().Format(http.TimeFormat)}, nil, req{2 * time.Hour, nil}, "fwd=stale", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{}, serveBody("x", tc.resp...))
			if _, _, err := e.do("GET", "/d", tc.first...); err != nil {
				t.Fatal(err)
			}
			e.settle()
			e.clk.advance(tc.then.after)
			r, _, err := e.do("GET", "/d", tc.then.fields...)
			if err != nil {
				t.Fatal(err)
			}
			e.settle()
			if cs := r.get("Cache-Status"); !strings.Contains(cs, tc.want) {
				t.Errorf("Cache-Status %q, want %q", cs, tc.want)
			}
			if n := e.o.hits.Load(); n != tc.hits {
				t.Errorf("origin saw %d requests, want %d", n, tc.hits)
			}
		})
	}
}

func TestOnlyIfCachedMiss(t *testing.T) {
	e := newEnv(t, Config{}, serveBody("x", "Cache-Control", "max-age=60"))
	r := e.get("/none", "Cache-Control", "only-if-cached")
	if r.status != 504 || e.o.hits.Load() != 0 {
		t.Fatalf("status %d, origin %d", r.status, e.o.hits.Load())
	}
}

func TestSetCookieStoredWithout(t *testing.T) {
	e := newEnv(t, Config{}, serveBody("x", "Cache-Control", "max-age=60", "Set-Cookie", "sid=secret"))
	e.rules.StoreSetCookie = true
	if r := e.get("/c"); r.get("Set-Cookie") != "sid=secret" {
		t.Fatalf("the fetching client lost its cookie")
	}
	e.settle()
	r := e.get("/c")
	if !hasStatus(r, "; hit") || r.get("Set-Cookie") != "" {
		t.Fatalf("hit %q with Set-Cookie %q", r.get("Cache-Status"), r.get("Set-Cookie"))
	}
}

func TestTTLRules(t *testing.T) {
	e := newEnv(t, Config{}, serveBody("x", "Cache-Control", "max-age=600"))
	e.rules.TTLCap = 0
	e.rules.TTLOverride = 0
	e.rules.TTLCap.UnmarshalYAML(nodeOf("20s"))
	e.get("/t")
	e.settle()
	e.clk.advance(30 * time.Second)
	if r := e.get("/t"); hasStatus(r, "; hit") {
		t.Fatalf("TTLCap ignored: %q", r.get("Cache-Status"))
	}
}

func TestClientConditionalFromCache(t *testing.T) {
	e := newEnv(t, Config{}, serveBody("x", "Cache-Control", "max-age=60", "ETag", `"v1"`))
	e.get("/e")
	e.settle()
	r := e.get("/e", "If-None-Match", `"v0", "v1"`)
	if r.status != 304 || r.body.Len() != 0 || r.get("ETag") != `"v1"` || !hasStatus(r, "; hit") {
		t.Fatalf("status %d body %q", r.status, r.body.String())
	}
	if r = e.get("/e", "If-None-Match", `"v2"`); r.status != 200 {
		t.Fatalf("status %d for a non-matching tag", r.status)
	}
}
