package accel

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/accel-proxy/accel/internal/testproc"
)

// benchExchange sends one keep-alive GET and reads the whole response.
func benchExchange(b *testing.B, c net.Conn, br *bufio.Reader, req []byte) {
	if _, err := c.Write(req); err != nil {
		b.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// benchProxy measures one client connection's request rate through accel
// for a route with or without the cache.
func benchProxy(b *testing.B, cfg string) {
	o := startHTTPOrigin(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(make([]byte, 1024))
	})
	s := startAccel(b, cfg, o.addr)
	c, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	br := bufio.NewReader(c)
	req := []byte("GET /bench HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	benchExchange(b, c, br, req)
	b.ReportAllocs()
	for b.Loop() {
		benchExchange(b, c, br, req)
	}
}

func BenchmarkProxyCacheHit(b *testing.B) { benchProxy(b, cacheConfig) }

func BenchmarkProxyPass(b *testing.B) {
	benchProxy(b, strings.Replace(cacheConfig, "    cache: {enabled: true}\n", "", 1))
}

// BenchmarkProxyMiss is the store path: every request is for a new URL,
// fetched from the origin, stored in both tiers and answered.
func BenchmarkProxyMiss(b *testing.B) {
	o := startHTTPOrigin(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(make([]byte, 1024))
	})
	s := startAccel(b, cacheConfig, o.addr)
	c, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	br := bufio.NewReader(c)
	var req []byte
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		n++
		req = append(req[:0], "GET /bench/"...)
		req = strconv.AppendInt(req, int64(n), 10)
		req = append(req, " HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"...)
		benchExchange(b, c, br, req)
	}
}

// BenchmarkH1Hit measures a 1 KiB hit through the HTTP/1 connection loop
// with a client that allocates nothing, so allocs/op is accel's own: 0
// with the access log off; with it on, what the log line costs (the
// default format, a slog record, and the combined format to a file).
func BenchmarkH1Hit(b *testing.B) {
	combined := strings.Replace(cacheConfig, "admin:\n", "log:\n  access_format: combined\n  access_file: DATADIR/access.log\nadmin:\n", 1)
	for _, tc := range []struct{ name, cfg string }{{"nolog", hitConfig}, {"slog", cacheConfig}, {"combined", combined}} {
		b.Run(tc.name, func(b *testing.B) {
			o := startHitOrigin(b, 1024)
			s := startAccel(b, tc.cfg, o.addr)
			rc := dialRaw(b, s, "GET /bench HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
			rc.do(b)
			b.ReportAllocs()
			for b.Loop() {
				rc.do(b)
			}
		})
	}
}

// noStoreReply is bench/origin's /nostore answer: 1 KiB that no cache may
// keep, so that every request goes to the origin.
var noStoreReply = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nCache-Control: no-store\r\n" +
	"Date: Tue, 01 Dec 2026 03:00:00 GMT\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("a", 1024)

// BenchmarkH1MissNoStore is the pure proxy path, the suite's "miss, no-store
// origin" row: a cached route whose origin answers no-store, so that every
// request is forwarded and streamed back. Client and origin allocate
// nothing, so allocs/op is accel's own.
func BenchmarkH1MissNoStore(b *testing.B) {
	s := startAccel(b, hitConfig, testproc.CannedOrigin(b, noStoreReply))
	rc := dialRaw(b, s, "GET /nostore HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	rc.do(b)
	b.ReportAllocs()
	for b.Loop() {
		rc.do(b)
	}
}
