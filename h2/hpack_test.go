package h2

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// recorder collects what a decoder emits, as "name: value" lines.
type recorder struct{ fields []string }

func (r *recorder) emit(name, value []byte) {
	r.fields = append(r.fields, string(name)+": "+string(value))
}

func testDecoder(maxString int) (*decoder, *recorder) {
	r := &recorder{}
	return newDecoder(maxString, r.emit), r
}

// table lists the dynamic table, index 62 first, as RFC 7541 Appendix C
// prints it, with the table's size.
func (d *decoder) table() (lines []string, size int) {
	for i := range d.n {
		name, value, err := d.at(uint64(len(staticTable) + 1 + i))
		if err != nil {
			panic(err)
		}
		lines = append(lines, fmt.Sprintf("[%d] (s = %d) %s: %s", i+1, len(name)+len(value)+32, name, value))
	}
	return lines, d.size
}

type appendixBlock struct {
	block  string
	fields []string
	table  []string
	size   int
}

// The examples of RFC 7541 Appendix C: each sequence runs on one
// decoder, whose dynamic table carries over from block to block. C.5 and
// C.6 assume a 256-byte table: their first block starts with that table
// size update (3f e1 01).
var appendixC = map[string][]appendixBlock{
	"C.2.1 literal with indexing": {{
		block:  "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
		fields: []string{"custom-key: custom-header"},
		table:  []string{"[1] (s = 55) custom-key: custom-header"},
		size:   55,
	}},
	"C.2.2 literal without indexing": {{
		block:  "040c 2f73 616d 706c 652f 7061 7468",
		fields: []string{":path: /sample/path"},
	}},
	"C.2.3 literal never indexed": {{
		block:  "1008 7061 7373 776f 7264 0673 6563 7265 74",
		fields: []string{"password: secret"},
	}},
	"C.2.4 indexed": {{
		block:  "82",
		fields: []string{":method: GET"},
	}},
	"C.3 requests": {{
		block:  "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
		fields: []string{":method: GET", ":scheme: http", ":path: /", ":authority: www.example.com"},
		table:  []string{"[1] (s = 57) :authority: www.example.com"},
		size:   57,
	}, {
		block:  "8286 84be 5808 6e6f 2d63 6163 6865",
		fields: []string{":method: GET", ":scheme: http", ":path: /", ":authority: www.example.com", "cache-control: no-cache"},
		table:  []string{"[1] (s = 53) cache-control: no-cache", "[2] (s = 57) :authority: www.example.com"},
		size:   110,
	}, {
		block:  "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
		fields: []string{":method: GET", ":scheme: https", ":path: /index.html", ":authority: www.example.com", "custom-key: custom-value"},
		table:  []string{"[1] (s = 54) custom-key: custom-value", "[2] (s = 53) cache-control: no-cache", "[3] (s = 57) :authority: www.example.com"},
		size:   164,
	}},
	"C.4 requests, Huffman": {{
		block:  "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
		fields: []string{":method: GET", ":scheme: http", ":path: /", ":authority: www.example.com"},
		table:  []string{"[1] (s = 57) :authority: www.example.com"},
		size:   57,
	}, {
		block:  "8286 84be 5886 a8eb 1064 9cbf",
		fields: []string{":method: GET", ":scheme: http", ":path: /", ":authority: www.example.com", "cache-control: no-cache"},
		table:  []string{"[1] (s = 53) cache-control: no-cache", "[2] (s = 57) :authority: www.example.com"},
		size:   110,
	}, {
		block:  "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
		fields: []string{":method: GET", ":scheme: https", ":path: /index.html", ":authority: www.example.com", "custom-key: custom-value"},
		table:  []string{"[1] (s = 54) custom-key: custom-value", "[2] (s = 53) cache-control: no-cache", "[3] (s = 57) :authority: www.example.com"},
		size:   164,
	}},
	"C.5 responses, eviction": {{
		block:  "3fe101 4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
		fields: []string{":status: 302", "cache-control: private", "date: Mon, 21 Oct 2013 20:13:21 GMT", "location: https://www.example.com"},
		table: []string{"[1] (s = 63) location: https://www.example.com", "[2] (s = 65) date: Mon, 21 Oct 2013 20:13:21 GMT",
			"[3] (s = 52) cache-control: private", "[4] (s = 42) :status: 302"},
		size: 222,
	}, {
		block:  "4803 3330 37c1 c0bf",
		fields: []string{":status: 307", "cache-control: private", "date: Mon, 21 Oct 2013 20:13:21 GMT", "location: https://www.example.com"},
		table: []string{"[1] (s = 42) :status: 307", "[2] (s = 63) location: https://www.example.com",
			"[3] (s = 65) date: Mon, 21 Oct 2013 20:13:21 GMT", "[4] (s = 52) cache-control: private"},
		size: 222,
	}, {
		block: "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
		fields: []string{":status: 200", "cache-control: private", "date: Mon, 21 Oct 2013 20:13:22 GMT", "location: https://www.example.com",
			"content-encoding: gzip", "set-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"},
		table: []string{"[1] (s = 98) set-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
			"[2] (s = 52) content-encoding: gzip", "[3] (s = 65) date: Mon, 21 Oct 2013 20:13:22 GMT"},
		size: 215,
	}},
	"C.6 responses, Huffman, eviction": {{
		block:  "3fe101 4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
		fields: []string{":status: 302", "cache-control: private", "date: Mon, 21 Oct 2013 20:13:21 GMT", "location: https://www.example.com"},
		table: []string{"[1] (s = 63) location: https://www.example.com", "[2] (s = 65) date: Mon, 21 Oct 2013 20:13:21 GMT",
			"[3] (s = 52) cache-control: private", "[4] (s = 42) :status: 302"},
		size: 222,
	}, {
		block:  "4883 640e ffc1 c0bf",
		fields: []string{":status: 307", "cache-control: private", "date: Mon, 21 Oct 2013 20:13:21 GMT", "location: https://www.example.com"},
		table: []string{"[1] (s = 42) :status: 307", "[2] (s = 63) location: https://www.example.com",
			"[3] (s = 65) date: Mon, 21 Oct 2013 20:13:21 GMT", "[4] (s = 52) cache-control: private"},
		size: 222,
	}, {
		block: "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
		fields: []string{":status: 200", "cache-control: private", "date: Mon, 21 Oct 2013 20:13:22 GMT", "location: https://www.example.com",
			"content-encoding: gzip", "set-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"},
		table: []string{"[1] (s = 98) set-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
			"[2] (s = 52) content-encoding: gzip", "[3] (s = 65) date: Mon, 21 Oct 2013 20:13:22 GMT"},
		size: 215,
	}},
}

// TestDecoderAppendixC decodes RFC 7541's examples whole, cut into two
// fragments at every byte (a representation cut by a CONTINUATION), and in
// fragments of 1, 3 and 7 bytes, and checks the fields and the dynamic
// table after each block.
func TestDecoderAppendixC(t *testing.T) {
	for name, seq := range appendixC {
		t.Run(name, func(t *testing.T) {
			run := func(t *testing.T, cuts func(block []byte) [][]byte) {
				d, r := testDecoder(64 << 10)
				for i, b := range seq {
					r.fields = nil
					for _, frag := range cuts(unhex(t, b.block)) {
						if err := d.write(frag); err != nil {
							t.Fatalf("block %d: %v", i+1, err)
						}
					}
					if err := d.end(); err != nil {
						t.Fatalf("block %d: %v", i+1, err)
					}
					if got, want := strings.Join(r.fields, "\n"), strings.Join(b.fields, "\n"); got != want {
						t.Fatalf("block %d fields:\n%s\nwant:\n%s", i+1, got, want)
					}
					table, size := d.table()
					if got, want := strings.Join(table, "\n"), strings.Join(b.table, "\n"); got != want || size != b.size {
						t.Fatalf("block %d table (size %d):\n%s\nwant (size %d):\n%s", i+1, size, got, b.size, want)
					}
				}
			}
			run(t, func(b []byte) [][]byte { return [][]byte{b} })
			for _, size := range []int{1, 3, 7} {
				run(t, func(b []byte) (frags [][]byte) {
					for len(b) > size {
						frags, b = append(frags, b[:size]), b[size:]
					}
					return append(frags, b)
				})
			}
			for at := 1; at < len(unhex(t, seq[0].block)); at++ {
				n := 0
				run(t, func(b []byte) [][]byte {
					n++
					if n > 1 || at >= len(b) {
						return [][]byte{b}
					}
					return [][]byte{b[:at], b[at:]}
				})
			}
		})
	}
}

// TestDecoderMalformed: every malformed block is an error, the one the
// loop maps to its GOAWAY code.
func TestDecoderMalformed(t *testing.T) {
	huffA20 := hpack.AppendHuffmanString(nil, strings.Repeat("a", 20))
	for _, tc := range []struct {
		name  string
		block []byte
		want  error
	}{
		{"index 0", []byte{0x80}, errBadIndex},
		{"index past the static table, empty dynamic table", []byte{0xbe}, errBadIndex},
		{"index past the dynamic table", append(unhex(t, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"), 0xbf), errBadIndex},
		{"literal naming index 62 of an empty table", []byte{0x7e, 0x01, 'x'}, errBadIndex},
		{"literal without indexing naming index 0x1f+", []byte{0x0f, 0x50, 0x01, 'x'}, errBadIndex},
		{"integer over 2^31", []byte{0xff, 0x80, 0x80, 0x80, 0x80, 0x10}, errIntOverflow},
		{"integer of ten continuation bytes", []byte{0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, errIntOverflow},
		{"integer cut", []byte{0xff, 0x80}, errTruncated},
		{"literal's name index cut", []byte{0x0f}, errTruncated},
		{"string length over 2^31", []byte{0x04, 0xff, 0x80, 0x80, 0x80, 0x80, 0x10}, errIntOverflow},
		{"string cut", []byte{0x04, 0x85, 0x62, 0x32}, errTruncated},
		{"string length cut", []byte{0x04}, errTruncated},
		{"name string cut", []byte{0x00, 0x05, 'a', 'b'}, errTruncated},
		// '/' is the 6-bit code 011000: padding must be the EOS prefix, 1s.
		{"Huffman padding of zeros", []byte{0x04, 0x81, 0x60}, errHuffman},
		{"Huffman name with padding of zeros", []byte{0x00, 0x81, 0x60, 0x00}, errHuffman},
		{"Huffman padding longer than 7 bits", []byte{0x04, 0x82, 0x63, 0xff}, errHuffman},
		{"Huffman EOS inside the string", []byte{0x04, 0x84, 0xff, 0xff, 0xff, 0xff}, errHuffman},
		{"table size update above the allowed size", []byte{0x3f, 0xe2, 0x1f}, errSizeUpdate},
		{"table size update after a field", []byte{0x82, 0x20}, errLateSizeUpdate},
		{"string longer than the limit", append([]byte{0x04, 17}, strings.Repeat("a", 17)...), errStringLength},
		{"Huffman string that decodes longer than the limit", append([]byte{0x04, 0x80 | byte(len(huffA20))}, huffA20...), errStringLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := testDecoder(16)
			err := d.write(tc.block)
			if err == nil {
				err = d.end()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDecoderSizeUpdates: two size updates may open a block (RFC 7541
// §4.2), each evicting what no longer fits; one after a field of the same
// block is refused even when it comes in the next fragment, and the next
// block may start with one again.
func TestDecoderSizeUpdates(t *testing.T) {
	d, r := testDecoder(1024)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.write(unhex(t, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")))
	must(d.end())
	// 0, then 4096: the entry is gone and the table empty.
	must(d.write([]byte{0x20, 0x3f, 0xe1, 0x1f, 0x82}))
	must(d.end())
	if table, size := d.table(); len(table) != 0 || size != 0 {
		t.Fatalf("table after size 0: %v, size %d", table, size)
	}
	must(d.write([]byte{0x82}))
	if err := d.write([]byte{0x20}); !errors.Is(err, errLateSizeUpdate) {
		t.Fatalf("size update in the second fragment after a field: %v", err)
	}
	d.end()
	must(d.write([]byte{0x20, 0x82}))
	must(d.end())
	if len(r.fields) != 4 {
		t.Fatalf("fields %q", r.fields)
	}
	// A 64-byte table: custom-key: custom-header (55) fits, then an
	// entry larger than the table leaves it empty (RFC 7541 §4.4).
	block := append([]byte{0x3f, 0x21}, unhex(t, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")...)
	must(d.write(block))
	must(d.end())
	if table, size := d.table(); len(table) != 1 || size != 55 {
		t.Fatalf("table %v, size %d", table, size)
	}
	must(d.write(append([]byte{0x40 | 1, 30}, strings.Repeat("x", 30)...)))
	must(d.end())
	if table, size := d.table(); len(table) != 0 || size != 0 {
		t.Fatalf("table after an entry larger than it: %v, size %d", table, size)
	}
	// A 68-byte table holds a: b and c: d (34 each) exactly; e: f
	// evicts a: b.
	must(d.write([]byte{0x3f, 0x25, 0x40, 0x01, 'a', 0x01, 'b', 0x40, 0x01, 'c', 0x01, 'd'}))
	must(d.end())
	if table, size := d.table(); len(table) != 2 || size != 68 {
		t.Fatalf("table filled exactly: %v, size %d", table, size)
	}
	must(d.write([]byte{0x40, 0x01, 'e', 0x01, 'f'}))
	must(d.end())
	if table, _ := d.table(); strings.Join(table, ",") != "[1] (s = 34) e: f,[2] (s = 34) c: d" {
		t.Fatalf("table %v", table)
	}
}

// TestDecoderKeepsNoLargeBuffer: a block with a 40 KiB Huffman value cut
// by a CONTINUATION grows the decoder's buffers; the connection does not
// keep them after the block.
func TestDecoderKeepsNoLargeBuffer(t *testing.T) {
	d, r := testDecoder(64 << 10)
	block := append([]byte{0x04}, appendString(nil, strings.Repeat("/a", 20<<10), true)...)
	for _, frag := range [][]byte{block[:len(block)/2], block[len(block)/2:]} {
		if err := d.write(frag); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.end(); err != nil {
		t.Fatal(err)
	}
	if len(r.fields) != 1 || len(r.fields[0]) != len(":path: ")+40<<10 {
		t.Fatalf("decoded %d fields", len(r.fields))
	}
	if cap(d.rest) > maxKept || cap(d.huff.b) > maxKept {
		t.Errorf("kept %d and %d bytes", cap(d.rest), cap(d.huff.b))
	}
}

// TestDecoderEvictsTheNameItInserts: a literal with indexing may name the
// entry its own insertion evicts (RFC 7541 §4.4); the new entry keeps the
// name.
func TestDecoderEvictsTheNameItInserts(t *testing.T) {
	d, r := testDecoder(1024)
	// A 64-byte table holds custom-key: custom-header (55); custom-key: x
	// (43) naming it (index 62) evicts it.
	block := append([]byte{0x3f, 0x21}, unhex(t, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")...)
	block = append(block, 0x7e, 0x01, 'x', 0xbe)
	if err := d.write(block); err != nil {
		t.Fatal(err)
	}
	if err := d.end(); err != nil {
		t.Fatal(err)
	}
	want := "custom-key: custom-header\ncustom-key: x\ncustom-key: x"
	if got := strings.Join(r.fields, "\n"); got != want {
		t.Fatalf("fields:\n%s\nwant:\n%s", got, want)
	}
	if table, size := d.table(); len(table) != 1 || size != 43 {
		t.Fatalf("table %v size %d", table, size)
	}
}

// TestDecoderTableChurn inserts thousands of fields of every size, each
// naming the newest entry (whose bytes the insertion may move or evict),
// through table size updates, and checks every field and the table against
// x/net's decoder. The storage stays bounded.
func TestDecoderTableChurn(t *testing.T) {
	d, r := testDecoder(8 << 10)
	var got []string
	ref := hpack.NewDecoder(4096, func(f hpack.HeaderField) { got = append(got, f.Name+": "+f.Value) })
	var enc []byte
	for i := range 3000 {
		enc = enc[:0]
		switch i % 500 {
		case 100:
			enc = append(enc, 0x3f, 0xe1, 0x07) // 1024
		case 300:
			enc = append(enc, 0x3f, 0xe1, 0x1f) // 4096
		}
		if i == 0 {
			enc = append(enc, 0x40, 0x03, 'k', '-', '0', 0x01, 'v')
		} else {
			value := strings.Repeat(string(rune('a'+i%26)), (i*37)%900)
			enc = append(enc, 0x40|62) // literal with indexing, name of the newest
			enc = appendString(enc, value, i%2 == 0)
			if i%7 == 0 {
				// A new name now and then.
				enc = append(enc, 0x40)
				enc = appendString(enc, fmt.Sprintf("n-%d", i), i%3 == 0)
				enc = appendString(enc, "v", false)
			}
			enc = append(enc, 0xbe) // the newest
		}
		r.fields, got = nil, nil
		if err := d.write(enc); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if err := d.end(); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if err := refDecode(ref, enc); err != nil {
			t.Fatalf("block %d: x/net: %v", i, err)
		}
		if a, b := strings.Join(r.fields, "\n"), strings.Join(got, "\n"); a != b {
			t.Fatalf("block %d:\n%.300s\nx/net:\n%.300s", i, a, b)
		}
	}
	if cap(d.store) > 4*headerTableSize+900 {
		t.Errorf("table storage grew to %d bytes", cap(d.store))
	}
}

func appendString(b []byte, s string, huff bool) []byte {
	if !huff {
		return append(appendInt(b, 7, 0, uint64(len(s))), s...)
	}
	b = appendInt(b, 7, 0x80, hpack.HuffmanEncodeLength(s))
	return hpack.AppendHuffmanString(b, s)
}

// appendInt encodes v with an n-bit prefix (RFC 7541 §5.1).
func appendInt(b []byte, n uint, first byte, v uint64) []byte {
	limit := uint64(1)<<n - 1
	if v < limit {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(limit))
	for v -= limit; v >= 0x80; v >>= 7 {
		b = append(b, byte(v)|0x80)
	}
	return append(b, byte(v))
}

func refDecode(ref *hpack.Decoder, block []byte) error {
	if _, err := ref.Write(block); err != nil {
		return err
	}
	return ref.Close()
}

// Request heads as nghttp2 (h2load 1.52, curl) encodes them, captured
// from h2load asking for /bench: :path as a literal without indexing
// naming static entry 4, its value Huffman-coded (04 85 ...), :scheme and
// :method from the static table (86, 82); the first request adds
// :authority and user-agent to the dynamic table as literals with
// incremental indexing (41 8b ..., 7a 8f ...), the next ones name them
// (bf, be).
const nghttp2First = "04 85 62 32 d4 49 ff 86 41 8b 08 9d 5c 0b 81 70 dc 65 c0 36 ff 82 7a 8f 9c 54 1c 72 29 54 d3 a5 35 89 80 ae d8 97 07"

const nghttp2Block = "04 85 62 32 d4 49 ff 86 bf 82 be"

// TestDecoderAllocatesNothing: decoding nghttp2's request heads, and
// inserting into a warm table, costs no allocation.
func TestDecoderAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector")
	}
	d := newDecoder(64<<10, func(name, value []byte) {})
	first, block := unhex(t, nghttp2First), unhex(t, nghttp2Block)
	d.write(first)
	if err := d.end(); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if err := d.write(block); err != nil {
			t.Fatal(err)
		}
		d.end()
	}); n != 0 {
		t.Errorf("nghttp2 request head: %.1f allocations", n)
	}
	// Every block inserts two literals (Huffman and not), so entries
	// keep being evicted and their bytes moved down.
	var churn []byte
	churn = append(churn, 0x40|58) // user-agent
	churn = appendString(churn, strings.Repeat("agent ", 40), true)
	churn = append(churn, 0x40|4) // :path
	churn = appendString(churn, "/some/longer/path/to/an/object?with=query", false)
	for range 100 {
		d.write(churn)
		d.end()
	}
	if n := testing.AllocsPerRun(1000, func() {
		if err := d.write(churn); err != nil {
			t.Fatal(err)
		}
		d.end()
	}); n != 0 {
		t.Errorf("insertions into a warm table: %.1f allocations", n)
	}
}

// FuzzDecoder compares the decoder with x/net's hpack.Decoder on two
// blocks decoded in turn (the dynamic table carries over), each written in
// two fragments cut at split: the same fields, or both an error. A table
// size update after the block's first representation is where the two
// differ on purpose: x/net refuses one only while its table holds
// something, and refuses the second of two that open a block, which RFC
// 7541 §4.2 allows; such inputs are not compared past it.
func FuzzDecoder(f *testing.F) {
	for _, seq := range appendixC {
		var blocks [][]byte
		for _, b := range seq {
			blocks = append(blocks, unhex(f, b.block))
		}
		blocks = append(blocks, nil)
		f.Add(blocks[0], blocks[1], uint16(3)) // an Appendix C sequence
	}
	f.Add(unhex(f, nghttp2First), unhex(f, nghttp2Block), uint16(2))                                                                                   // h2load's
	f.Add([]byte{0x3f, 0x21, 0x40, 0x01, 'a', 0x01, 'b'}, []byte{0x7e, 0x01, 'x', 0xbe}, uint16(1))                                                    // name evicted by its insertion
	f.Add([]byte{0x3f, 0x25, 0x40, 0x01, 'a', 0x01, 'b', 0x40, 0x01, 'c', 0x01, 'd'}, []byte{0xbe, 0xbf, 0x40, 0x01, 'e', 0x01, 'f', 0xbf}, uint16(4)) // a 68-byte table filled to the byte
	f.Add([]byte{0x04, 0x82, 0x63, 0xff}, []byte{0x82}, uint16(0))                                                                                     // bad Huffman padding
	f.Add([]byte{0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, []byte{}, uint16(0))                                                     // integer of nine continuation bytes
	f.Fuzz(func(t *testing.T, a, b []byte, split uint16) {
		const maxString = 256
		d, r := testDecoder(maxString)
		var got []string
		ref := hpack.NewDecoder(headerTableSize, func(f hpack.HeaderField) { got = append(got, f.Name+": "+f.Value) })
		ref.SetMaxStringLength(maxString)
		for i, block := range [][]byte{a, b} {
			at := int(split) % (len(block) + 1)
			r.fields, got = nil, nil
			err := d.write(block[:at])
			if err == nil {
				err = d.write(block[at:])
			}
			if err == nil {
				err = d.end()
			}
			_, refErr := ref.Write(block[:at])
			if refErr == nil {
				_, refErr = ref.Write(block[at:])
			}
			if refErr == nil {
				refErr = ref.Close()
			}
			if errors.Is(err, errLateSizeUpdate) || refErr != nil && strings.Contains(refErr.Error(), "size update MUST") {
				return
			}
			if (err == nil) != (refErr == nil) {
				t.Fatalf("block %d % x: decoder: %v, x/net: %v", i+1, block, err, refErr)
			}
			if err != nil {
				return
			}
			if x, y := strings.Join(r.fields, "\n"), strings.Join(got, "\n"); x != y {
				t.Fatalf("block %d % x:\n%s\nx/net:\n%s", i+1, block, x, y)
			}
		}
	})
}
