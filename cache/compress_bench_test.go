package cache

import (
	"context"
	"testing"

	"github.com/accel-proxy/accel/parser"
)

// discard is a ResponseWriter that keeps nothing.
type discard struct{ n int }

func (d *discard) WriteHead(int, parser.Fields) error    { return nil }
func (d *discard) SetContentLength(int64)                {}
func (d *discard) Write(p []byte) (int, error)           { d.n += len(p); return len(p), nil }
func (d *discard) Flush() error                          { return nil }
func (d *discard) WriteInterim(int, parser.Fields) error { return nil }
func (d *discard) WriteStored(_ int, _ parser.Fields, _ []byte, _ parser.Fields, body []byte) error {
	d.n += len(body)
	return nil
}

// BenchmarkHitCoding compares a hit served plain with one served
// compressed: the coding is stored, so the two cost alike (the compressed
// body is smaller to write).
func BenchmarkHitCoding(b *testing.B) {
	for _, ae := range []string{"", "br", "gzip", "zstd"} {
		name := ae
		if name == "" {
			name = "identity"
		}
		b.Run(name, func(b *testing.B) {
			e, _ := compressEnv(b, page)
			e.get("/b")
			e.settle()
			h := &parser.Request{Method: []byte("GET"), Target: []byte("/b"), Host: []byte("example.com"), Major: 1, Minor: 1}
			if ae != "" {
				h.Fields = h.Fields.Add("Accept-Encoding", ae)
			}
			req := &Request{Scheme: "http", Head: h}
			w := &discard{}
			ctx := context.Background()
			if _, err := e.c.Serve(ctx, req, &e.rules, e.fetch, w); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if out, err := e.c.Serve(ctx, req, &e.rules, e.fetch, w); err != nil || out.Status != "hit" {
					b.Fatal(out, err)
				}
			}
		})
	}
}
