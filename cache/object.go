package cache

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"sync/atomic"
	"time"

	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// object is one stored response. It is immutable once indexed, except
// for used (and its place, which the memory tier keeps): an update (a
// 304, a soft purge) indexes a modified copy under the same id, so a
// reader holding an object never sees it change.
type object struct {
	id      uint64
	uri     string // primary key
	variant string // secondary key
	vary    []string
	status  int
	// fields are the stored header fields: no Content-Length, Age,
	// Set-Cookie, or tag fields; Cache-Status and Age are made per answer.
	// wire is the same fields in HTTP/1 form, serialised once so that a
	// hit copies them; setFields keeps the two together.
	fields     parser.Fields
	wire       []byte
	size       int64  // body length
	sum        uint32 // CRC-32C of the body
	received   int64  // unix ns the response arrived
	inserted   int64  // unix ns it was stored, for purge bookkeeping
	initialAge time.Duration
	lifetime   time.Duration
	swr, sie   time.Duration
	noCache    bool
	mustReval  bool
	tags       []string
	// targeted is the value of the route's own targeted field (RFC
	// 9213), which is consumed rather than stored with fields, kept so
	// that a 304 without it revalidates under the same policy.
	targeted []byte
	// enc is the content coding of a compressed sibling (compress.go),
	// made from the identity object whose id is src; "" for others.
	enc string
	src uint64
	// seg and off say where the body is in the persistent tier's segment
	// files (segment.go); seg 0: not on disk. Set before o is indexed.
	seg uint64
	off int64
	// checked is the seq of the newest ban whose soft purge o reflects;
	// in memory only, since a restart rebuilds the bans from disk.
	checked uint64

	used atomic.Int64 // unix ns of the last hit, for disk eviction
	// place is where the memory tier holds the id's body: made with the
	// id, shared by its copies (clone).
	place *memPlace
	// slot is o's place in its shard's objs while indexed; the shard's
	// lock guards it.
	slot int
	// diskCost and memCost are objectBytes and objectMeta, set when o
	// is indexed (costed), before it is shared, and kept by a copy that
	// takes its place as it is: what o adds to the index's totals is what
	// it takes away, and an evicted object's fields, cold by then, are
	// not read again to count it out.
	diskCost, memCost int64
}

// age is the current_age of RFC 9111 §4.2.3.
func (o *object) age(now time.Time) time.Duration {
	return o.initialAge + max(now.Sub(time.Unix(0, o.received)), 0)
}

func (o *object) stored(now time.Time) policy.Stored {
	return policy.Stored{Age: o.age(now), Lifetime: o.lifetime, SWR: o.swr, SIE: o.sie,
		NoCache: o.noCache, MustRevalidate: o.mustReval}
}

// clone copies o for an update under the same id.
func (o *object) clone() *object {
	n := &object{id: o.id, uri: o.uri, variant: o.variant, vary: o.vary, status: o.status,
		fields: o.fields, wire: o.wire, size: o.size, sum: o.sum, received: o.received, inserted: o.inserted,
		initialAge: o.initialAge, lifetime: o.lifetime, swr: o.swr, sie: o.sie,
		noCache: o.noCache, mustReval: o.mustReval, tags: o.tags, targeted: o.targeted, enc: o.enc, src: o.src, seg: o.seg, off: o.off,
		checked: o.checked, place: o.place, diskCost: o.diskCost, memCost: o.memCost}
	n.used.Store(o.used.Load())
	return n
}

// setFields sets the stored fields and their wire form, copied from fs:
// the fields' names and values are slices of the wire form, so that an
// object's head is one allocation of bytes and one of fields.
func (o *object) setFields(fs parser.Fields) {
	n := 0
	for _, f := range fs {
		n += len(f.Name) + len(f.Value) + 4
	}
	wire := make([]byte, 0, n)
	out := make(parser.Fields, len(fs))
	for i, f := range fs {
		s := len(wire)
		wire = append(wire, f.Name...)
		out[i].Name = wire[s:len(wire):len(wire)]
		wire = append(wire, ": "...)
		s = len(wire)
		wire = append(wire, f.Value...)
		out[i].Value = wire[s:len(wire):len(wire)]
		wire = append(wire, "\r\n"...)
	}
	o.fields, o.wire = out, wire
}

// setFreshness derives the freshness bookkeeping from o.fields and the
// response's caching policy cc for a response requested and received at
// the given times. age is the Age
// field of the response received (a 200 or a 304), which is never stored
// but counts toward the current age (RFC 9111 §4.2.3).
func (o *object) setFreshness(rules *policy.CacheRules, cc policy.CacheControl, age []byte, requested, received time.Time) {
	o.received = received.UnixNano()
	o.initialAge = policy.InitialAge(o.fields.Get("date"), age, requested, received)
	o.lifetime, _ = policy.Lifetime(o.status, o.fields, cc, rules, received)
	o.swr, o.sie = policy.StaleWindows(cc, rules)
	// A qualified no-cache only withholds its fields, which storedFields
	// drops, so the rest may be reused (RFC 9111 §5.2.2.4).
	o.noCache = cc.NoCache
	o.mustReval = policy.MustRevalidate(cc)
}

// errCorrupt marks a record that failed its checksum or did not decode.
var errCorrupt = errors.New("cache: corrupt record")

// recordVersion 2 added the targeted field and the coding, 3 where the
// body is in the segment files; records of versions 1 and 2 still decode
// (with no body on disk).
const recordVersion = 3

// encode is the persistent form of o's metadata, ending in a CRC-32C of
// everything before it.
func (o *object) encode() []byte {
	return o.appendEncode(nil)
}

// appendEncode appends encode's record to b.
func (o *object) appendEncode(b []byte) []byte {
	start := len(b)
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, o.id)
	b = appendString(b, o.uri)
	b = appendString(b, o.variant)
	b = binary.AppendUvarint(b, uint64(len(o.vary)))
	for _, v := range o.vary {
		b = appendString(b, v)
	}
	b = binary.AppendUvarint(b, uint64(o.status))
	b = binary.AppendUvarint(b, uint64(len(o.fields)))
	for _, f := range o.fields {
		b = appendBytes(b, f.Name)
		b = appendBytes(b, f.Value)
	}
	for _, v := range [...]int64{o.size, int64(o.sum), o.received, o.inserted, int64(o.initialAge),
		int64(o.lifetime), int64(o.swr), int64(o.sie), o.used.Load()} {
		b = binary.AppendVarint(b, v)
	}
	var flags byte
	if o.noCache {
		flags |= 1
	}
	if o.mustReval {
		flags |= 2
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(o.tags)))
	for _, t := range o.tags {
		b = appendString(b, t)
	}
	b = appendBytes(b, o.targeted)
	b = appendString(b, o.enc)
	b = binary.AppendUvarint(b, o.src)
	b = binary.AppendUvarint(b, o.seg)
	b = binary.AppendUvarint(b, uint64(o.off))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

func decodeObject(b []byte) (*object, error) {
	if len(b) < 5 {
		return nil, errCorrupt
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum || body[0] < 1 || body[0] > recordVersion {
		return nil, errCorrupt
	}
	d := decoder{b: body[1:]}
	o := &object{place: new(memPlace)}
	o.id = d.uvarint()
	o.uri = d.string()
	o.variant = d.string()
	o.vary = make([]string, d.count())
	for i := range o.vary {
		o.vary[i] = d.string()
	}
	o.status = int(d.uvarint())
	fs := make(parser.Fields, d.count())
	for i := range fs {
		fs[i].Name = d.bytes()
		fs[i].Value = d.bytes()
	}
	o.setFields(fs)
	var v [9]int64
	for i := range v {
		v[i] = d.varint()
	}
	o.size, o.sum, o.received, o.inserted = v[0], uint32(v[1]), v[2], v[3]
	o.initialAge, o.lifetime, o.swr, o.sie = time.Duration(v[4]), time.Duration(v[5]), time.Duration(v[6]), time.Duration(v[7])
	o.used.Store(v[8])
	flags := d.byte()
	o.noCache, o.mustReval = flags&1 != 0, flags&2 != 0
	if n := d.count(); n > 0 {
		o.tags = make([]string, n)
		for i := range o.tags {
			o.tags[i] = d.string()
		}
	}
	if body[0] >= 2 {
		if t := d.bytes(); len(t) > 0 {
			o.targeted = t
		}
		o.enc = d.string()
		o.src = d.uvarint()
	}
	if body[0] >= 3 {
		o.seg = d.uvarint()
		o.off = int64(d.uvarint())
	}
	if d.err || len(d.b) != 0 {
		return nil, errCorrupt
	}
	return o, nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBytes(b, s []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decoder reads what encode wrote; a short or malformed record sets err
// instead of panicking, and the record is then dropped.
type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// count reads a length bounded by what is left, so a corrupt count cannot
// make a huge allocation.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err, d.b = true, nil
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.count()
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) string() string { return string(d.bytes()) }

func timeDuration(ns int64) time.Duration { return time.Duration(ns) }
