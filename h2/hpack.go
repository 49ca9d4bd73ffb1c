package h2

import (
	"errors"

	"golang.org/x/net/http2/hpack"
)

// decoder decodes the request header blocks of one connection (HPACK,
// RFC 7541) without making a string: each field goes to emit as name and
// value bytes valid until emit returns, pointing into the block itself,
// the dynamic table's storage or the Huffman buffer. x/net's
// hpack.Decoder makes a Go string of every literal it decodes, which is an
// allocation per request from clients that send :path as a literal
// without indexing (nghttp2, hence h2load and curl, do, RFC 7541 §7.1.3
// advises it); the loop copies what it keeps into its arena anyway.
//
// The dynamic table keeps the bytes of its entries in one buffer, evicted
// ones left at its front until a later insertion moves the live ones
// down, so that a warm connection inserts without allocating either.
// Huffman strings are decoded with x/net's hpack.HuffmanDecode into a
// buffer the decoder keeps. Owned by the connection's goroutine.
type decoder struct {
	emit func(name, value []byte)
	// maxString bounds a name or value, encoded and decoded: a longer
	// one could never fit in the header list.
	maxString int
	// maxSize is the table size the peer's encoder chose, at most
	// headerTableSize; size is the entries' size (RFC 7541 §4.1).
	maxSize int
	size    int
	// store holds the entries' name and value bytes; ents is a ring of
	// the entries, the oldest at ents[head], n of them.
	store   []byte
	ents    []tableEntry
	head, n int
	huff    huffBuf
	// rest holds a representation cut by the end of a fragment, which
	// the next CONTINUATION completes.
	rest []byte
	// midBlock is set once a field of the block was decoded: a table
	// size update may only come before (RFC 7541 §4.2).
	midBlock bool
}

// headerTableSize is the dynamic table size the decoder allows: accel
// keeps SETTINGS_HEADER_TABLE_SIZE at its default (RFC 9113 §6.5.2).
const headerTableSize = 4096

// maxKept is the largest Huffman or carry-over buffer a connection keeps
// between header blocks.
const maxKept = 16 << 10

type tableEntry struct{ off, nameLen, valueLen int }

type huffBuf struct{ b []byte }

func (h *huffBuf) Write(p []byte) (int, error) {
	h.b = append(h.b, p...)
	return len(p), nil
}

// The decoding errors. All of them are COMPRESSION_ERROR for the
// connection but errStringLength, which says the list is too large.
var (
	errIntOverflow    = errors.New("hpack: integer too large")
	errBadIndex       = errors.New("hpack: index not in the table")
	errSizeUpdate     = errors.New("hpack: table size update above the allowed size")
	errLateSizeUpdate = errors.New("hpack: table size update after a field")
	errHuffman        = errors.New("hpack: invalid Huffman string")
	errTruncated      = errors.New("hpack: header block ends inside a field")
	errStringLength   = errors.New("hpack: string longer than a header list may be")
	// errNeedMore: the fragment ends inside a representation.
	errNeedMore = errors.New("hpack: need more")
)

func newDecoder(maxString int, emit func(name, value []byte)) *decoder {
	return &decoder{emit: emit, maxString: maxString, maxSize: headerTableSize}
}

// write decodes one fragment of a header block. A representation the
// fragment cuts is kept for the next one.
func (d *decoder) write(frag []byte) error {
	p := frag
	if len(d.rest) > 0 {
		d.rest = append(d.rest, frag...)
		p = d.rest
	}
	for len(p) > 0 {
		n, err := d.field(p)
		if err == errNeedMore {
			switch {
			case len(d.rest) == 0:
				d.rest = append(d.rest, p...)
			case len(p) < len(d.rest):
				// p lies in rest: move it to the front. A
				// representation still cut from its start stays
				// where it is, so that one long field spread over
				// many CONTINUATION frames is not copied again
				// with each.
				d.rest = d.rest[:copy(d.rest, p)]
			}
			return nil
		}
		if err != nil {
			d.rest = d.rest[:0]
			return err
		}
		p = p[n:]
	}
	d.rest = d.rest[:0]
	return nil
}

// end ends the header block.
func (d *decoder) end() error {
	d.midBlock = false
	cut := len(d.rest) > 0
	d.rest = d.rest[:0]
	if cap(d.rest) > maxKept {
		d.rest = nil
	}
	if cap(d.huff.b) > maxKept {
		d.huff.b = nil
	}
	if cut {
		return errTruncated
	}
	return nil
}

// field decodes the representation at the start of p and reports its
// length.
func (d *decoder) field(p []byte) (int, error) {
	b := p[0]
	switch {
	case b&0x80 != 0: // indexed (§6.1)
		i, n, err := readInt(p, 7)
		if err != nil {
			return 0, err
		}
		name, value, err := d.at(i)
		if err != nil {
			return 0, err
		}
		d.midBlock = true
		d.emit(name, value)
		return n, nil
	case b&0xe0 == 0x20: // dynamic table size update (§6.3)
		if d.midBlock {
			return 0, errLateSizeUpdate
		}
		size, n, err := readInt(p, 5)
		if err != nil {
			return 0, err
		}
		if size > headerTableSize {
			return 0, errSizeUpdate
		}
		d.maxSize = int(size)
		d.evict(0)
		return n, nil
	}
	// A literal: with incremental indexing (§6.2.1, 01 and a 6-bit
	// index), without indexing (§6.2.2, 0000) or never indexed (§6.2.3,
	// 0001, which only matters to intermediaries that re-encode).
	prefix, index := uint(4), false
	if b&0xc0 == 0x40 {
		prefix, index = 6, true
	}
	i, n, err := readInt(p, prefix)
	if err != nil {
		return 0, err
	}
	var name, rawName, rawValue []byte
	var huffName, huffValue bool
	if i > 0 {
		if name, _, err = d.at(i); err != nil {
			return 0, err
		}
	} else {
		huffName, rawName, n, err = d.readString(p, n)
		if err != nil {
			return 0, err
		}
	}
	huffValue, rawValue, n, err = d.readString(p, n)
	if err != nil {
		return 0, err
	}
	// The whole representation is there: decode its strings.
	d.huff.b = d.huff.b[:0]
	if i == 0 {
		if name, err = d.decodeString(huffName, rawName); err != nil {
			return 0, err
		}
	}
	value, err := d.decodeString(huffValue, rawValue)
	if err != nil {
		return 0, err
	}
	d.midBlock = true
	d.emit(name, value)
	if index {
		d.insert(name, value, i > uint64(len(staticTable)))
	}
	return n, nil
}

// readString reads the string literal at p[n:] (§5.2) and reports where
// it ends.
func (d *decoder) readString(p []byte, n int) (huff bool, raw []byte, end int, err error) {
	if n >= len(p) {
		return false, nil, 0, errNeedMore
	}
	huff = p[n]&0x80 != 0
	l, m, err := readInt(p[n:], 7)
	if err != nil {
		return false, nil, 0, err
	}
	if l > uint64(d.maxString) {
		return false, nil, 0, errStringLength
	}
	n += m
	if uint64(len(p)-n) < l {
		return false, nil, 0, errNeedMore
	}
	return huff, p[n : n+int(l)], n + int(l), nil
}

// decodeString returns raw's decoded bytes: raw itself, or its Huffman
// decoding appended to d.huff.
func (d *decoder) decodeString(huff bool, raw []byte) ([]byte, error) {
	if !huff {
		return raw, nil
	}
	start := len(d.huff.b)
	if _, err := hpack.HuffmanDecode(&d.huff, raw); err != nil {
		return nil, errHuffman
	}
	if len(d.huff.b)-start > d.maxString {
		return nil, errStringLength
	}
	return d.huff.b[start:], nil
}

// readInt reads the integer at the start of p, of an n-bit prefix (§5.1).
// It allows nine continuation bytes, as x/net's decoder does, and no
// value above 2^31-1: no index, length or size needs more.
func readInt(p []byte, prefix uint) (uint64, int, error) {
	limit := uint64(1)<<prefix - 1
	v := uint64(p[0]) & limit
	if v < limit {
		return v, 1, nil
	}
	for i := 1; i < len(p); i++ {
		b := p[i]
		v += uint64(b&0x7f) << (7 * (i - 1))
		if b&0x80 == 0 {
			if v > 1<<31-1 {
				return 0, 0, errIntOverflow
			}
			return v, i + 1, nil
		}
		if i == 9 {
			return 0, 0, errIntOverflow
		}
	}
	return 0, 0, errNeedMore
}

// at returns the entry at index i of the static and dynamic tables
// (§2.3.3).
func (d *decoder) at(i uint64) (name, value []byte, err error) {
	switch {
	case i == 0:
		return nil, nil, errBadIndex
	case i <= uint64(len(staticTable)):
		e := &staticTable[i-1]
		return e.name, e.value, nil
	case i-uint64(len(staticTable)) > uint64(d.n):
		return nil, nil, errBadIndex
	}
	// Index 62 is the newest entry.
	e := d.ents[(d.head+d.n-int(i-uint64(len(staticTable))))%len(d.ents)]
	return d.store[e.off : e.off+e.nameLen], d.store[e.off+e.nameLen : e.off+e.nameLen+e.valueLen], nil
}

// evict drops the oldest entries until room more bytes fit (§4.4).
func (d *decoder) evict(room int) {
	for d.n > 0 && d.size+room > d.maxSize {
		e := d.ents[d.head]
		d.size -= e.nameLen + e.valueLen + 32
		d.head = (d.head + 1) % len(d.ents)
		d.n--
	}
}

// insert adds a field to the dynamic table (§4.4). aliased says name is
// an entry's own bytes in store, which eviction does not free but moving
// the live entries down may overwrite.
func (d *decoder) insert(name, value []byte, aliased bool) {
	size := len(name) + len(value) + 32
	d.evict(size)
	if size > d.maxSize {
		// Larger than the table: it is left empty.
		return
	}
	need := len(name) + len(value)
	if len(d.store)+need > cap(d.store) {
		base := len(d.store)
		if d.n > 0 {
			base = d.ents[d.head].off
		}
		// Move the live bytes down when at least half are evicted
		// ones; else append grows the buffer, to about four times the
		// table size at most.
		if base >= len(d.store)/2 {
			if aliased {
				d.huff.b = append(d.huff.b, name...)
				name = d.huff.b[len(d.huff.b)-len(name):]
			}
			d.store = d.store[:copy(d.store, d.store[base:])]
			for k := range d.n {
				d.ents[(d.head+k)%len(d.ents)].off -= base
			}
		}
	}
	off := len(d.store)
	d.store = append(d.store, name...)
	d.store = append(d.store, value...)
	if d.n == len(d.ents) {
		ents := make([]tableEntry, max(16, 2*len(d.ents)))
		for k := range d.n {
			ents[k] = d.ents[(d.head+k)%len(d.ents)]
		}
		d.ents, d.head = ents, 0
	}
	d.ents[(d.head+d.n)%len(d.ents)] = tableEntry{off, len(name), len(value)}
	d.n++
	d.size += size
}

type staticEntry struct{ name, value []byte }

// staticTable is RFC 7541 Appendix A; index 1 is staticTable[0].
var staticTable = func() []staticEntry {
	fields := [...][2]string{
		{":authority", ""},
		{":method", "GET"},
		{":method", "POST"},
		{":path", "/"},
		{":path", "/index.html"},
		{":scheme", "http"},
		{":scheme", "https"},
		{":status", "200"},
		{":status", "204"},
		{":status", "206"},
		{":status", "304"},
		{":status", "400"},
		{":status", "404"},
		{":status", "500"},
		{"accept-charset", ""},
		{"accept-encoding", "gzip, deflate"},
		{"accept-language", ""},
		{"accept-ranges", ""},
		{"accept", ""},
		{"access-control-allow-origin", ""},
		{"age", ""},
		{"allow", ""},
		{"authorization", ""},
		{"cache-control", ""},
		{"content-disposition", ""},
		{"content-encoding", ""},
		{"content-language", ""},
		{"content-length", ""},
		{"content-location", ""},
		{"content-range", ""},
		{"content-type", ""},
		{"cookie", ""},
		{"date", ""},
		{"etag", ""},
		{"expect", ""},
		{"expires", ""},
		{"from", ""},
		{"host", ""},
		{"if-match", ""},
		{"if-modified-since", ""},
		{"if-none-match", ""},
		{"if-range", ""},
		{"if-unmodified-since", ""},
		{"last-modified", ""},
		{"link", ""},
		{"location", ""},
		{"max-forwards", ""},
		{"proxy-authenticate", ""},
		{"proxy-authorization", ""},
		{"range", ""},
		{"referer", ""},
		{"refresh", ""},
		{"retry-after", ""},
		{"server", ""},
		{"set-cookie", ""},
		{"strict-transport-security", ""},
		{"transfer-encoding", ""},
		{"user-agent", ""},
		{"vary", ""},
		{"via", ""},
		{"www-authenticate", ""},
	}
	t := make([]staticEntry, len(fields))
	for i, f := range fields {
		t[i] = staticEntry{[]byte(f[0]), []byte(f[1])}
	}
	return t
}()
