package h2

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/accel-proxy/accel/parser"
)

// storedHit answers every request inline with one stored 1 KiB response,
// as the pipeline does for a fresh cached hit.
type storedHit struct {
	fields parser.Fields
	extra  parser.Fields
	body   []byte
}

func newStoredHit() *storedHit {
	return &storedHit{
		fields: parser.Fields{
			{Name: []byte("Content-Type"), Value: []byte("text/plain; charset=utf-8")},
			{Name: []byte("Cache-Control"), Value: []byte("max-age=3600")},
			{Name: []byte("ETag"), Value: []byte(`"v1"`)},
			{Name: []byte("Date"), Value: []byte("Tue, 01 Dec 2026 00:00:00 GMT")},
			{Name: []byte("Via"), Value: []byte("1.1 accel")},
		},
		extra: parser.Fields{
			{Name: []byte("Age"), Value: []byte("1")},
			{Name: []byte("Cache-Status"), Value: []byte("accel; hit")},
		},
		body: bytes.Repeat([]byte("x"), 1024),
	}
}

func (*storedHit) Refused(net.Addr, int, string) {}

func (h *storedHit) ServeFast(req *parser.Request, w *Writer, c *Conn) bool {
	w.WriteStored(200, h.fields, nil, h.extra, h.body)
	return true
}

func (h *storedHit) Serve(ctx context.Context, req *parser.Request, body io.Reader, w *Writer, c Conn) {
	panic("a stored hit never waits")
}

// rawClient is an HTTP/2 client over loopback that allocates nothing per
// request, so that the benchmark's allocations are the server's: its
// request blocks are encoded once (the first adds fields to the dynamic
// table, the next ones name them), and responses are read frame header by
// frame header.
type rawClient struct {
	c      net.Conn
	next   uint32
	first  []byte
	block  []byte
	out    []byte
	hdr    [9]byte
	buf    []byte
	window int64 // connection window consumed, to give back
}

// An encoding says how a client encodes its request heads.
type encoding struct {
	name         string
	first, block []byte
}

// The two ways clients encode request heads. Go's (x/net's encoder, as
// browsers mostly do) adds every field to the dynamic table, so that a
// repeated request is all indexes. nghttp2's (h2load, curl; captured from
// h2load 1.52, see nghttp2First) sends :path as a literal without indexing
// every time, its value Huffman-coded, and indexes :authority and
// user-agent.
var encodings = func() []encoding {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	goEncode := func() []byte {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "bench"}, {":path", "/hit"}, {"user-agent", "rawclient"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		return append([]byte(nil), hb.Bytes()...)
	}
	huff := func(b []byte, s string) []byte {
		b = append(b, 0x80|byte(hpack.HuffmanEncodeLength(s)))
		return hpack.AppendHuffmanString(b, s)
	}
	path := huff([]byte{0x04}, "/hit") // literal without indexing, name :path (4)
	first := append(path, 0x86)        // :scheme http
	first = huff(append(first, 0x41), "bench")
	first = append(first, 0x82) // :method GET
	first = huff(append(first, 0x40|58), "h2load nghttp2/1.52.0")
	block := append(append([]byte(nil), path...), 0x86, 0xbf, 0x82, 0xbe)
	return []encoding{
		{"go", goEncode(), goEncode()},
		{"nghttp2", first, block},
	}
}()

func dialRaw(tb testing.TB, addr string, e encoding) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	rc := &rawClient{c: c, next: 1, first: e.first, block: e.block, buf: make([]byte, 1<<20)}
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	fr.WriteWindowUpdate(0, 1<<30)
	return rc
}

// round sends n requests in one write and reads until all n ended.
func (rc *rawClient) round(tb testing.TB, n int) {
	rc.out = rc.out[:0]
	if rc.window > 1<<29 {
		rc.out = append(rc.out, 0, 0, 4, byte(http2.FrameWindowUpdate), 0, 0, 0, 0, 0)
		rc.out = binary.BigEndian.AppendUint32(rc.out, uint32(rc.window))
		rc.window = 0
	}
	for range n {
		block := rc.block
		if rc.next == 1 {
			block = rc.first
		}
		l := len(block)
		rc.out = append(rc.out, byte(l>>16), byte(l>>8), byte(l), byte(http2.FrameHeaders),
			byte(http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream))
		rc.out = binary.BigEndian.AppendUint32(rc.out, rc.next)
		rc.out = append(rc.out, block...)
		rc.next += 2
	}
	if _, err := rc.c.Write(rc.out); err != nil {
		tb.Fatal(err)
	}
	for ended := 0; ended < n; {
		if _, err := io.ReadFull(rc.c, rc.hdr[:]); err != nil {
			tb.Fatal(err)
		}
		l := int(rc.hdr[0])<<16 | int(rc.hdr[1])<<8 | int(rc.hdr[2])
		if _, err := io.ReadFull(rc.c, rc.buf[:l]); err != nil {
			tb.Fatal(err)
		}
		t, flags := http2.FrameType(rc.hdr[3]), http2.Flags(rc.hdr[4])
		switch {
		case t == http2.FrameData:
			rc.window += int64(l)
			if flags.Has(http2.FlagDataEndStream) {
				ended++
			}
		case t == http2.FrameHeaders && flags.Has(http2.FlagHeadersEndStream):
			ended++
		case t == http2.FrameGoAway || t == http2.FrameRSTStream:
			tb.Fatalf("server sent %v", t)
		}
	}
}

func serveLoopback(tb testing.TB, h Handler, cfg Config) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := New(cfg, h)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.Serve(c, nil, false)
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		s.Shutdown(context.Background())
	})
	return ln.Addr().String()
}

// BenchmarkH2Hit: cached 1 KiB hits, 32 concurrent streams on one
// connection over loopback, answered inline, with request heads encoded
// as Go's client and as nghttp2 encode them. The client allocates
// nothing, so allocs/op is the server's per round of 32 hits; ns/op
// includes the client's side of loopback.
func BenchmarkH2Hit(b *testing.B) {
	for _, e := range encodings {
		b.Run(e.name, func(b *testing.B) {
			addr := serveLoopback(b, newStoredHit(), Config{})
			rc := dialRaw(b, addr, e)
			defer rc.c.Close()
			rc.round(b, 32) // settings, first table entries
			b.ReportAllocs()
			b.ResetTimer()
			rounds := 0
			for b.Loop() {
				rc.round(b, 32)
				rounds++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rounds*32), "ns/hit")
		})
	}
}

// TestH2HitAllocatesNothing: a hit answered inline costs the server no
// allocation (the client here allocates nothing either), whichever way the
// client encodes its request heads.
func TestH2HitAllocatesNothing(t *testing.T) {
	for _, e := range encodings {
		t.Run(e.name, func(t *testing.T) {
			if raceEnabled && e.name == "nghttp2" {
				t.Skip("the race detector makes x/net's Huffman decoding pool drop its buffers")
			}
			addr := serveLoopback(t, newStoredHit(), Config{})
			rc := dialRaw(t, addr, e)
			defer rc.c.Close()
			rc.round(t, 32)
			allocs := testing.AllocsPerRun(200, func() { rc.round(t, 32) })
			if allocs != 0 {
				t.Errorf("%.2f allocations per hit (%.1f per round of 32), want 0", allocs/32, allocs)
			}
		})
	}
}
