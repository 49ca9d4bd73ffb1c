package cache

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dgraph-io/ristretto/v2"
)

// tier is one place bodies are kept, tried in order on a hit. get reports
// false for a body the tier does not have or one that fails its length or
// checksum; put reports whether the tier took the body.
type tier interface {
	get(o *object) ([]byte, bool)
	put(o *object, body []byte) bool
	del(o *object)
}

var (
	_ tier = (*memTier)(nil)
	_ tier = (*diskTier)(nil)
)

// memTier keeps bodies in ristretto, cost = bytes. Ristretto may refuse or
// forget any body, so it holds nothing but bodies.
type memTier struct {
	rc *ristretto.Cache[uint64, *memItem]
	// only is set when there is no disk tier: put then waits until the
	// body is visible, because the index must not name a body that is not
	// there yet.
	only bool
}

type memItem struct {
	o    *object
	body []byte
}

// memOverhead is charged per body on top of its bytes, for the item and
// the ristretto bookkeeping.
const memOverhead = 128

func newMemTier(bytes int64, only bool, onDrop func(*object)) (*memTier, error) {
	cfg := &ristretto.Config[uint64, *memItem]{
		NumCounters:        min(max(bytes/1024*10, 10_000), 50_000_000),
		MaxCost:            bytes,
		BufferItems:        64,
		Metrics:            true,
		IgnoreInternalCost: true,
	}
	if onDrop != nil {
		drop := func(it *ristretto.Item[*memItem]) {
			if it.Value != nil {
				onDrop(it.Value.o)
			}
		}
		cfg.OnEvict, cfg.OnReject = drop, drop
	}
	rc, err := ristretto.NewCache(cfg)
	if err != nil {
		return nil, err
	}
	return &memTier{rc: rc, only: only}, nil
}

func (m *memTier) get(o *object) ([]byte, bool) {
	it, ok := m.rc.Get(o.id)
	if !ok || it.o.id != o.id || int64(len(it.body)) != o.size {
		return nil, false
	}
	return it.body, true
}

func (m *memTier) put(o *object, body []byte) bool {
	if !m.rc.Set(o.id, &memItem{o: o, body: body}, int64(len(body))+memOverhead) {
		return false
	}
	if !m.only {
		return true
	}
	m.rc.Wait()
	_, ok := m.rc.Get(o.id)
	return ok
}

func (m *memTier) del(o *object) { m.rc.Del(o.id) }

// diskTier keeps metadata and bodies in pebble under
//
//	'o' id → object metadata (object.encode, CRC-32C inside)
//	'b' id → body (length and CRC-32C are in the metadata)
//	'e' id → a soft purge: the lifetime the object was cut to
//	'x' seq → a hard purge: the ids it removed, until their records are
//	          deleted in the background
//	'n' seq → a tag or prefix purge (ban.encode), until it is swept
//
// so that the index can be rebuilt on Open and a torn or corrupted body is
// recognised before a byte of it is served.
type diskTier struct {
	db       *pebble.DB
	purgeSeq atomic.Uint64
}

func diskKey(kind byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kind}, id)
}

func openDisk(dir string) (*diskTier, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		return nil, err
	}
	return &diskTier{db: db}, nil
}

func (d *diskTier) get(o *object) ([]byte, bool) {
	v, closer, err := d.db.Get(diskKey('b', o.id))
	if err != nil {
		return nil, false
	}
	defer closer.Close()
	if int64(len(v)) != o.size || crc32.Checksum(v, castagnoli) != o.sum {
		return nil, false
	}
	return append([]byte(nil), v...), true
}

func (d *diskTier) put(o *object, body []byte) bool {
	b := d.db.NewBatch()
	b.Set(diskKey('o', o.id), o.encode(), nil)
	b.Set(diskKey('b', o.id), body, nil)
	return b.Commit(pebble.NoSync) == nil
}

func (d *diskTier) del(o *object) {
	_ = d.drop([]*object{o}, false)
}

// drop deletes objects' records in one batch; sync makes a purge durable
// before it is reported done.
func (d *diskTier) drop(objs []*object, sync bool) error {
	b := d.db.NewBatch()
	for _, o := range objs {
		for _, k := range []byte("obe") {
			b.Delete(diskKey(k, o.id), nil)
		}
	}
	return b.Commit(writeOpts(sync))
}

// tombstone durably records that objs are purged, in one small write: a
// restart skips them even before forget deletes their records.
func (d *diskTier) tombstone(objs []*object) ([]byte, error) {
	key := binary.BigEndian.AppendUint64([]byte{'x'}, d.purgeSeq.Add(1))
	v := make([]byte, 0, 5*len(objs))
	for _, o := range objs {
		v = binary.AppendUvarint(v, o.id)
	}
	return key, d.db.Set(key, v, pebble.Sync)
}

// update rewrites the metadata of objects updated in place (a 304), so a
// restart sees the new headers and freshness.
func (d *diskTier) update(o *object) error {
	b := d.db.NewBatch()
	b.Set(diskKey('o', o.id), o.encode(), nil)
	b.Delete(diskKey('e', o.id), nil)
	return b.Commit(pebble.NoSync)
}

// expire records soft purges: eight bytes per object instead of a rewrite
// of its metadata.
func (d *diskTier) expire(objs []*object, sync bool) error {
	b := d.db.NewBatch()
	for _, o := range objs {
		b.Set(diskKey('e', o.id), binary.BigEndian.AppendUint64(nil, uint64(o.lifetime)), nil)
	}
	return b.Commit(writeOpts(sync))
}

// dropAll deletes every record.
func (d *diskTier) dropAll() error {
	return d.db.DeleteRange([]byte{0}, []byte{0xff}, pebble.Sync)
}

func writeOpts(sync bool) *pebble.WriteOptions {
	if sync {
		return pebble.Sync
	}
	return pebble.NoSync
}

// load calls fn with every stored object, its soft purges applied.
// Records that do not decode are deleted; their bodies go with them.
func (d *diskTier) load(fn func(*object)) error {
	dead := map[uint64]bool{}
	var tombs [][]byte
	if err := d.scan('x', func(seq uint64, v []byte) {
		d.purgeSeq.Store(max(d.purgeSeq.Load(), seq))
		tombs = append(tombs, diskKey('x', seq))
		for len(v) > 0 {
			id, n := binary.Uvarint(v)
			if n <= 0 {
				break
			}
			dead[id], v = true, v[n:]
		}
	}); err != nil {
		return err
	}
	cut := map[uint64]int64{}
	if err := d.scan('e', func(id uint64, v []byte) {
		if len(v) == 8 {
			cut[id] = int64(binary.BigEndian.Uint64(v))
		}
	}); err != nil {
		return err
	}
	var bad []*object
	err := d.scan('o', func(id uint64, v []byte) {
		o, err := decodeObject(append([]byte(nil), v...))
		if err != nil || o.id != id || dead[id] {
			bad = append(bad, &object{id: id})
			return
		}
		if l, ok := cut[id]; ok {
			o.lifetime = min(o.lifetime, max(0, timeDuration(l)))
		}
		fn(o)
	})
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		if err := d.drop(bad, true); err != nil {
			return err
		}
	}
	for _, k := range tombs {
		if err := d.db.Delete(k, pebble.Sync); err != nil {
			return err
		}
	}
	return nil
}

func (d *diskTier) scan(kind byte, fn func(id uint64, v []byte)) error {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kind}, UpperBound: []byte{kind + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 9 {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return errors.Join(err, it.Close())
		}
		fn(binary.BigEndian.Uint64(k[1:]), v)
	}
	return it.Close()
}

func (d *diskTier) close() error { return d.db.Close() }

// quietLogger keeps pebble's informational chatter out of accel's logs;
// fatal errors still stop the process as pebble requires.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}
