package cache

import (
	"bytes"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/accel-proxy/accel/parser"
)

// page is a compressible HTML body well over the minimum size.
var page = strings.Repeat("<p>accel compresses what it stores, once per coding.</p>\n", 100)

func decode(t *testing.T, enc string, b []byte) string {
	t.Helper()
	var r io.Reader
	switch enc {
	case "":
		return string(b)
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", enc, err)
	}
	return string(out)
}

func compressEnv(t testing.TB, body string, fields ...string) (*env, *methods) {
	var aes methods
	e := newEnv(t, Config{}, nil)
	e.rules.Compress.Enabled = true
	e.o.set(func(w http.ResponseWriter, r *http.Request) {
		aes.add(r.Header.Get("Accept-Encoding"))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"p1"`)
		for i := 0; i+1 < len(fields); i += 2 {
			w.Header().Set(fields[i], fields[i+1])
		}
		if r.Header.Get("If-None-Match") == `"p1"` {
			w.WriteHeader(304)
			return
		}
		io.WriteString(w, body)
	})
	return e, &aes
}

// Each coding is negotiated from Accept-Encoding with q-values, decodes to
// the origin's bytes, has a weak ETag and Vary: Accept-Encoding; the
// origin is asked once, without Accept-Encoding, for all of them.
func TestCompressNegotiated(t *testing.T) {
	e, aes := compressEnv(t, page)
	first := e.get("/p", "Accept-Encoding", "gzip, br")
	if first.get("Content-Encoding") != "" || first.body.String() != page || !strings.Contains(first.get("Vary"), "Accept-Encoding") {
		t.Fatalf("miss: %q, Vary %q", first.get("Content-Encoding"), first.get("Vary"))
	}
	e.settle()
	for _, tc := range []struct{ ae, enc string }{
		{"gzip, deflate, br, zstd", "br"},
		{"gzip, br;q=0.5", "gzip"},
		{"zstd", "zstd"},
		{"GZIP", "gzip"},
		{"br;q=0.2, zstd;q=0.9, gzip;q=0.5", "zstd"},
		{"*", "br"},
		{"gzip;q=0, *", "br"},
		{"br;q=0.5, identity", ""},
		{"br;q=0", ""},
		{"deflate", ""},
		{"", ""},
	} {
		var r *recorder
		if tc.ae == "" {
			r = e.get("/p")
		} else {
			r = e.get("/p", "Accept-Encoding", tc.ae)
		}
		if got := r.get("Content-Encoding"); got != tc.enc || !hasStatus(r, "; hit") {
			t.Errorf("%q: Content-Encoding %q (%q), want %q", tc.ae, got, r.get("Cache-Status"), tc.enc)
			continue
		}
		if decode(t, tc.enc, r.body.Bytes()) != page || r.length != int64(r.body.Len()) {
			t.Errorf("%q: body does not decode to the origin's", tc.ae)
		}
		if tc.enc != "" && (r.get("ETag") != `W/"p1"` || r.body.Len() >= len(page)) {
			t.Errorf("%q: ETag %q, %d bytes", tc.ae, r.get("ETag"), r.body.Len())
		}
		if tc.enc == "" && r.get("ETag") != `"p1"` {
			t.Errorf("%q: identity ETag %q", tc.ae, r.get("ETag"))
		}
		if !strings.Contains(r.get("Vary"), "Accept-Encoding") {
			t.Errorf("%q: Vary %q", tc.ae, r.get("Vary"))
		}
	}
	if got := aes.get(); len(got) != 1 || got[0] != "" {
		t.Errorf("origin asked %d times, Accept-Encoding %q", len(got), got)
	}
	// Identity and one sibling per coding.
	if n := e.c.Stats().Objects; n != 4 {
		t.Errorf("%d objects stored, want 4", n)
	}
}

// A coding is made once: the second request for it is the stored one.
func TestCompressOnce(t *testing.T) {
	e, _ := compressEnv(t, page)
	e.get("/p")
	e.settle()
	a := e.get("/p", "Accept-Encoding", "br")
	before := e.c.Stats().Objects
	b := e.get("/p", "Accept-Encoding", "br")
	if !bytes.Equal(a.body.Bytes(), b.body.Bytes()) || e.c.Stats().Objects != before {
		t.Errorf("the coding was made again")
	}
}

// Small, already encoded, other types and no-transform pass untouched.
func TestCompressUntouched(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		fields []string
	}{
		{"small", "<p>hi</p>", nil},
		{"encoded", page, []string{"Content-Encoding", "gzip"}},
		{"image", page, []string{"Content-Type", "image/png"}},
		{"no-transform", page, []string{"Cache-Control", "max-age=600, no-transform"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := compressEnv(t, tc.body, tc.fields...)
			e.get("/u")
			e.settle()
			r := e.get("/u", "Accept-Encoding", "br, gzip, zstd")
			want := ""
			if tc.name == "encoded" {
				want = "gzip"
			}
			if got := r.get("Content-Encoding"); got != want || r.body.String() != tc.body {
				t.Errorf("Content-Encoding %q, body changed: %v", got, r.body.String() != tc.body)
			}
			if r.get("ETag") != `"p1"` {
				t.Errorf("ETag %q", r.get("ETag"))
			}
		})
	}
}

// A Range of a compressed answer addresses the compressed bytes.
func TestCompressRange(t *testing.T) {
	e, _ := compressEnv(t, page)
	e.get("/p")
	e.settle()
	whole := e.get("/p", "Accept-Encoding", "gzip").body.Bytes()
	r := e.get("/p", "Accept-Encoding", "gzip", "Range", "bytes=10-29")
	want := "bytes 10-29/" + itoa(len(whole))
	if r.status != 206 || r.get("Content-Range") != want || !bytes.Equal(r.body.Bytes(), whole[10:30]) || r.get("Content-Encoding") != "gzip" {
		t.Errorf("%d %q %q", r.status, r.get("Content-Range"), r.get("Content-Encoding"))
	}
	// If-Range with the weak ETag never matches (RFC 9110 §13.1.5).
	if r := e.get("/p", "Accept-Encoding", "gzip", "Range", "bytes=0-9", "If-Range", `W/"p1"`); r.status != 200 {
		t.Errorf("If-Range weak: %d", r.status)
	}
}

// A 304 that updates the identity object updates its codings too; a
// restart keeps them.
func TestCompressFreshenedAndPersisted(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, Config{Dir: dir}, nil)
	e.rules.Compress.Enabled = true
	version := "1"
	e.o.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"p1"`)
		w.Header().Set("X-Version", version)
		if r.Header.Get("If-None-Match") != "" {
			w.WriteHeader(304)
			return
		}
		io.WriteString(w, page)
	})
	e.get("/f")
	e.settle()
	e.get("/f", "Accept-Encoding", "zstd")
	e.clk.advance(20 * time.Second)
	version = "2"
	if r := e.get("/f", "Accept-Encoding", "zstd"); !hasStatus(r, "fwd-status=304") || r.get("X-Version") != "2" || r.get("Content-Encoding") != "zstd" {
		t.Fatalf("revalidated: %q %q %q", r.get("Cache-Status"), r.get("X-Version"), r.get("Content-Encoding"))
	}
	e.c.Close()
	c, err := Open(Config{Dir: dir, Now: e.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.c = c
	before := c.Stats().Objects
	r := e.get("/f", "Accept-Encoding", "zstd")
	if !hasStatus(r, "; hit") || r.get("X-Version") != "2" || decode(t, "zstd", r.body.Bytes()) != page || c.Stats().Objects != before {
		t.Errorf("after restart: %q %q", r.get("Cache-Status"), r.get("X-Version"))
	}
}

func TestNegotiateAllocatesNothing(t *testing.T) {
	fs := parser.Fields{}.Add("Accept-Encoding", "gzip, deflate, br;q=0.9, zstd;q=0.8")
	encs := []string{"br", "zstd", "gzip"}
	if n := testing.AllocsPerRun(100, func() { negotiate(fs, encs) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
	if got := negotiate(fs, encs); got != "gzip" {
		t.Errorf("negotiated %q", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// Choosing and finding the stored coding of a hit allocates nothing, so
// a compressed hit costs what a plain one does.
func TestCodedHitSelectionAllocatesNothing(t *testing.T) {
	e, _ := compressEnv(t, page)
	e.get("/a")
	e.settle()
	e.get("/a", "Accept-Encoding", "br")
	rules := e.rules.WithDefaults()
	o, _, _ := e.c.lookup("http://example.com/a", "", nil)
	if o == nil {
		t.Fatal("not stored")
	}
	fs := parser.Fields{}.Add("Accept-Encoding", "gzip, deflate, br, zstd")
	var body []byte
	n := testing.AllocsPerRun(100, func() {
		enc := negotiate(fs, rules.Compress.Encodings)
		if !compressible(o, &rules.Compress) {
			t.Fatal("not compressible")
		}
		_, body, _ = e.c.encoded(o, enc, &rules.Compress)
	})
	if n != 0 {
		t.Errorf("%v allocations", n)
	}
	if decode(t, "br", body) != page {
		t.Error("wrong body")
	}
}

// A coded sibling is stored at its size: the coder's buffer, sized for a
// third of the identity body, held 80 KB for each of these bodies that
// code to a few hundred bytes, while the memory tier counted their length.
func TestCodedSiblingKeptAtItsSize(t *testing.T) {
	const n = 20
	big := strings.Repeat(page, 40)
	e, _ := compressEnv(t, big)
	for i := range n {
		e.get("/p" + strconv.Itoa(i))
	}
	e.settle()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		r := e.get("/p"+strconv.Itoa(i), "Accept-Encoding", "br")
		if r.get("Content-Encoding") != "br" || decode(t, "br", r.body.Bytes()) != big {
			t.Fatalf("/p%d: coding %q", i, r.get("Content-Encoding"))
		}
	}
	e.settle()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > n*16<<10 {
		t.Errorf("the heap grew by %d bytes for %d coded siblings of %d-byte bodies, want under 16 KiB each", grown, n, len(big))
	}
}
