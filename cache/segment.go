package cache

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The persistent tier keeps bodies out of pebble, in segment files beside
// its tables, as nginx and Apache Traffic Server keep theirs in files of
// their own: pebble's compactions rewrite what it holds again and again,
// and with the bodies in it they were most of the CPU a store cost (a tier
// that keeps evicting is a queue under constant churn). pebble keeps the
// metadata, each record naming its segment and offset; the length and the
// CRC-32C of the body are in the record too.
//
// A segment is written only by appending, one write per segment per batch
// of the writer, at offsets reserved in order when a body is queued
// (writeQueue.put), and never again once a later one began. Its bytes are
// written before the records naming them commit, so a record never names
// bytes that were never written; a crash between the two leaves bytes no
// record names, space the segment's reclaim gives back. A restart writes
// to a new segment.
//
// Room comes back a whole segment at a time, the oldest first (as ATS's
// cyclic store does): its objects still indexed are written again at the
// head if the memory tier holds their bodies (Cache.reclaimed), or else go
// from the index; their records go with one range delete, then the file is
// deleted. Objects evicted or purged before leave their bytes in the
// segment until then, which the tier's bound counts.
//
// A body is read with one pread and checked against its length and CRC
// before a byte of it is served: a segment damaged, truncated or deleted
// under a record is a miss (and counted), never a corrupt response.

// segPrefix starts the names of the segment files; the sequence number
// follows in hex.
const segPrefix = "accel-seg-"

// segSize is the size a segment is closed at for a bound: a
// thirty-second of it, from 256 KiB to 64 MiB, so that reclaiming one
// frees a small part of the tier at once, and the tier keeps about 30
// files open (one descriptor each). A body larger than that has a segment
// of its own.
func segSize(bound int64) int64 { return min(max(bound/32, 256<<10), 64<<20) }

// segment is one file of bodies.
type segment struct {
	seq  uint64
	name string
	f    vfs.File
	// size is the end of its last write (segments.mu guards it).
	size int64
}

// segments are the tier's body files.
type segments struct {
	fs  vfs.FS
	dir string

	// createMu is held while a segment file is created: a create that
	// hangs on a stuck disk must not hold up the readers of mu.
	createMu sync.Mutex

	// mu guards list and each segment's size.
	mu    sync.RWMutex
	list  []*segment // oldest first
	bytes atomic.Int64
}

func segName(seq uint64) string { return fmt.Sprintf("%s%016x", segPrefix, seq) }

// openSegments opens the segment files in dir for reading.
func openSegments(fs vfs.FS, dir string) (*segments, error) {
	s := &segments{fs: fs, dir: dir}
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		hex, ok := strings.CutPrefix(name, segPrefix)
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(hex, 16, 64)
		if err != nil || seq == 0 || name != segName(seq) {
			continue
		}
		f, err := fs.Open(fs.PathJoin(dir, name))
		if err != nil {
			s.close()
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			_ = f.Close()
			s.close()
			return nil, err
		}
		s.list = append(s.list, &segment{seq: seq, name: name, f: f, size: fi.Size()})
		s.bytes.Add(fi.Size())
	}
	slices.SortFunc(s.list, func(a, b *segment) int { return cmp.Compare(a.seq, b.seq) })
	return s, nil
}

// last is the newest segment's number, 0 when there is none.
func (s *segments) last() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.list) == 0 {
		return 0
	}
	return s.list[len(s.list)-1].seq
}

// find returns segment seq, nil when it is gone.
func (s *segments) find(seq uint64) *segment {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.findLocked(seq)
}

func (s *segments) findLocked(seq uint64) *segment {
	i, ok := slices.BinarySearchFunc(s.list, seq, func(g *segment, seq uint64) int { return cmp.Compare(g.seq, seq) })
	if !ok {
		return nil
	}
	return s.list[i]
}

// holds reports whether segment seq has n bytes at off.
func (s *segments) holds(seq uint64, off, n int64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g := s.findLocked(seq)
	return g != nil && off >= 0 && n >= 0 && off+n <= g.size
}

// oldest returns the oldest segment, nil when there is none.
func (s *segments) oldest() *segment {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.list) == 0 {
		return nil
	}
	return s.list[0]
}

// read fills p from segment seq at off; false when the segment is gone.
func (s *segments) read(seq uint64, p []byte, off int64) (ok bool, err error) {
	g := s.find(seq)
	if g == nil {
		return false, nil
	}
	// A segment reclaimed meanwhile is closed: the read fails, and the
	// object is gone anyway.
	n, err := g.f.ReadAt(p, off)
	if n == len(p) {
		err = nil
	}
	return true, err
}

// write writes p at off in segment seq, creating the segment when it is
// new. Only the writer writes; a write it gave up on (a stall) may still
// be running when the next comes, hence the locks.
func (s *segments) write(seq uint64, p []byte, off int64) error {
	g := s.find(seq)
	if g == nil {
		var err error
		if g, err = s.create(seq); err != nil {
			return err
		}
	}
	if _, err := g.f.WriteAt(p, off); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			err = fmt.Errorf("%w: writing %s: %v", errDiskFull, g.name, err)
		}
		return err
	}
	s.mu.Lock()
	if end := off + int64(len(p)); end > g.size {
		s.bytes.Add(end - g.size)
		g.size = end
	}
	s.mu.Unlock()
	return nil
}

// create opens segment seq for writing, newer than every other.
func (s *segments) create(seq uint64) (*segment, error) {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	if g := s.find(seq); g != nil {
		return g, nil
	}
	name := segName(seq)
	f, err := s.fs.OpenReadWrite(s.fs.PathJoin(s.dir, name), vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	g := &segment{seq: seq, name: name, f: f}
	s.mu.Lock()
	s.list = append(s.list, g)
	s.mu.Unlock()
	return g, nil
}

// remove closes and deletes g.
func (s *segments) remove(g *segment) error {
	s.mu.Lock()
	if i := slices.Index(s.list, g); i >= 0 {
		s.list = slices.Delete(s.list, i, i+1)
		s.bytes.Add(-g.size)
	}
	s.mu.Unlock()
	_ = g.f.Close()
	return s.fs.Remove(s.fs.PathJoin(s.dir, g.name))
}

// close closes every segment file.
func (s *segments) close() {
	s.mu.Lock()
	list := s.list
	s.list = nil
	s.mu.Unlock()
	for _, g := range list {
		_ = g.f.Close()
	}
}

// segWrite is one write of the writer: bodies that follow each other in
// one segment.
type segWrite struct {
	seq uint64
	off int64
	b   []byte
}

// segWrites groups the bodies of batch into one write per segment; buf is
// reused for the bodies that are copied together. Cancelled writes are
// written too: their room is reserved between the others.
func segWrites(batch []*queuedPut, buf []byte, out []segWrite) ([]segWrite, []byte) {
	buf = buf[:0]
	for i := 0; i < len(batch); {
		first := batch[i].o
		j, end := i+1, first.off+int64(len(batch[i].body))
		for ; j < len(batch) && batch[j].o.seg == first.seg && batch[j].o.off == end; j++ {
			end += int64(len(batch[j].body))
		}
		if j == i+1 {
			out = append(out, segWrite{first.seg, first.off, batch[i].body})
		} else {
			start := len(buf)
			for _, e := range batch[i:j] {
				buf = append(buf, e.body...)
			}
			out = append(out, segWrite{first.seg, first.off, buf[start:len(buf):len(buf)]})
		}
		i = j
	}
	return out, buf
}

// reclaim frees the oldest segment if it is older than before (the
// segment of the oldest write queued: newer ones may still be written):
// its objects still indexed are written again or dropped from the index
// (writeQueue.reclaimed), their records deleted, the file removed. It
// reports whether a segment went.
func (d *diskTier) reclaim(before uint64) bool {
	g := d.segs.oldest()
	if g == nil || g.seq >= before {
		return false
	}
	objs, err := d.records(g.seq)
	if err != nil {
		d.fail(err)
		return false
	}
	if len(objs) > 0 {
		d.wq.reclaimed(objs)
	}
	lo, hi := segKey('o', g.seq, 0), segKey('o', g.seq+1, 0)
	elo, ehi := segKey('e', g.seq, 0), segKey('e', g.seq+1, 0)
	err = d.write(0, false, func(b *pebble.Batch) {
		_ = b.DeleteRange(lo, hi, nil)
		_ = b.DeleteRange(elo, ehi, nil)
	})
	// With its records deleted, or the tier behind (cleared before it
	// takes writes again, and a restart drops records whose segment is
	// gone), nothing names the segment any more.
	if rerr := d.segs.remove(g); rerr != nil && err == nil {
		d.log.Warn("cache: removing a reclaimed segment", "dir", d.dir, "err", rerr)
	}
	return err == nil
}

// records decodes the records of the objects in segment seq.
func (d *diskTier) records(seq uint64) ([]*object, error) {
	if !d.enter() {
		return nil, errDiskReleased
	}
	defer d.relMu.RUnlock()
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: segKey('o', seq, 0), UpperBound: segKey('o', seq+1, 0)})
	if err != nil {
		return nil, err
	}
	var objs []*object
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, errors.Join(err, it.Close())
		}
		if o, err := decodeObject(append([]byte(nil), v...)); err == nil {
			objs = append(objs, o)
		}
	}
	return objs, it.Close()
}
