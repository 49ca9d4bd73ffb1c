package upstream

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/accel-proxy/accel/internal/testproc"
	"github.com/accel-proxy/accel/parser"
)

// BenchmarkDo is one miss's work in the pool: write a GET with a browser's
// fields, read a 1 KiB response head and body, give the connection back.
func BenchmarkDo(b *testing.B) {
	body := strings.Repeat("x", 1024)
	addr := testproc.CannedOrigin(b, "HTTP/1.1 200 OK\r\nDate: Mon, 30 Nov 2026 10:00:00 GMT\r\n"+
		"Content-Type: text/html; charset=utf-8\r\nCache-Control: max-age=60\r\nETag: \"abc\"\r\n"+
		"Vary: Accept-Encoding\r\nContent-Length: 1024\r\n\r\n"+body)
	p, err := NewPool(Config{Servers: []ServerConfig{{Addr: addr}}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	req := &Request{Head: &parser.Request{
		Method: []byte("GET"), Target: []byte("/bench/page?id=42"), Host: []byte("bench.example"),
		Major: 1, Minor: 1,
		Fields: fields("Host", "bench.example", "User-Agent", "Mozilla/5.0 (X11; Linux x86_64)",
			"Accept", "text/html,application/xhtml+xml", "Accept-Encoding", "gzip, br",
			"Accept-Language", "en-GB,en;q=0.9", "Cookie", "session=0123456789abcdef",
			"X-Forwarded-For", "127.0.0.1", "X-Forwarded-Proto", "http", "Via", "1.1 accel"),
	}, Retryable: true}
	// A client's request context: cancelable, so the exchange watches it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := p.Do(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for err == nil {
			var m int
			m, err = resp.Body.Read(buf[n:])
			n += m
		}
		if err != io.EOF || n != 1024 || !bytes.Equal(buf[:4], []byte("xxxx")) {
			b.Fatalf("body %d bytes, %v", n, err)
		}
		resp.Body.Close()
	}
	if n := p.Stats().Open; n != 1 {
		b.Fatalf("%d connections open: keep-alive broke", n)
	}
}

// TestDoAllocatesNothing pins the miss path's upstream part at zero
// allocations once the pools are warm: the request head written, the
// response head parsed, a small body read, the connection given back.
func TestDoAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	addr := testproc.CannedOrigin(t, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nhello")
	p := newTestPool(t, Config{Servers: []ServerConfig{{Addr: addr}}})
	req := get("/a")
	buf := make([]byte, 64)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(500, func() {
		resp, err := p.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := io.ReadFull(resp.Body, buf[:5]); n != 5 || resp.Head.Status != 200 {
			t.Fatalf("%d bytes, status %d", n, resp.Head.Status)
		}
		resp.Body.Close()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Do, want 0", allocs)
	}
}
