package accel

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2RawClient sends rounds of GET requests on one h2c connection, each
// round's HEADERS frames in one write, and reads until every stream ended.
// Its request blocks are encoded once and responses read frame header by
// frame header into a buffer it keeps, so that it allocates nothing and a
// measurement counts accel's allocations alone.
type h2RawClient struct {
	c            net.Conn
	first, block []byte
	next         uint32
	out, buf     []byte
	hdr          [9]byte
	window       int64 // connection window consumed, to give back
	// heads and data collect the response header blocks and body bytes
	// of a round when set.
	heads *[][]byte
	data  int
}

// h2Encodings are the two ways clients encode a repeated request head
// for http://bench.example/hit. Go's client (x/net's encoder) adds every
// field to the dynamic table, so that the next requests are all indexes;
// nghttp2 (h2load, curl) sends :path every time as a literal without
// indexing, Huffman-coded (04 85 ... as captured from h2load 1.52), and
// indexes :authority and user-agent.
func h2Encodings() map[string][2][]byte {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	goBlock := func() []byte {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "bench.example"}, {":path", "/hit"}, {"user-agent", "t"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		return bytes.Clone(hb.Bytes())
	}
	huff := func(b []byte, s string) []byte {
		b = append(b, 0x80|byte(hpack.HuffmanEncodeLength(s)))
		return hpack.AppendHuffmanString(b, s)
	}
	path := huff([]byte{0x04}, "/hit")       // literal without indexing, name :path (4)
	first := append(bytes.Clone(path), 0x86) // :scheme http
	first = huff(append(first, 0x41), "bench.example")
	first = append(first, 0x82) // :method GET
	first = huff(append(first, 0x40|58), "h2load nghttp2/1.52.0")
	return map[string][2][]byte{
		"go":      {goBlock(), goBlock()},
		"nghttp2": {first, append(bytes.Clone(path), 0x86, 0xbf, 0x82, 0xbe)},
	}
}

func dialH2Raw(t testing.TB, s *Server, blocks [2][]byte) *h2RawClient {
	t.Helper()
	c, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	fr.WriteWindowUpdate(0, 1<<30)
	return &h2RawClient{c: c, first: blocks[0], block: blocks[1], next: 1, buf: make([]byte, 1<<20)}
}

func (rc *h2RawClient) round(t testing.TB, n int) {
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
		t.Fatal(err)
	}
	for ended := 0; ended < n; {
		if _, err := io.ReadFull(rc.c, rc.hdr[:]); err != nil {
			t.Fatal(err)
		}
		l := int(rc.hdr[0])<<16 | int(rc.hdr[1])<<8 | int(rc.hdr[2])
		if _, err := io.ReadFull(rc.c, rc.buf[:l]); err != nil {
			t.Fatal(err)
		}
		typ, flags := http2.FrameType(rc.hdr[3]), http2.Flags(rc.hdr[4])
		switch typ {
		case http2.FrameData:
			rc.window += int64(l)
			if rc.heads != nil {
				rc.data += l
			}
			if flags.Has(http2.FlagDataEndStream) {
				ended++
			}
		case http2.FrameHeaders:
			if rc.heads != nil {
				*rc.heads = append(*rc.heads, bytes.Clone(rc.buf[:l]))
			}
			if flags.Has(http2.FlagHeadersEndStream) {
				ended++
			}
		case http2.FrameGoAway, http2.FrameRSTStream:
			t.Fatalf("accel sent %v % x", typ, rc.buf[:l])
		}
	}
}

// TestH2HitAllocatesNothing: 1 KiB hits through accel over h2c, 32
// concurrent streams on one connection, cost accel no allocation, whether
// the client encodes its request heads as Go's client or as nghttp2 does
// (:path a Huffman literal every time). The origin is asked once.
func TestH2HitAllocatesNothing(t *testing.T) {
	o := startHitOrigin(t, 1024)
	s := startAccel(t, hitConfig, o.addr)
	for name, blocks := range h2Encodings() {
		t.Run(name, func(t *testing.T) {
			rc := dialH2Raw(t, s, blocks)
			// The first request stores the object (or finds it); its
			// head fills the response decoder's table too.
			var heads [][]byte
			rc.heads = &heads
			rc.round(t, 1)
			rc.data = 0
			rc.round(t, 32)
			rc.heads = nil
			dec := hpack.NewDecoder(4096, nil)
			for i, h := range heads {
				fields, err := dec.DecodeFull(h)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, f := range fields {
					got = append(got, f.Name+": "+f.Value)
				}
				if all := strings.Join(got, "\n"); i > 0 && (!strings.Contains(all, ":status: 200") || !strings.Contains(all, "cache-status: accel; hit")) {
					t.Fatalf("response head:\n%s", all)
				}
			}
			if len(heads) != 33 || rc.data != 32*1024 {
				t.Fatalf("%d heads, %d body bytes for 32 hits", len(heads), rc.data)
			}
			if n := testing.AllocsPerRun(100, func() { rc.round(t, 32) }); !raceEnabled && n != 0 {
				t.Errorf("%.2f allocations per hit (%.0f per round of 32), want 0", n/32, n)
			}
		})
	}
	if got := o.requests.Load(); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
}
