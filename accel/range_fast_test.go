package accel

import (
	"bytes"
	"testing"
)

// A one-range request for a fresh stored object is answered on the fast
// path, without allocation, as a plain hit is; several ranges, a 416 and
// an If-Range date are answered by the cache's general path.
func TestH1RangeHitAllocatesNothing(t *testing.T) {
	o := startHitOrigin(t, 1024)
	s := startAccel(t, hitConfig, o.addr)
	for _, tc := range []struct {
		name, rng, cr string
		body          int
		allocFree     bool
	}{
		{"single", "Range: bytes=100-199\r\n", "bytes 100-199/1024", 100, true},
		{"suffix with If-Range", "Range: bytes=-24\r\nIf-Range: \"v1\"\r\n", "bytes 1000-1023/1024", 24, true},
		{"open-ended", "Range: bytes=1000-\r\n", "bytes 1000-1023/1024", 24, true},
		{"If-Range other", "Range: bytes=0-9\r\nIf-Range: \"v0\"\r\n", "", 1024, true},
		{"unsatisfiable", "Range: bytes=2000-\r\n", "bytes */1024", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, s, "GET /r HTTP/1.1\r\nHost: bench.example\r\n"+tc.rng+"\r\n")
			for range 3 {
				rc.do(t)
			}
			head, body := rc.do(t)
			status := "206"
			switch {
			case tc.cr == "":
				status = "200"
			case tc.body == 0:
				status = "416"
			}
			if !bytes.HasPrefix(head, []byte("HTTP/1.1 "+status+" ")) || len(body) != tc.body {
				t.Fatalf("got %d body bytes after\n%s", len(body), head)
			}
			if tc.cr != "" && !bytes.Contains(head, []byte("\r\nContent-Range: "+tc.cr+"\r\n")) {
				t.Errorf("head lacks Content-Range %s:\n%s", tc.cr, head)
			}
			if !bytes.Contains(head, []byte("\r\nCache-Status: accel; hit; ttl=")) {
				t.Errorf("not a hit:\n%s", head)
			}
			if !tc.allocFree || raceEnabled {
				return
			}
			if n := testing.AllocsPerRun(200, func() { rc.do(t) }); n != 0 {
				t.Errorf("%s allocates %v times per request, want 0", tc.name, n)
			}
		})
	}
	if got := o.requests.Load(); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
}
