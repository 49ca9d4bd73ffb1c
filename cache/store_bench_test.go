package cache

import (
	"context"
	"io"
	"strconv"
	"testing"

	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
)

// memBody is an origin body already whole in memory, as upstream hands out
// a small response read with its head; the benchmark reuses it.
type memBody struct {
	b   []byte
	off int
}

func (m *memBody) Read(p []byte) (int, error) {
	if m.off == len(m.b) {
		return 0, io.EOF
	}
	n := copy(p, m.b[m.off:])
	m.off += n
	return n, nil
}

func (m *memBody) Close() error { return nil }

// BenchmarkStoreMiss is the store path of the cache alone: every request
// is for a new URL, whose 1 KiB response (Content-Length known, body at
// hand, or streamed: read by a goroutine of its own) is fetched, answered
// and stored in memory, or in memory and on disk (the embedded defaults'
// tiers). allocs/op are the cache's: the
// fetch and the writer reuse theirs.
func BenchmarkStoreMiss(b *testing.B) {
	for _, tc := range []struct {
		name           string
		disk, buffered bool
	}{{"memory", false, true}, {"disk", true, true}, {"disk-streamed", true, false}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := Config{}
			if tc.disk {
				cfg.Dir = b.TempDir()
			}
			c, err := Open(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			payload := make([]byte, 1024)
			fields := parser.Fields{}.Add("Content-Type", "text/plain").
				Add("Cache-Control", "max-age=3600").
				Add("Date", "Tue, 01 Dec 2026 03:00:00 GMT")
			body := &memBody{b: payload}
			resp := &Response{}
			fetch := func(ctx context.Context, h *parser.Request) (*Response, error) {
				body.off = 0
				*resp = Response{Status: 200, Fields: fields, ContentLength: int64(len(payload)), Body: body, Buffered: tc.buffered}
				return resp, nil
			}
			rules := policy.CacheRules{Enabled: true}
			h := &parser.Request{Method: []byte("GET"), Host: []byte("bench.example"), Major: 1, Minor: 1,
				Fields: parser.Fields{}.Add("User-Agent", "bench").Add("Accept", "*/*")}
			req := &Request{Scheme: "http", Head: h}
			w := &discard{}
			ctx := context.Background()
			var target []byte
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				n++
				target = strconv.AppendInt(append(target[:0], "/bench/"...), int64(n), 10)
				h.Target = target
				out, err := c.Serve(ctx, req, &rules, Fetch(fetch), w)
				if err != nil || out.Status != "miss" {
					b.Fatal(out, err)
				}
				// One miss at a time, as one client connection sends them.
				c.bg.Wait()
			}
		})
	}
}

// BenchmarkNoStoreMiss is the cache's part of a miss on a URL whose origin
// answers no-store: remembered as hit-for-pass, each request goes to the
// origin and its answer is relayed, never stored.
func BenchmarkNoStoreMiss(b *testing.B) {
	c, err := Open(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 1024)
	fields := parser.Fields{}.Add("Content-Type", "text/plain").
		Add("Cache-Control", "no-store").
		Add("Date", "Tue, 01 Dec 2026 03:00:00 GMT")
	body := &memBody{b: payload}
	resp := &Response{}
	fetch := func(ctx context.Context, h *parser.Request) (*Response, error) {
		body.off = 0
		*resp = Response{Status: 200, Fields: fields, ContentLength: int64(len(payload)), Body: body, Buffered: true}
		return resp, nil
	}
	rules := policy.CacheRules{Enabled: true}
	h := &parser.Request{Method: []byte("GET"), Host: []byte("bench.example"), Target: []byte("/nostore"),
		Major: 1, Minor: 1, Fields: parser.Fields{}.Add("User-Agent", "bench").Add("Accept", "*/*")}
	req := &Request{Scheme: "http", Head: h}
	w := &discard{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if out, err := c.Serve(ctx, req, &rules, Fetch(fetch), w); err != nil || out.Status != "pass" {
			b.Fatal(out, err)
		}
	}
}
