package cache

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// RFC 9213 §2.1: directives in CDN-Cache-Control (or the route's own
// targeted field) decide, and Cache-Control and Expires are ignored. Each
// row has the two fields disagree, so a cache that ignored the precedence
// fails it; the rows with an invalid targeted field check that it is then
// ignored as a whole.
func TestCDNCacheControl(t *testing.T) {
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name  string
		own   string   // the route's targeted field
		resp  []string // origin response fields
		after time.Duration
		want  string // Cache-Status part of the second answer
		hits  int32  // requests the origin saw
	}{
		{name: "max-age over no-store", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"}, want: "; hit", hits: 1},
		{name: "max-age over private", resp: []string{"Cache-Control", "private", "CDN-Cache-Control", "max-age=60"}, want: "; hit", hits: 1},
		{name: "no-store over max-age", resp: []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "no-store"}, want: "fwd=uri-miss", hits: 2},
		{name: "private over public", resp: []string{"Cache-Control", "public, max-age=60", "CDN-Cache-Control", "private"}, want: "fwd=uri-miss", hits: 2},
		{name: "no-cache over max-age", resp: []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "no-cache, max-age=60", "ETag", `"a"`}, want: "fwd=stale", hits: 2},
		{name: "longer max-age", resp: []string{"Cache-Control", "max-age=10", "CDN-Cache-Control", "max-age=60"}, after: 30 * time.Second, want: "; hit", hits: 1},
		{name: "shorter max-age", resp: []string{"Cache-Control", "max-age=600", "CDN-Cache-Control", "max-age=10", "ETag", `"a"`}, after: 30 * time.Second, want: "fwd=stale", hits: 2},
		{name: "s-maxage", resp: []string{"Cache-Control", "s-maxage=600", "CDN-Cache-Control", "s-maxage=10", "ETag", `"a"`}, after: 30 * time.Second, want: "fwd=stale", hits: 2},
		{name: "Expires ignored", resp: []string{"Expires", future, "CDN-Cache-Control", "max-age=10", "ETag", `"a"`}, after: 30 * time.Second, want: "fwd=stale", hits: 2},
		{name: "Cache-Control swr ignored", resp: []string{"Cache-Control", "max-age=10, stale-while-revalidate=600", "CDN-Cache-Control", "max-age=10", "ETag", `"a"`}, after: 30 * time.Second, want: "fwd=stale", hits: 2},
		{name: "targeted swr", resp: []string{"Cache-Control", "max-age=10", "CDN-Cache-Control", "max-age=10, stale-while-revalidate=600"}, after: 30 * time.Second, want: "; hit; ttl=-", hits: 2},
		{name: "boolean false", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60, no-store=?0"}, want: "; hit", hits: 1},
		{name: "two lines", resp: []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "max-age=60", "CDN-Cache-Control", "private"}, want: "fwd=uri-miss", hits: 2},
		// Not a valid Dictionary: ignored, Cache-Control decides.
		{name: "invalid: upper-case key", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "Max-Age=60"}, want: "fwd=uri-miss", hits: 2},
		{name: "invalid: trailing comma", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60,"}, want: "fwd=uri-miss", hits: 2},
		{name: "invalid: quoted list", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", `max-age=60, private="a`}, want: "fwd=uri-miss", hits: 2},
		// A directive of the wrong type is ignored, the rest applies.
		{name: "string max-age ignored", resp: []string{"Cache-Control", "max-age=600", "CDN-Cache-Control", `max-age="600", s-maxage=10`, "ETag", `"a"`}, after: 30 * time.Second, want: "fwd=stale", hits: 2},
		// The route's own field comes first, then CDN-Cache-Control.
		{name: "own over CDN", own: "Accel-Cache-Control", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "no-store", "Accel-Cache-Control", "max-age=60"}, want: "; hit", hits: 1},
		{name: "own no-store over CDN", own: "Accel-Cache-Control", resp: []string{"CDN-Cache-Control", "max-age=60", "Accel-Cache-Control", "no-store"}, want: "fwd=uri-miss", hits: 2},
		{name: "CDN without own", own: "Accel-Cache-Control", resp: []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"}, want: "; hit", hits: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{}, serveBody("x", tc.resp...))
			e.rules.TargetedField = tc.own
			first := e.get("/t")
			e.settle()
			e.clk.advance(tc.after)
			r := e.get("/t")
			e.settle()
			if cs := r.get("Cache-Status"); !strings.Contains(cs, tc.want) {
				t.Errorf("Cache-Status %q, want %q", cs, tc.want)
			}
			if n := e.o.hits.Load(); n != tc.hits {
				t.Errorf("origin saw %d requests, want %d", n, tc.hits)
			}
			for _, r := range []*recorder{first, r} {
				if tc.own != "" && r.get(tc.own) != "" {
					t.Errorf("%s forwarded to the client", tc.own)
				}
				if strings.Contains(strings.Join(tc.resp, " "), "CDN-Cache-Control") && r.get("CDN-Cache-Control") == "" {
					t.Errorf("CDN-Cache-Control not passed on")
				}
			}
		})
	}
}

// The route's own targeted field is consumed but still governs a 304 that
// does not repeat it, and survives a restart.
func TestOwnTargetedFieldRevalidated(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, Config{Dir: dir}, nil)
	e.rules.TargetedField = "Accel-Cache-Control"
	e.o.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v"`)
		w.Header().Set("Cache-Control", "no-store")
		if r.Header.Get("If-None-Match") != "" {
			w.WriteHeader(304)
			return
		}
		w.Header().Set("Accel-Cache-Control", "max-age=60")
		w.Write([]byte("x"))
	})
	e.get("/o")
	e.settle()
	e.clk.advance(61 * time.Second)
	if r := e.get("/o"); !hasStatus(r, "fwd-status=304") {
		t.Fatalf("revalidation: %q", r.get("Cache-Status"))
	}
	e.clk.advance(30 * time.Second)
	if r := e.get("/o"); !hasStatus(r, "; hit") || r.get("Accel-Cache-Control") != "" {
		t.Fatalf("after the 304: %q, field %q", r.get("Cache-Status"), r.get("Accel-Cache-Control"))
	}
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := Open(Config{Dir: dir, Now: e.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.c = c
	e.clk.advance(31 * time.Second)
	if r := e.get("/o"); !hasStatus(r, "fwd-status=304") {
		t.Fatalf("after restart: %q", r.get("Cache-Status"))
	}
	e.clk.advance(30 * time.Second)
	if r := e.get("/o"); !hasStatus(r, "; hit") {
		t.Fatalf("after restart and 304: %q", r.get("Cache-Status"))
	}
}
