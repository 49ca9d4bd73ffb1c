package cache

import (
	"encoding/binary"
	"hash/crc32"
	"slices"
	"strings"
	"time"

	"github.com/accel-proxy/accel/parser"
)

// Tag and prefix purges are lazy, so that purging a million objects costs
// the caller one synced write and never holds a lock for long. A purge
// records a ban, persists it ('n' seq on disk) and publishes it; from then
// on every lookup checks the object it finds against the published bans
// (only the object's own tags, in a map, and the prefix bans still being
// swept). One background sweeper applies the bans in order, shard by
// shard, to the index and the disk, then deletes and retires each. A
// restart reloads the bans still on disk and sweeps them again.

// ban is one tag or prefix purge. It holds for every object with an id up
// to maxID that carries one of tags or whose URI starts with one of
// prefixes: ids grow with every store, so what is stored after the purge
// is untouched.
type ban struct {
	seq      uint64
	maxID    uint64
	soft     bool
	at       int64 // unix ns of the purge: a soft ban makes objects stale as of then
	tags     []string
	prefixes []string
	// taken are the tag sets a hard purge took out of the tag index in one
	// go, for the sweeper. They are not persisted: after a restart the
	// reloaded tag index holds those objects again.
	taken map[string]map[uint64]tagRef
}

// banSet is what lookups check; it is immutable once published.
type banSet struct {
	seq      uint64 // the newest ban's
	tags     map[string]tagBans
	prefixes []*ban
}

// tagBans are a tag's newest hard and soft bans. The newest covers every
// object an older one of its kind covers (a larger maxID); a soft one only
// makes them stale a little later than the older would.
type tagBans struct{ hard, soft *ban }

// verdict is what the bans do to one object: remove it (hard) or make it
// stale as of soft.at, recording seq as the bans it has seen.
type verdict struct {
	hard bool
	soft *ban
	seq  uint64
}

func newBanSet(bans []*ban) *banSet {
	if len(bans) == 0 {
		return nil
	}
	bs := &banSet{seq: bans[len(bans)-1].seq, tags: map[string]tagBans{}}
	for _, b := range bans {
		for _, t := range b.tags {
			tb := bs.tags[t]
			if b.soft {
				tb.soft = b
			} else {
				tb.hard = b
			}
			bs.tags[t] = tb
		}
		if len(b.prefixes) > 0 {
			bs.prefixes = append(bs.prefixes, b)
		}
	}
	return bs
}

// check finds what the bans do to o; a nil set is no ban at all, the
// usual case, and costs a hit nothing more than the nil check.
func (bs *banSet) check(o *object) verdict {
	v := verdict{seq: bs.seq}
	for _, t := range o.tags {
		tb, ok := bs.tags[t]
		if !ok {
			continue
		}
		if tb.hard != nil && o.id <= tb.hard.maxID {
			return verdict{hard: true}
		}
		v.soft = earlier(v.soft, tb.soft, o)
	}
	for _, b := range bs.prefixes {
		if o.id > b.maxID || !slices.ContainsFunc(b.prefixes, func(p string) bool { return strings.HasPrefix(o.uri, p) }) {
			continue
		}
		if !b.soft {
			return verdict{hard: true}
		}
		v.soft = earlier(v.soft, b, o)
	}
	return v
}

// earlier picks, of cur and a soft ban b, the one that applies to o and
// makes it stale sooner. An object whose checked is b.seq or later has
// already been made stale by b.
func earlier(cur, b *ban, o *object) *ban {
	if b == nil || o.id > b.maxID || o.checked >= b.seq || (cur != nil && cur.at <= b.at) {
		return cur
	}
	return b
}

// addBan persists b, publishes it to lookups and makes sure the sweeper
// runs.
func (c *Cache) addBan(b *ban) error {
	c.banMu.Lock()
	defer c.banMu.Unlock()
	c.banSeq++
	b.seq = c.banSeq
	if c.disk != nil {
		// A ban the disk cannot take still holds in memory; the disk is
		// then cleared before it takes writes again.
		_ = c.disk.set(diskKey('n', b.seq), b.encode(), true)
	}
	c.bans = append(c.bans, b)
	c.ix.bans.Store(newBanSet(c.bans))
	if !c.sweeping {
		c.sweeping = true
		c.bg.Add(1)
		go c.sweep()
	}
	return nil
}

// sweep applies the bans oldest first and retires each once the index
// and the disk reflect it. Close stops it between shards; the bans left
// are on disk for the next Open.
func (c *Cache) sweep() {
	defer c.bg.Done()
	for {
		c.banMu.Lock()
		if len(c.bans) == 0 || c.closed.Load() {
			c.sweeping = false
			c.banMu.Unlock()
			return
		}
		b := c.bans[0]
		c.banMu.Unlock()
		if !c.apply(b) {
			c.banMu.Lock()
			c.sweeping = false
			c.banMu.Unlock()
			return
		}
		// The records of what b removed went in earlier batches of the
		// same log, so this delete cannot outlive them.
		if c.disk != nil {
			_ = c.disk.remove(diskKey('n', b.seq), true)
		}
		c.banMu.Lock()
		c.bans = c.bans[1:]
		c.ix.bans.Store(newBanSet(c.bans))
		c.banMu.Unlock()
	}
}

// apply sweeps b through the index one shard at a time, so that no lock
// is held for more than a sixty-fourth of the work; it reports false if
// Close stopped it.
func (c *Cache) apply(b *ban) bool {
	var refs [shardCount][]tagRef
	if len(b.tags) > 0 {
		add := func(r tagRef) {
			if r.id <= b.maxID {
				i := c.ix.shardIndex(r.uri)
				refs[i] = append(refs[i], r)
			}
		}
		// The live sets hold what a restart reloaded and what was
		// stored with an id from before the purge but indexed after it.
		c.ix.tagMu.Lock()
		for _, t := range b.tags {
			for _, r := range c.ix.tags[t] {
				add(r)
			}
		}
		c.ix.tagMu.Unlock()
		for _, set := range b.taken {
			for _, r := range set {
				add(r)
			}
		}
		b.taken = nil
	}
	at := time.Unix(0, b.at)
	for i := range c.ix.shards {
		if c.closed.Load() {
			return false
		}
		s := &c.ix.shards[i]
		var objs []*object
		s.mu.Lock()
		for _, r := range refs[i] {
			if e, ok := s.uris[r.uri]; ok {
				if o := e.get(r.variant); o != nil && o.id == r.id {
					objs = s.banLocked(b, o, at, objs)
				}
			}
		}
		if len(b.prefixes) > 0 {
			for uri, e := range s.uris {
				if slices.ContainsFunc(b.prefixes, func(p string) bool { return strings.HasPrefix(uri, p) }) {
					for o := range e.all {
						objs = s.banLocked(b, o, at, objs)
					}
				}
			}
		}
		s.mu.Unlock()
		c.settleBan(b, objs)
		if c.sweepStep != nil {
			c.sweepStep(i)
		}
	}
	return true
}

// banLocked applies b to o, indexed in s, appending o to objs if b
// removed it (hard) or the stale copy that replaced it (soft).
func (s *shard) banLocked(b *ban, o *object, at time.Time, objs []*object) []*object {
	switch {
	case o.id > b.maxID:
		return objs
	case !b.soft:
		if s.removeLocked(o) {
			objs = append(objs, o)
		}
		return objs
	case o.checked < b.seq:
		o = s.softenLocked(o, at, b.seq)
	}
	// A lookup already made it stale; its disk record still needs the cut.
	return append(objs, o)
}

// settleBan carries one shard's share of a ban to the totals, the tag
// index, the memory tier and the disk. The writes need no sync: the ban
// record, deleted with a sync after them, stands for them until then.
func (c *Cache) settleBan(b *ban, objs []*object) {
	if len(objs) == 0 {
		return
	}
	if !b.soft {
		c.forget(objs)
		if c.disk != nil {
			_ = c.disk.drop(objs, false)
		}
		return
	}
	if c.disk != nil {
		_ = c.disk.expire(objs, false)
	}
}

// lookup is index.lookup with the bans applied: a banned object is
// dropped and missed, a soft-banned one replaced by a stale copy.
func (c *Cache) lookup(uri, extras string, fs parser.Fields) (o *object, vary []string, uriKnown bool) {
	sec := []byte(extras)
	return c.find(uri, &sec, fs)
}

// find is lookup with the secondary key built in *sec, which holds the
// extras on entry (see index.lookup).
func (c *Cache) find(uri string, sec *[]byte, fs parser.Fields) (*object, []string, bool) {
	o, vary, uriKnown, v := c.ix.lookup(uri, sec, fs)
	switch {
	case o == nil:
	case v.hard:
		c.drop(o)
		return nil, vary, uriKnown
	case v.soft != nil:
		n := o.clone()
		n.lifetime = min(o.lifetime, o.age(time.Unix(0, v.soft.at)))
		n.checked = v.seq
		// If o was replaced meanwhile, n is still a right answer to
		// this request; the next lookup sees the replacement.
		c.ix.replace(o, n)
		return n, vary, uriKnown
	}
	return o, vary, uriKnown
}

const banVersion = 1

// encode is a ban's persistent form, ending in a CRC-32C of everything
// before it.
func (b *ban) encode() []byte {
	v := []byte{banVersion, 0}
	if b.soft {
		v[1] = 1
	}
	v = binary.AppendUvarint(v, b.maxID)
	v = binary.AppendVarint(v, b.at)
	for _, list := range [][]string{b.tags, b.prefixes} {
		v = binary.AppendUvarint(v, uint64(len(list)))
		for _, s := range list {
			v = appendString(v, s)
		}
	}
	return binary.BigEndian.AppendUint32(v, crc32.Checksum(v, castagnoli))
}

func decodeBan(seq uint64, v []byte) (*ban, error) {
	if len(v) < 6 {
		return nil, errCorrupt
	}
	body, sum := v[:len(v)-4], binary.BigEndian.Uint32(v[len(v)-4:])
	if crc32.Checksum(body, castagnoli) != sum || body[0] != banVersion {
		return nil, errCorrupt
	}
	b := &ban{seq: seq, soft: body[1] == 1}
	d := decoder{b: body[2:]}
	b.maxID = d.uvarint()
	b.at = d.varint()
	for _, list := range []*[]string{&b.tags, &b.prefixes} {
		if n := d.count(); n > 0 {
			*list = make([]string, n)
			for i := range *list {
				(*list)[i] = d.string()
			}
		}
	}
	if d.err || len(d.b) != 0 {
		return nil, errCorrupt
	}
	return b, nil
}

// loadBans reads the bans a purge recorded and no sweep retired.
func (d *diskTier) loadBans() ([]*ban, error) {
	var bans []*ban
	var bad bool
	err := d.scan('n', func(seq uint64, v []byte) {
		b, err := decodeBan(seq, append([]byte(nil), v...))
		if err != nil {
			bad = true
			return
		}
		bans = append(bans, b)
	})
	if err == nil && bad {
		err = errCorrupt
	}
	return bans, err
}
