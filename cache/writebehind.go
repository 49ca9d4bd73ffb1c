package cache

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The persistent tier's writes of new objects leave the request path: a
// store queues the body and its metadata, reserving the body's place in
// the segments (segment.go), and one writer goroutine writes what is
// queued in batches: the bodies, one write per segment, then their
// records in one pebble batch, unsynced (a crash of the process loses
// only the records pebble had not handed to its log yet, its last log
// block; a crash of the machine may lose the last moments, which a cache
// fetches again, and a record whose body was lost fails its checksum). Until it is committed a
// queued body is served from the queue, so the index never names a body no
// tier has.
//
// The queue is bounded by a memtable's worth of bytes: a disk that falls
// that far behind does not hold responses nor pile up memory; new objects
// then stay in memory only and are counted (Stats.DiskSkipped), as when
// the disk is full.
//
// Deletes stay synchronous. A delete of a queued object cancels its write,
// and the tier's writes commit one at a time (diskTier.commit), so a queued
// write never lands after the delete that removed its object: either the
// writer took it first and the delete commits after it, or the writer sees
// it cancelled.
type writeQueue struct {
	// limit bounds bytes; keep is given the bodies whose write failed,
	// which memory must then hold; reclaimed the objects whose segment
	// is reclaimed, which must be written again or dropped; bg counts the queued
	// writes for the cache's Close and tests; segSize is where a segment
	// ends. Set before the writer starts.
	limit     int64
	keep      func(o *object, body []byte)
	reclaimed func(objs []*object)
	bg        *sync.WaitGroup
	linger    time.Duration // writeLinger when the writer started
	segSize   int64
	wake      chan struct{} // capacity 1: something was queued
	done      chan struct{} // closed when the writer returns; nil before it starts

	skipped atomic.Int64 // bodies refused because the queue was full

	// mu guards the fields below.
	mu    sync.Mutex
	q     []*queuedPut // not yet taken by the writer, oldest first
	byID  map[uint64]*queuedPut
	bytes int64
	// stopped is set when the writer, closing, found the queue empty:
	// nothing is queued after it.
	stopped bool
	// seg and off are where the next body goes: bodies are placed in
	// the order they are queued, which is the order they are written.
	seg uint64
	off int64
}

// queuedPut is one object waiting for the disk. It leaves byID once its
// write committed or failed.
type queuedPut struct {
	o    *object // replaced by a 304's update while queued
	body []byte
	size int64
	// cancelled is set (under writeQueue.mu) when the object was dropped
	// before its write.
	cancelled bool
}

// putOverhead is what a queued put costs beside its body and metadata.
const putOverhead = 64

// writeLinger is how long a busy writer waits, once something is queued,
// for more to join its batch: a body is in memory meanwhile (a crash
// loses at most this much more), and under load the batch grows from a
// few bodies to dozens, each written with one pwrite and one commit. A
// var, read when a writer is started, so that a test can make it long.
var writeLinger = 2 * time.Millisecond

// start runs the writer; keep receives the bodies the disk did not take,
// reclaimed the objects whose bodies left with their segment. Writes go to
// a new segment.
func (d *diskTier) start(keep func(*object, []byte), reclaimed func([]*object), bg *sync.WaitGroup) {
	w := &d.wq
	w.limit, w.keep, w.reclaimed, w.bg = d.memtable, keep, reclaimed, bg
	w.linger = writeLinger
	w.segSize, w.seg = segSize(d.bound), max(d.segs.last(), d.lastSeg)+1
	w.wake, w.done = make(chan struct{}, 1), make(chan struct{})
	w.byID = map[uint64]*queuedPut{}
	go d.writer()
}

// put queues o's records. It reports false when the tier takes no writes
// now or the queue is full: the caller keeps the body in memory.
func (d *diskTier) put(o *object, body []byte) bool {
	// Not on disk unless queued here: a copy of another object (a
	// compressed sibling) comes with the other's place.
	o.seg, o.off = 0, 0
	if !d.takesWrites() {
		return false
	}
	w := &d.wq
	size := int64(len(body)+len(o.wire)) + putOverhead
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return false
	}
	// One body larger than the bound goes when nothing else waits.
	if w.bytes+size > w.limit && w.bytes > 0 {
		w.mu.Unlock()
		w.skipped.Add(1)
		return false
	}
	// The body's place, set before o is indexed.
	if n := int64(len(body)); w.off > 0 && w.off+n > w.segSize {
		w.seg, w.off = w.seg+1, 0
	}
	o.seg, o.off = w.seg, w.off
	w.off += int64(len(body))
	e := &queuedPut{o: o, body: body, size: size}
	w.q = append(w.q, e)
	w.byID[o.id] = e
	w.bytes += size
	w.bg.Add(1)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

// takesWrites reports whether a write may be queued: the tier is healthy,
// or read-only with its back-off over, so that the writer's try finds out.
func (d *diskTier) takesWrites() bool {
	switch diskState(d.state.Load()) {
	case diskOK:
		return true
	case diskReadOnly:
		d.mu.Lock()
		defer d.mu.Unlock()
		return !d.openedReadOnly && !d.now().Before(d.retryAt)
	}
	return false
}

// queued returns o's body while its write is queued.
func (w *writeQueue) queued(o *object) ([]byte, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.byID[o.id]; e != nil && !e.cancelled && int64(len(e.body)) == o.size {
		return e.body, true
	}
	return nil, false
}

// cancel drops the queued writes of objs; all drops every one.
func (w *writeQueue) cancel(objs []*object, all bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if all {
		for _, e := range w.byID {
			e.cancelled = true
		}
		return
	}
	for _, o := range objs {
		if e := w.byID[o.id]; e != nil {
			e.cancelled = true
		}
	}
}

// replace makes a queued write carry o, an update of the object it holds.
func (w *writeQueue) replace(o *object) {
	w.mu.Lock()
	if e := w.byID[o.id]; e != nil && !e.cancelled {
		e.o = o
	}
	w.mu.Unlock()
}

// take returns the oldest queued writes, up to max bytes (at least one).
// Closing, an empty queue stops taking puts.
func (w *writeQueue) take(batch []*queuedPut, max int64, closing bool) []*queuedPut {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.q) == 0 && closing {
		w.stopped = true
	}
	var n int64
	i := 0
	for ; i < len(w.q) && (i == 0 || n+w.q[i].size <= max); i++ {
		n += w.q[i].size
	}
	batch = append(batch, w.q[:i]...)
	// The rest moves to the front, so the queue's array is reused.
	rest := copy(w.q, w.q[i:])
	clear(w.q[rest:])
	w.q = w.q[:rest]
	return batch
}

// settled removes a batch from the queue once it is written or kept.
func (w *writeQueue) settled(batch []*queuedPut) {
	w.mu.Lock()
	for _, e := range batch {
		if w.byID[e.o.id] == e {
			delete(w.byID, e.o.id)
		}
		w.bytes -= e.size
	}
	w.mu.Unlock()
	for range batch {
		w.bg.Done()
	}
}

// writer commits the queue until the tier closes, then what is left.
func (d *diskTier) writer() {
	w := &d.wq
	defer close(w.done)
	var batch []*queuedPut
	var live []queuedPut
	var key, meta, buf []byte
	var writes []segWrite
	linger := time.NewTimer(w.linger)
	defer linger.Stop()
	// busy is set when the last wake found more than one body: only then
	// do more come while one waits. A lone body, at a low rate of stores,
	// is written at once rather than kept in memory for the linger.
	busy := false
	for closing := false; ; {
		select {
		case <-w.wake:
		case <-d.closing:
			closing = true
		}
		switch {
		case closing:
		case busy:
			// More bodies come while this one waits: one batch writes them
			// all with one pwrite and one pebble commit.
			linger.Reset(w.linger)
			select {
			case <-linger.C:
			case <-d.closing:
				closing = true
			}
		default:
			// The store that woke the writer made it the next goroutine
			// to run, so it took that one body each time, however fast
			// stores came: at 9 000 stores a second on one core, 96 % of
			// batches held one body, each with a pwrite and a pebble
			// commit of its own. Once the goroutines that were ready
			// ran, the stores they made join this batch (31 to 35 bodies
			// a batch on average at that rate, a ninth of the pwrites per
			// store), and the linger of the next wake gathers more; with
			// none ready, the body is written at once.
			runtime.Gosched()
		}
		taken := 0
		for {
			batch = w.take(batch[:0], max(d.memtable/8, 1), closing)
			if len(batch) == 0 {
				break
			}
			taken += len(batch)
			var size int64
			for _, e := range batch {
				size += e.size
			}
			writes, buf = segWrites(batch, buf, writes[:0])
			ws := writes
			records := func(b *pebble.Batch) {
				// Under the commit lock: a cancel seen here is a delete
				// that commits after this batch, or already did.
				live = w.live(batch, live[:0])
				for _, e := range live {
					meta = e.o.appendEncode(meta[:0])
					key = appendSegKey(key[:0], 'o', e.o.seg, e.o.id)
					_ = b.Set(key, meta, nil)
				}
			}
			bodies := func() error {
				for _, s := range ws {
					if err := d.segs.write(s.seq, s.b, s.off); err != nil {
						return err
					}
				}
				return nil
			}
			// Room is made by reclaiming segments first; a write still
			// refused at the bound (pebble's files measured larger
			// meanwhile) makes room once more.
			err := errDiskBound
			for try := 0; try < 2 && err == errDiskBound; try++ {
				if diskState(d.state.Load()) == diskOK {
					d.makeRoom(size, batch[0].o.seg)
				}
				err = d.writeAfter(size, false, records, bodies)
			}
			if err != nil {
				// A segment write given up on may still be running: it
				// keeps its buffers.
				writes, buf = nil, nil
				for _, e := range w.live(batch, live[:0]) {
					w.keep(e.o, e.body)
				}
			}
			clear(live)
			w.settled(batch)
			clear(batch)
		}
		if closing {
			return
		}
		busy = taken > 1
	}
}

// live copies the writes of batch that were not cancelled, as they stand.
func (w *writeQueue) live(batch []*queuedPut, out []queuedPut) []queuedPut {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range batch {
		if !e.cancelled {
			out = append(out, *e)
		}
	}
	return out
}
