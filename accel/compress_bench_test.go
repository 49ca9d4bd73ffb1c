package accel

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// codedHitConfig is hitConfig with compression on.
var codedHitConfig = strings.Replace(hitConfig, "cache: {enabled: true}", "cache: {enabled: true, compress: {enabled: true}}", 1)

// codings are the Accept-Encoding values of the coded hit measurements.
var codings = []struct{ name, ae, enc string }{
	{"identity", "", ""},
	{"br", "Accept-Encoding: br\r\n", "br"},
	{"gzip", "Accept-Encoding: gzip, deflate\r\n", "gzip"},
	{"zstd", "Accept-Encoding: zstd;q=1, br;q=0.5\r\n", "zstd"},
}

// startCodedOrigin serves 16 KiB of text with its length.
func startCodedOrigin(t testing.TB) *httpOrigin {
	body := bytes.Repeat([]byte("accel codes each stored object once. "), 16<<10/37+1)[:16<<10]
	return startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
}

func codedClient(t testing.TB, s *Server, ae string) *rawClient {
	return dialRaw(t, s, "GET /coded HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\n"+ae+"\r\n")
}

// A compressed hit is a stored coding answered on the fast path: no
// allocation, as a plain hit; the origin was asked once for all codings.
func TestH1CodedHitAllocatesNothing(t *testing.T) {
	o := startCodedOrigin(t)
	s := startAccel(t, codedHitConfig, o.addr)
	for _, tc := range codings {
		rc := codedClient(t, s, tc.ae)
		for range 3 {
			rc.do(t)
		}
		head, body := rc.do(t)
		if tc.enc != "" && (!bytes.Contains(head, []byte("\r\nContent-Encoding: "+tc.enc+"\r\n")) || len(body) >= 16<<10) {
			t.Fatalf("%s: %d bytes after\n%s", tc.name, len(body), head)
		}
		if n := testing.AllocsPerRun(200, func() { rc.do(t) }); !raceEnabled && n != 0 {
			t.Errorf("%s: %v allocations per hit, want 0", tc.name, n)
		}
	}
	if n := o.requests.Load(); n != 1 {
		t.Errorf("origin asked %d times", n)
	}
}

// BenchmarkH1CodedHit compares a 16 KiB text hit served plain with the
// same hit served in each stored coding (fewer bytes to write, the same
// work otherwise: the compression was done once, when first asked for).
func BenchmarkH1CodedHit(b *testing.B) {
	o := startCodedOrigin(b)
	s := startAccel(b, codedHitConfig, o.addr)
	for _, tc := range codings {
		b.Run(tc.name, func(b *testing.B) {
			rc := codedClient(b, s, tc.ae)
			rc.do(b)
			rc.do(b)
			b.ReportAllocs()
			for b.Loop() {
				rc.do(b)
			}
		})
	}
}
