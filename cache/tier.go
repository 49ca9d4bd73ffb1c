package cache

import (
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
	rc *ristretto.Cache[uint64, memItem]
	// only is set when there is no disk tier: put then waits until the
	// body is visible, because the index must not name a body that is not
	// there yet.
	only bool
}

// typicalObject is the body size ristretto's admission counters are sized
// for: ten counters per object that fits, as ristretto advises. Sizing
// them by a smaller size only costs memory (about 5 bytes per counter)
// for objects that never come.
const typicalObject = 16 << 10

// memItem is held by value: ristretto's own item carries it, one
// allocation per body instead of two.
type memItem struct {
	o    *object
	body []byte
}

// memOverhead is charged per body on top of its bytes, for the item and
// the ristretto bookkeeping.
const memOverhead = 128

func newMemTier(bytes int64, only bool, onDrop func(*object)) (*memTier, error) {
	cfg := &ristretto.Config[uint64, memItem]{
		NumCounters:        min(max(bytes/typicalObject*10, 10_000), 10_000_000),
		MaxCost:            bytes,
		BufferItems:        64,
		Metrics:            true,
		IgnoreInternalCost: true,
	}
	if onDrop != nil {
		drop := func(it *ristretto.Item[memItem]) {
			if it.Value.o != nil {
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
	if !m.only {
		return m.rc.Set(o.id, memItem{o: o, body: body}, int64(len(body))+memOverhead)
	}
	return m.putVisible(o, body)
}

// putVisible stores body and waits until a get finds it: for a body no
// other tier holds, which the index may name only once it is there.
func (m *memTier) putVisible(o *object, body []byte) bool {
	if !m.rc.Set(o.id, memItem{o: o, body: body}, int64(len(body))+memOverhead) {
		return false
	}
	m.rc.Wait()
	_, ok := m.rc.Get(o.id)
	return ok
}

func (m *memTier) del(o *object) { m.rc.Del(o.id) }
