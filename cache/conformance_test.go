package cache

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// Conformance cases found in review, each naming the RFC text it checks:
// a stored response is fetched, time passes, and a second request shows
// whether the cache reused it.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name    string
		resp    []string // origin response fields
		after   time.Duration
		fields  []string // second request's fields
		want    string   // Cache-Status part of the second answer
		hits    int32    // requests the origin saw
		present []string // fields the second answer carries
		absent  []string // fields it must not carry
	}{
		// RFC 9111 §4.2.3: the origin's Age counts toward the current age.
		{name: "origin Age makes it stale", resp: []string{"Cache-Control", "max-age=3600", "Age", "7200"},
			want: "fwd=stale", hits: 2},
		{name: "origin Age within max-age", resp: []string{"Cache-Control", "max-age=3600", "Age", "1800"},
			after: 1000 * time.Second, want: "; hit", hits: 1},
		// RFC 9111 §1.2.2: an Age too large to represent is 2^31.
		{name: "overflowing Age", resp: []string{"Cache-Control", "max-age=3600", "Age", "99999999999999999999"},
			want: "fwd=stale", hits: 2},
		// RFC 9111 §5.2.2.4: qualified no-cache withholds only the named
		// fields; the rest may be reused without revalidation.
		{name: "qualified no-cache", resp: []string{"Cache-Control", `no-cache="a, B", max-age=3600`, "A", "1", "B", "2", "C", "3"},
			want: "; hit", hits: 1, present: []string{"C"}, absent: []string{"A", "B"}},
		// RFC 9111 §5.4 (RFC 7234 §5.4): Pragma: no-cache stands for
		// Cache-Control: no-cache when the request has no Cache-Control.
		{name: "request Pragma no-cache", resp: []string{"Cache-Control", "max-age=3600"},
			fields: []string{"Pragma", "no-cache"}, want: "fwd=request", hits: 2},
		{name: "request Pragma under Cache-Control", resp: []string{"Cache-Control", "max-age=3600"},
			fields: []string{"Pragma", "no-cache", "Cache-Control", "max-stale"}, want: "; hit", hits: 1},
		{name: "request Pragma extension", resp: []string{"Cache-Control", "max-age=3600"},
			fields: []string{"Pragma", "x-foo"}, want: "; hit", hits: 1},
		// RFC 9111 §5.3, RFC 9110 §5.6.7: an Expires that is not an
		// HTTP-date is in the past; case does not matter to a cache (§4.2).
		{name: "Expires in UTC", resp: []string{"Expires", "Thu, 18 Aug 2050 02:01:18 UTC"}, want: "fwd=uri-miss", hits: 2},
		{name: "Expires one-digit hour", resp: []string{"Expires", "Thu, 18 Aug 2050 2:01:18 GMT"}, want: "fwd=uri-miss", hits: 2},
		{name: "Expires double spaces", resp: []string{"Expires", "Thu, 18  Aug  2050 02:01:18 GMT"}, want: "fwd=uri-miss", hits: 2},
		{name: "Expires lower-case zone", resp: []string{"Expires", "Thu, 18 Aug 2050 02:01:18 gmt"}, want: "; hit", hits: 1},
		{name: "Expires upper-case names", resp: []string{"Expires", "THU, 18 AUG 2050 02:01:18 GMT"}, want: "; hit", hits: 1},
		// RFC 9111 §5.2: no whitespace around "=" in a cache-directive; the
		// argument is invalid, so the response is stale (§4.2.1).
		{name: "max-age with space before =", resp: []string{"Cache-Control", "max-age =3600", "ETag", `"a"`}, want: "fwd=stale", hits: 2},
		{name: "max-age with space after =", resp: []string{"Cache-Control", "max-age= 3600", "ETag", `"a"`}, want: "fwd=stale", hits: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{}, serveBody("x", tc.resp...))
			e.get("/c")
			e.settle()
			e.clk.advance(tc.after)
			r := e.get("/c", tc.fields...)
			e.settle()
			if cs := r.get("Cache-Status"); !strings.Contains(cs, tc.want) {
				t.Errorf("Cache-Status %q, want %q", cs, tc.want)
			}
			if n := e.o.hits.Load(); n != tc.hits {
				t.Errorf("origin saw %d requests, want %d", n, tc.hits)
			}
			for _, n := range tc.present {
				if r.get(n) == "" {
					t.Errorf("%s missing", n)
				}
			}
			for _, n := range tc.absent {
				if v := r.get(n); v != "" {
					t.Errorf("%s: %q served from cache", n, v)
				}
			}
		})
	}
}

// A 304 updates the stored response (RFC 9111 §3.2, §4.3.4) and its
// freshness is that of the 304: its Age counts (§4.2.3), a missing Date is
// the time it arrived (RFC 9110 §6.6.1), and fields it names in a
// qualified no-cache are not kept.
func TestRevalidate304Freshness(t *testing.T) {
	for _, tc := range []struct {
		name    string
		notMod  []string // 304 fields beyond ETag
		noDate  bool
		before  time.Duration // from the stored response to its revalidation
		after   time.Duration // after the revalidation
		want    string
		absent  string
		present string
	}{
		{name: "304 Age counts", notMod: []string{"Cache-Control", "max-age=3600", "Age", "3500"},
			after: 200 * time.Second, want: "fwd=stale"},
		{name: "304 Age within", notMod: []string{"Cache-Control", "max-age=3600", "Age", "3000"},
			after: 200 * time.Second, want: "; hit"},
		{name: "304 without Date", notMod: []string{"Cache-Control", "max-age=3600"}, noDate: true,
			before: time.Hour, after: 200 * time.Second, want: "; hit"},
		{name: "304 qualified no-cache", notMod: []string{"Cache-Control", `max-age=3600, no-cache="x-secret"`, "X-Secret", "s", "X-Open", "o"},
			want: "; hit", absent: "X-Secret", present: "X-Open"},
		{name: "304 Content-Length kept", notMod: []string{"Cache-Control", "max-age=3600", "Content-Length", "999"},
			want: "; hit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{}, nil)
			e.o.set(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("ETag", `"v1"`)
				if r.Header.Get("If-None-Match") == "" {
					w.Header().Set("Cache-Control", "max-age=10")
					w.Write([]byte("full body"))
					return
				}
				if tc.noDate {
					w.Header()["Date"] = nil
				}
				for i := 0; i+1 < len(tc.notMod); i += 2 {
					w.Header().Set(tc.notMod[i], tc.notMod[i+1])
				}
				w.WriteHeader(304)
			})
			e.get("/r")
			e.settle()
			e.clk.advance(max(tc.before, 20*time.Second))
			if r := e.get("/r"); !hasStatus(r, "fwd-status=304") || r.body.String() != "full body" {
				t.Fatalf("revalidation: %q %q", r.get("Cache-Status"), r.body.String())
			}
			e.clk.advance(tc.after)
			r := e.get("/r")
			if !hasStatus(r, tc.want) {
				t.Errorf("after the 304: %q, want %q", r.get("Cache-Status"), tc.want)
			}
			if r.body.String() != "full body" || r.length != int64(len("full body")) {
				t.Errorf("body %q length %d", r.body.String(), r.length)
			}
			if tc.absent != "" && r.get(tc.absent) != "" {
				t.Errorf("%s kept from the 304", tc.absent)
			}
			if tc.present != "" && r.get(tc.present) == "" {
				t.Errorf("%s not updated from the 304", tc.present)
			}
		})
	}
}

// RFC 9111 §5.1: an age past the largest delta-seconds is sent as
// 2147483648, on a miss and on a hit.
func TestAgeCapped(t *testing.T) {
	e := newEnv(t, Config{}, serveBody("x", "Cache-Control", "max-age=3600", "Age", "99999999999999999999"))
	e.rules.TTLOverride = 0
	e.rules.TTLOverride.UnmarshalYAML(nodeOf("1000000h"))
	if r := e.get("/a"); r.get("Age") != "2147483648" {
		t.Errorf("miss: Age %q", r.get("Age"))
	}
	e.settle()
	e.clk.advance(time.Minute)
	if r := e.get("/a"); !hasStatus(r, "; hit") || r.get("Age") != "2147483648" {
		t.Errorf("hit: Age %q, %q", r.get("Age"), r.get("Cache-Status"))
	}
}
