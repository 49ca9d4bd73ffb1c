package accel

import (
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// BenchmarkH2Hit: cached 1 KiB hits over h2c, 32 concurrent streams on one
// connection over loopback, through the whole pipeline. The client is
// h2load, another process, so that allocs/op counts the server's
// allocations only, per hit; it takes b.N requests up front, hence b.N and
// not b.Loop. ns/op includes h2load's start. With the access log on, its
// record costs what the log handler makes of it. h2load encodes its heads
// as nghttp2 does, :path a Huffman literal every time;
// BenchmarkH2HitEncodings compares that with Go's client's encoding.
func BenchmarkH2Hit(b *testing.B) {
	b.Run("access_log", func(b *testing.B) { benchH2Hit(b, cacheConfig) })
	b.Run("no_access_log", func(b *testing.B) { benchH2Hit(b, cacheConfig+"log: {access: false}\n") })
}

func benchH2Hit(b *testing.B, cfg string) {
	h2load, err := exec.LookPath("h2load")
	if err != nil {
		b.Skip("h2load is needed: apt-get install nghttp2-client")
	}
	o := startHTTPOrigin(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(make([]byte, 1024))
	})
	s := startAccel(b, cfg, o.addr)
	url := "http://" + s.Addrs()[0].String() + "/bench"
	if out, err := exec.Command(h2load, "-n", "64", "-c", "1", "-m", "32", url).CombinedOutput(); err != nil {
		b.Fatalf("warming: %v\n%s", err, out)
	}
	b.ReportAllocs()
	b.ResetTimer()
	out, err := exec.Command(h2load, "-n", strconv.Itoa(max(b.N, 32)), "-c", "1", "-m", "32", url).CombinedOutput()
	b.StopTimer()
	if err != nil {
		b.Fatalf("h2load: %v\n%s", err, out)
	}
	if m := regexp.MustCompile(`(\d+) succeeded, (\d+) failed`).FindSubmatch(out); m == nil || string(m[2]) != "0" {
		b.Fatalf("h2load:\n%s", out)
	}
}

// BenchmarkH2HitEncodings: the same hits in process, with a client that
// allocates nothing (h2RawClient), its request heads encoded as Go's
// client and as nghttp2 encode them; allocs/op and B/op are accel's per
// round of 32 hits.
func BenchmarkH2HitEncodings(b *testing.B) {
	o := startHitOrigin(b, 1024)
	s := startAccel(b, hitConfig, o.addr)
	for name, blocks := range h2Encodings() {
		b.Run(name, func(b *testing.B) {
			rc := dialH2Raw(b, s, blocks)
			rc.round(b, 32)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rc.round(b, 32)
			}
		})
	}
}
