package cache

import (
	"net/http"
	"testing"
	"time"
)

// RFC 9111 §5.1: of a list-based Age the first member counts, and an Age
// that is not delta-seconds is ignored; neither makes the response
// uncacheable.
func TestInvalidAge(t *testing.T) {
	for _, tc := range []struct {
		name, age string
		want      string
		hits      int32
	}{
		{"list, first member counts", "7200, 1", "fwd=stale", 2},
		{"list, first member young", "10, 7200", "; hit", 1},
		{"junk after the number", "7200abc", "; hit", 1},
		{"negative", "-7200", "; hit", 1},
		{"decimal", "7200.5", "; hit", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{}, serveBody("x", "Cache-Control", "max-age=3600", "ETag", `"a"`, "Age", tc.age))
			if r := e.get("/a"); !hasStatus(r, "stored") {
				t.Fatalf("not stored: %q", r.get("Cache-Status"))
			}
			e.settle()
			r := e.get("/a")
			if !hasStatus(r, tc.want) || e.o.hits.Load() != tc.hits {
				t.Errorf("Cache-Status %q, origin %d; want %q, %d", r.get("Cache-Status"), e.o.hits.Load(), tc.want, tc.hits)
			}
		})
	}
}

// RFC 9110 §13.1.3, RFC 9111 §4.3.2: If-Modified-Since against a stored
// response without Last-Modified compares with its Date.
func TestIfModifiedSinceWithoutLastModified(t *testing.T) {
	e := newEnv(t, Config{}, serveBody("body", "Cache-Control", "max-age=3600"))
	first := e.get("/d")
	e.settle()
	date, err := http.ParseTime(first.get("Date"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ims    time.Time
		status int
	}{
		{date, 304},
		{date.Add(time.Hour), 304},
		{date.Add(-time.Second), 200},
	} {
		r := e.get("/d", "If-Modified-Since", tc.ims.UTC().Format(http.TimeFormat))
		if r.status != tc.status || !hasStatus(r, "; hit") {
			t.Errorf("IMS %v: %d %q, want %d from the cache", tc.ims, r.status, r.get("Cache-Status"), tc.status)
		}
		if tc.status == 304 && r.body.Len() != 0 {
			t.Errorf("304 with a body")
		}
	}
	if n := e.o.hits.Load(); n != 1 {
		t.Errorf("origin saw %d requests", n)
	}
}

// Accept-Language and Accept-Encoding variants are selected by what the
// client asks for, not how it spells it: order among equal weights, case,
// whitespace and the spelling of q-values.
func TestAcceptNormalised(t *testing.T) {
	for _, field := range []string{"Accept-Language", "Accept-Encoding"} {
		t.Run(field, func(t *testing.T) {
			e := newEnv(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				w.Header().Set("Vary", field)
				w.Write([]byte(r.Header.Get(field)))
			})
			same := map[string][]string{
				"Accept-Language": {"en-US, de;q=0.5, fr;q=0.8", "de;q=0.500,EN-us ,fr; q=0.80", "fr;q=.8x"},
				"Accept-Encoding": {"gzip, br, zstd;q=1.0", "zstd, BR,gzip;q=1", "br;q=0.5"},
			}[field]
			e.get("/v", field, same[0])
			e.settle()
			if r := e.get("/v", field, same[1]); !hasStatus(r, "; hit") || r.body.String() != same[0] {
				t.Errorf("%q after %q: %q %q", same[1], same[0], r.get("Cache-Status"), r.body.String())
			}
			if r := e.get("/v", field, same[2]); hasStatus(r, "; hit") {
				t.Errorf("%q served the variant of %q", same[2], same[0])
			}
		})
	}
}

func TestNormalAccept(t *testing.T) {
	for in, want := range map[string]string{
		"en-US, de;q=0.5, fr;q=0.8":    "en-us,fr;q=0.8,de;q=0.5",
		"de;q=0.500,EN-us ,fr; q=0.80": "en-us,fr;q=0.8,de;q=0.5",
		"gzip;q=1.000, gzip":           "gzip",
		"br;q=0, gzip":                 "gzip,br;q=0",
		"text/html;level=1;q=0.2":      "text/html;level=1;q=0.2",
		"x;q=2":                        "x;q=2",
		" , ,":                         "",
	} {
		if got := string(normalAccept([]byte(in))); got != want {
			t.Errorf("normalAccept(%q) = %q, want %q", in, got, want)
		}
	}
}
