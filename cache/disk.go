package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/accel-proxy/accel/internal/diskfs"
)

// diskTier keeps bodies in segment files (segment.go) and metadata in
// pebble under
//
//	'o' seg id → object metadata (object.encode, CRC-32C inside): where
//	             its body is in segment seg, its length and CRC-32C
//	'e' seg id → a soft purge: the lifetime the object was cut to
//	'x' seq    → a hard purge: the ids it removed, until their records
//	             are deleted in the background
//	'n' seq    → a tag or prefix purge (ban.encode), until it is swept
//
// so that the index can be rebuilt on Open and a torn or corrupted body is
// recognised before a byte of it is served. Records lead with their
// segment, so that reclaiming one deletes its records in one range.
//
// pebble stops on a write error (a failed WAL write or rotation panics, a
// failed MANIFEST write is fatal, a failed flush is retried at once, for
// ever), and a cache must not. So the tier keeps pebble away from errors
// and is the one that gives up:
//   - every write first checks the room left (the filesystem's free space,
//     and pebble's own files and the segments against the bound, at most
//     every checkEvery); the writer first reclaims the oldest segments
//     while the tier is over its bound;
//   - a ballast file holds back enough of the filesystem for what pebble
//     has in flight; when a write hits ENOSPC anyway (another process filled
//     the disk) it is deleted, so pebble's retry succeeds, and the tier
//     stops writing;
//   - a write that fails (a segment's or pebble's), or takes longer than
//     writeStall, makes the tier read-only (one ERROR line); after a
//     back-off a write tries again;
//   - pebble's fatal errors make the tier off until a restart, instead of
//     stopping the process.
//
// While the tier takes no writes the cache keeps new objects in memory
// only; what the disk holds is still read.
type diskTier struct {
	db   *pebble.DB
	segs *segments
	dir  string
	log  *slog.Logger
	now  func() time.Time

	// bound is what every file of the tier may take together: the
	// segments, pebble's tables, logs and manifests, and the ballast.
	// memtable is pebble's memtable size, also the size of a log file,
	// sized from the bound.
	bound, memtable int64
	purgeSeq        atomic.Uint64
	// corrupt counts bodies read back with a wrong length or checksum.
	corrupt atomic.Int64
	// lastSeg is the newest segment a record named at load: new segments
	// come after it even when its file is gone, so that a record skipped
	// then never names a new one.
	lastSeg uint64

	// commit is held by every write, from its room check to its commit,
	// so that the writer's batches and the deletes land in order
	// (writebehind.go). It guards spare and stall, run's job and timer
	// kept for the next write.
	commit sync.Mutex
	wq     writeQueue
	jobs   chan *commitJob // to an idle committer
	spare  *commitJob
	stall  *time.Timer

	state    atomic.Int32 // a diskState
	failures atomic.Int64 // write failures, for the metric
	dead     chan struct{}
	deadOnce sync.Once
	closing  chan struct{}

	// relMu guards released: every use of db holds it shared, so that
	// release, which takes it alone, closes pebble between two uses.
	relMu    sync.RWMutex
	released bool

	// mu guards the fields below.
	mu      sync.Mutex
	retryAt time.Time
	backoff time.Duration
	// behind is set when a delete could not be written: the disk may hold
	// an object the cache dropped or purged, so it is cleared before it
	// takes writes again.
	behind bool
	// checked is when the room was last measured, used what pebble's files
	// and the ballast took then (the segments are counted as they grow),
	// and written what was written since.
	checked time.Time
	used    int64
	written int64
	// ballast is the size of the ballast file in place (0: none).
	ballast int64
	// openedReadOnly is set when pebble was opened read-only (no room at
	// start): writes wait for a restart.
	openedReadOnly bool
}

// diskState is the health of the persistent tier.
type diskState int32

const (
	diskOK       diskState = iota // reads and writes
	diskReadOnly                  // reads; writes wait for a retry after a back-off
	diskOff                       // nothing, until a restart
)

func (s diskState) String() string {
	return [...]string{"ok", "read-only", "off"}[s]
}

const (
	// writeStall bounds one write: a write pebble has not finished by
	// then makes the tier read-only, and the response that waited for it
	// completes from memory.
	writeStall = 2 * time.Second
	// openWait bounds pebble.Open at start: a directory that takes longer
	// leaves the cache in memory only, so that accel serves at once.
	openWait = 700 * time.Millisecond
	// closeWait bounds pebble's Close.
	closeWait = 2 * time.Second
	// checkEvery is how often the room left is measured at most.
	checkEvery = 100 * time.Millisecond
	// firstBackoff and maxBackoff bound the wait before a read-only tier
	// tries writing again; each failed try doubles it.
	firstBackoff = time.Second
	maxBackoff   = time.Minute
	// ballastName is the file holding back room for pebble's writes in
	// flight.
	ballastName = "accel-ballast"
)

var (
	errDiskOff      = errors.New("cache: persistent tier is off")
	errDiskReadOnly = errors.New("cache: persistent tier is read-only")
	errDiskStalled  = errors.New("cache: persistent tier write did not finish in time")
	errDiskFull     = errors.New("cache: filesystem of the persistent tier is full")
	errDiskBound    = errors.New("cache: persistent tier at its bound")
	errDiskReleased = errors.New("cache: persistent tier handed over to another process")
)

// diskFS is the filesystem under pebble and the segments; fault tests
// wrap it (errorfs).
var diskFS = vfs.Default

// diskKey is the key of a purge record.
func diskKey(kind byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, 9), kind), id)
}

// segKey is the key of an object's record ('o') or soft purge ('e').
func segKey(kind byte, seg, id uint64) []byte {
	return appendSegKey(make([]byte, 0, 17), kind, seg, id)
}

func appendSegKey(b []byte, kind byte, seg, id uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(append(b, kind), seg), id)
}

// diskSizes are pebble's sizes for a bound: memtables (and so log files)
// of a sixty-fourth of it, from 256 KiB to pebble's default 4 MiB (they
// are memory: two may be full at once), and a ballast of two memtables
// and a margin, enough for a flush in flight.
func diskSizes(bound int64) (memtable, ballast int64) {
	memtable = min(max(bound/64, 256<<10), 4<<20)
	return memtable, 2*memtable + 256<<10
}

// headroom is what the tier keeps free under its bound: a memtable's
// worth for pebble's logs, and a sixteenth of the bound for the output of
// a compaction in flight (written before its inputs are deleted) and the
// obsolete files pebble deletes in the background. Its compactions only
// rewrite metadata: the bodies are in the segments.
func headroom(bound int64) int64 {
	m, _ := diskSizes(bound)
	return m + bound/16
}

// dataBound is how many bytes of objects (bodies and metadata) the tier
// keeps under a bound: what the ballast and the headroom leave. Eviction
// aims there; the segments, which also hold the bodies of objects evicted
// or purged until their segment is reclaimed, are reclaimed to stay under
// the bound, the hard limit.
func dataBound(bound int64) int64 {
	_, r := diskSizes(bound)
	return max(bound-r-headroom(bound), bound/4)
}

// openDisk opens the persistent tier in dir. The bound shrinks to what the
// filesystem can give; a filesystem without room for pebble's start opens
// the tier read-only, and an open that takes longer than openWait fails.
func openDisk(dir string, bound int64, log *slog.Logger, now func() time.Time) (*diskTier, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	d := &diskTier{dir: dir, log: log, now: now, dead: make(chan struct{}), closing: make(chan struct{}),
		jobs: make(chan *commitJob)}
	fsu, err := vfs.Default.GetDiskUsage(dir)
	if err != nil {
		return nil, err
	}
	used, logs := dirUsage(dir)
	if fi, err := os.Stat(filepath.Join(dir, ballastName)); err == nil {
		d.ballast = fi.Size()
	}
	avail := int64(fsu.AvailBytes)
	if b := used + avail; b < bound {
		log.Warn("cache: the persistent tier's filesystem is smaller than its bound", "dir", dir,
			"bound", bound, "room", b)
		bound = b
	}
	d.bound = bound
	d.memtable, _ = diskSizes(bound)
	// Opening replays the logs into tables: that needs about their size,
	// plus a new log and manifest. The ballast is ours to give.
	need := logs + d.memtable + 1<<20
	_, roFS, _ := diskfs.Room(dir)
	readOnly := avail+d.ballast < need || roFS
	if !readOnly && d.ballast > 0 {
		if err := os.Remove(filepath.Join(dir, ballastName)); err == nil {
			d.ballast = 0
		}
	}
	opts := &pebble.Options{
		FS:                          vfs.OnDiskFull(diskFS, d.onDiskFull),
		Logger:                      pebbleLogger{d},
		EventListener:               &pebble.EventListener{BackgroundError: func(err error) { d.fail(err) }},
		MemTableSize:                uint64(d.memtable),
		MemTableStopWritesThreshold: 2,
		L0CompactionThreshold:       8,
		L0StopWritesThreshold:       16,
		LBaseMaxBytes:               min(max(bound/8, 1<<20), 64<<20),
		// Bodies are read once into the memory tier: pebble's block cache
		// only needs the index and metadata blocks (1 to 4 MiB, pebble's
		// default is 8).
		CacheSize: min(max(bound/256, 1<<20), 4<<20),
		// One compaction at a time: each writes its output before it
		// deletes its inputs, and that room comes out of the bound.
		CompactionConcurrencyRange: func() (int, int) { return 1, 1 },
		ReadOnly:                   readOnly,
	}
	opts.TargetFileSizes[0] = d.memtable
	// Every store of a tier that keeps evicting deletes an older record:
	// pebble's tombstone-density compactions then rewrote the bottom
	// level for every memtable flushed, and L0 compacted after four
	// flushes did nearly as much. Without the former, and with eight
	// flushes per L0 compaction, the bytes compactions write fell from
	// five times what is flushed to one and a half, and their CPU by half
	// (BenchmarkStoreMiss/disk). L0 holds at most sixteen memtables,
	// counted in the bound as all of pebble's files are.
	opts.Experimental.TombstoneDenseCompactionThreshold = -1
	// No block compression: snappy spent CPU on every flush and
	// compaction, both ways (measured when the bodies were in pebble:
	// its work took a fifth less CPU without it).
	opts.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	if roFS {
		// pebble takes its LOCK file even to read, which a read-only
		// filesystem refuses; nothing can write there, so no lock is
		// needed.
		opts.FS = noLockFS{opts.FS}
	}
	segs, err := openSegments(diskFS, dir)
	if err != nil {
		return nil, err
	}
	d.segs = segs
	db, err := diskfs.Open(dir, opts, openWait)
	if err != nil {
		segs.close()
	}
	if errors.Is(err, diskfs.ErrOpenTimeout) {
		// pebble may be retrying a write that cannot succeed: the
		// ENOSPC handler then waits instead of letting it spin.
		close(d.closing)
		d.kill(fmt.Errorf("opening %s took longer than %v", dir, openWait))
		return nil, fmt.Errorf("cache: opening %s took longer than %v", dir, openWait)
	}
	if err != nil {
		return nil, err
	}
	d.db = db
	d.checked, d.used = now(), d.measure()
	if readOnly {
		d.state.Store(int32(diskReadOnly))
		d.failures.Add(1)
		d.openedReadOnly = true
		log.Error("cache: persistent tier opened read-only until restart, new objects stay in memory", "dir", dir,
			"err", fmt.Errorf("%w: %d bytes free, %d needed", errDiskFull, avail+d.ballast, need))
		return d, nil
	}
	d.mu.Lock()
	err = d.placeBallastLocked()
	d.mu.Unlock()
	if err != nil {
		d.fail(err)
	}
	return d, nil
}

// noLockFS is a filesystem whose locks are free: for a read-only one.
type noLockFS struct{ vfs.FS }

func (noLockFS) Lock(string) (io.Closer, error) { return io.NopCloser(nil), nil }

// dirUsage sums the sizes of the files in dir, and of pebble's logs among
// them.
func dirUsage(dir string) (all, logs int64) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		all += fi.Size()
		if strings.HasSuffix(e.Name(), ".log") {
			logs += fi.Size()
		}
	}
	return all, logs
}

// ballastZeros is what the ballast is written from, a piece at a time. A
// buffer the ballast's size (8 MiB for a 1 GiB tier) was live in the
// collector's first cycle after start, which then let the heap grow to
// twice that before the next: 9 MB of garbage in the RSS of an idle
// process. Untouched, it is no resident memory.
var ballastZeros [64 << 10]byte

// placeBallastLocked writes the ballast file, of zeros so that the blocks
// are really taken on filesystems without fallocate.
func (d *diskTier) placeBallastLocked() error {
	_, size := diskSizes(d.bound)
	if d.ballast >= size {
		return nil
	}
	path := filepath.Join(d.dir, ballastName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	for left := size; left > 0 && err == nil; {
		n := min(left, int64(len(ballastZeros)))
		_, err = f.Write(ballastZeros[:n])
		left -= n
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return err
	}
	d.ballast = size
	return nil
}

// onDiskFull runs when one of pebble's writes hits ENOSPC, with pebble's
// writes held; the write is retried once when it returns. Deleting the
// ballast lets that retry, and whatever pebble has in flight, succeed. With
// no ballast left it waits out the back-off first, so that pebble's
// retries of a failed flush do not spin.
func (d *diskTier) onDiskFull() {
	d.mu.Lock()
	freed := d.ballast > 0
	if freed {
		_ = os.Remove(filepath.Join(d.dir, ballastName))
		d.ballast = 0
	}
	wait := d.backoff
	d.mu.Unlock()
	d.fail(errDiskFull)
	if freed {
		return
	}
	t := time.NewTimer(max(wait, firstBackoff))
	defer t.Stop()
	select {
	case <-t.C:
	case <-d.closing:
	}
}

// fail makes the tier read-only after a write error; the first failure of
// an outage is logged.
func (d *diskTier) fail(err error) {
	d.failures.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.state.CompareAndSwap(int32(diskOK), int32(diskReadOnly)) {
		return
	}
	d.backoff = firstBackoff
	d.retryAt = d.now().Add(d.backoff)
	d.log.Error("cache: persistent tier read-only, new objects stay in memory", "dir", d.dir, "err", err,
		"retry_in", d.backoff)
}

// kill turns the tier off for good: pebble cannot go on.
func (d *diskTier) kill(err error) {
	d.deadOnce.Do(func() {
		d.failures.Add(1)
		d.state.Store(int32(diskOff))
		close(d.dead)
		d.log.Error("cache: persistent tier off until restart, serving from memory", "dir", d.dir, "err", err)
	})
}

// measure is the size of every file of the tier.
func (d *diskTier) measure() int64 {
	u := int64(d.db.Metrics().DiskSpaceUsage())
	d.mu.Lock()
	defer d.mu.Unlock()
	return u + d.ballast
}

// writable reports whether a write of n bytes (0: a delete) may go to
// pebble now: the tier is healthy, or its back-off is over and a retry
// succeeds, and the write fits under the bound and in the filesystem.
// d.mu is never held while pebble is called: pebble calls back into the
// tier (fail, onDiskFull) with its own locks held.
func (d *diskTier) writable(n int64) bool {
	switch diskState(d.state.Load()) {
	case diskOff:
		return false
	case diskReadOnly:
		if !d.retry() {
			return false
		}
	}
	if err := d.remeasure(); err != nil {
		d.fail(err)
		return false
	}
	if n == 0 {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.overLocked(n) {
		return false
	}
	d.written += n
	return true
}

// remeasure measures the room again when it is due: checkEvery after the
// last time, or after a quarter of a memtable was written since.
func (d *diskTier) remeasure() error {
	now := d.now()
	d.mu.Lock()
	due := now.Sub(d.checked) >= checkEvery || d.written >= d.memtable/4
	if due {
		d.checked, d.written = now, 0
	}
	d.mu.Unlock()
	if !due {
		return nil
	}
	used, err := d.measure(), d.room()
	d.mu.Lock()
	d.used = used
	d.mu.Unlock()
	return err
}

// overLocked reports whether a write of n bytes would take the tier's
// files past its bound, less the headroom. d.mu is held.
func (d *diskTier) overLocked(n int64) bool {
	return d.used+d.segs.bytes.Load()+d.written+n+headroom(d.bound) > d.bound
}

// makeRoom reclaims the oldest segments older than before while a write
// of n bytes would take the tier past its bound.
func (d *diskTier) makeRoom(n int64, before uint64) {
	if err := d.remeasure(); err != nil {
		d.fail(err)
		return
	}
	for {
		d.mu.Lock()
		over := d.overLocked(n)
		d.mu.Unlock()
		if !over || !d.reclaim(before) {
			return
		}
	}
}

// room checks that the filesystem takes writes and has a log file's worth
// of room.
func (d *diskTier) room() error {
	if _, ro, _ := diskfs.Room(d.dir); ro {
		return fmt.Errorf("%w: %s is on a read-only filesystem", errDiskReadOnly, d.dir)
	}
	fsu, err := vfs.Default.GetDiskUsage(d.dir)
	if err != nil {
		return err
	}
	if int64(fsu.AvailBytes) < d.memtable {
		return fmt.Errorf("%w: %d bytes free", errDiskFull, fsu.AvailBytes)
	}
	return nil
}

// retry ends a read-only spell once its back-off is over and the
// filesystem has room again: the ballast back in place and, if deletes
// were lost meanwhile, the disk cleared. One caller retries at a time.
func (d *diskTier) retry() bool {
	d.mu.Lock()
	now := d.now()
	if diskState(d.state.Load()) != diskReadOnly || now.Before(d.retryAt) || d.openedReadOnly {
		d.mu.Unlock()
		return diskState(d.state.Load()) == diskOK
	}
	// Whoever else asks meanwhile waits for the next back-off.
	d.retryAt = now.Add(d.backoff)
	behind := d.behind
	err := d.room()
	if err == nil {
		err = d.placeBallastLocked()
	}
	d.mu.Unlock()
	if err == nil && behind {
		b := d.db.NewBatch()
		_ = b.DeleteRange([]byte{0}, []byte{0xff}, nil)
		err = d.run(b, true, nil)
	}
	used := d.measure()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.failures.Add(1)
		d.backoff = min(2*d.backoff, maxBackoff)
		d.retryAt = now.Add(d.backoff)
		return false
	}
	if behind {
		d.behind = false
	}
	d.checked, d.written, d.used = now, 0, used
	d.state.Store(int32(diskOK))
	d.log.Info("cache: persistent tier writable again", "dir", d.dir)
	return true
}

// write commits a batch built by fill if the tier takes writes; size is
// what it adds. A delete (size 0) that cannot be written leaves the tier
// behind: the disk is cleared before it takes writes again.
func (d *diskTier) write(size int64, sync bool, fill func(*pebble.Batch)) error {
	return d.writeAfter(size, sync, fill, nil)
}

// writeAfter is write with first, when not nil, run before the commit and
// within the same writeStall: the writer's segment writes, which must be
// on disk before the records that name them.
func (d *diskTier) writeAfter(size int64, sync bool, fill func(*pebble.Batch), first func() error) error {
	if !d.enter() {
		return errDiskReleased
	}
	defer d.relMu.RUnlock()
	d.commit.Lock()
	defer d.commit.Unlock()
	if !d.writable(size) {
		if size == 0 {
			d.setBehind()
		}
		if diskState(d.state.Load()) == diskOK {
			return errDiskBound
		}
		return errDiskReadOnly
	}
	b := d.db.NewBatch()
	fill(b)
	err := d.run(b, sync, first)
	if err != nil {
		d.fail(err)
		if size == 0 {
			d.setBehind()
		}
	}
	return err
}

// run commits b, after first if it is not nil, on a committer goroutine
// and waits up to writeStall: a write pebble cannot finish (its memtables
// full behind a failed flush) or a segment write that hangs must not hold
// the response that waits for it, nor a drain. d.commit is held.
func (d *diskTier) run(b *pebble.Batch, sync bool, first func() error) error {
	j := d.spare
	d.spare = nil
	if j == nil {
		j = &commitJob{done: make(chan error, 1)}
	}
	j.b, j.sync, j.first = b, sync, first
	j.phase.Store(0)
	select {
	case d.jobs <- j:
	default:
		// No committer waits: the first write, or the last committer
		// is stuck in a write it was given up on.
		go d.committer(j)
	}
	if d.stall == nil {
		d.stall = time.NewTimer(writeStall)
	} else {
		d.stall.Reset(writeStall)
	}
	defer d.stall.Stop()
	select {
	case err := <-j.done:
		j.b, j.first = nil, nil
		d.spare = j
		return err
	case <-d.dead:
		return errDiskOff
	case <-d.stall.C:
		j.phase.CompareAndSwap(0, 2)
		return errDiskStalled
	}
}

// commitJob is one write for a committer.
type commitJob struct {
	b     *pebble.Batch
	sync  bool
	first func() error
	// phase is 0 while first runs, 1 once the commit began, 2 when run
	// gave up waiting before that.
	phase atomic.Int32
	done  chan error // capacity 1
}

// committer does the tier's writes, one at a time as run hands them over,
// until the tier closes: one goroutine whose stack grew to pebble's depth
// once, instead of a new one per write (their stack growth was a tenth
// of the store path's CPU).
func (d *diskTier) committer(j *commitJob) {
	for {
		d.do(j)
		select {
		case j = <-d.jobs:
		case <-d.closing:
			return
		}
	}
}

// do runs j and sends its result.
func (d *diskTier) do(j *commitJob) {
	defer func() {
		// pebble panics when its log write fails (EIO): the tier is off
		// from then on (pebble's state is not to be trusted, and its
		// commit lock may be held), the process goes on.
		if r := recover(); r != nil {
			d.kill(fmt.Errorf("pebble: %v", r))
			j.done <- errDiskOff
		}
	}()
	if j.first != nil {
		if err := j.first(); err != nil {
			_ = j.b.Close()
			j.done <- err
			return
		}
		if !j.phase.CompareAndSwap(0, 1) {
			// Given up on: its objects went to memory, and a delete may
			// have committed since, which these records would undo.
			_ = j.b.Close()
			return
		}
	}
	err := j.b.Commit(writeOpts(j.sync))
	_ = j.b.Close()
	j.done <- err
}

func (d *diskTier) readable() bool { return diskState(d.state.Load()) != diskOff }

func (d *diskTier) get(o *object) ([]byte, bool) {
	// A queued body is served even as the tier is released or stops: the
	// writer hands it to memory before it lets go of it.
	if b, ok := d.wq.queued(o); ok {
		return b, true
	}
	if o.seg == 0 || !d.enter() {
		return nil, false
	}
	defer d.relMu.RUnlock()
	if !d.readable() {
		return nil, false
	}
	b := make([]byte, o.size)
	found, err := d.segs.read(o.seg, b, o.off)
	if !found || errors.Is(err, os.ErrClosed) {
		// Its segment was reclaimed: the object is gone.
		return nil, false
	}
	if err != nil || crc32.Checksum(b, castagnoli) != o.sum {
		d.corrupt.Add(1)
		return nil, false
	}
	return b, true
}

func (d *diskTier) del(o *object) {
	_ = d.drop([]*object{o}, false)
}

// drop deletes objects' records in one batch; sync makes a purge durable
// before it is reported done. Objects kept in memory only have none. A
// soft purge's record ('e') of a dropped object is left to go with its
// segment (or at the next load): it applies to nothing, and a tombstone
// for each of the many that never had one cost pebble's compactions.
func (d *diskTier) drop(objs []*object, sync bool) error {
	d.wq.cancel(objs, false)
	if !slices.ContainsFunc(objs, onDisk) {
		return nil
	}
	return d.write(0, sync, func(b *pebble.Batch) {
		var k [17]byte
		for _, o := range objs {
			if onDisk(o) {
				_ = b.Delete(appendSegKey(k[:0], 'o', o.seg, o.id), nil)
			}
		}
	})
}

// onDisk reports whether o's body went to the segments (or is queued for
// them): only then has it records.
func onDisk(o *object) bool { return o.seg != 0 }

// set and remove write one record.
func (d *diskTier) set(key, value []byte, sync bool) error {
	return d.write(int64(len(key)+len(value)), sync, func(b *pebble.Batch) { _ = b.Set(key, value, nil) })
}

func (d *diskTier) remove(key []byte, sync bool) error {
	return d.write(0, sync, func(b *pebble.Batch) { _ = b.Delete(key, nil) })
}

// tombstone durably records that objs are purged, in one small write: a
// restart skips them even before forget deletes their records.
func (d *diskTier) tombstone(objs []*object) ([]byte, error) {
	key := binary.BigEndian.AppendUint64([]byte{'x'}, d.purgeSeq.Add(1))
	v := make([]byte, 0, 5*len(objs))
	for _, o := range objs {
		v = binary.AppendUvarint(v, o.id)
	}
	err := d.set(key, v, true)
	if err != nil {
		d.setBehind()
	}
	return key, err
}

// setBehind records that the disk missed a delete or purge: it is cleared
// before it takes writes again.
func (d *diskTier) setBehind() {
	d.mu.Lock()
	d.behind = true
	d.mu.Unlock()
}

// update rewrites the metadata of objects updated in place (a 304), so a
// restart sees the new headers and freshness.
func (d *diskTier) update(o *object) error {
	d.wq.replace(o)
	if !onDisk(o) {
		return nil
	}
	meta := o.encode()
	return d.write(int64(len(meta)), false, func(b *pebble.Batch) {
		_ = b.Set(segKey('o', o.seg, o.id), meta, nil)
		_ = b.Delete(segKey('e', o.seg, o.id), nil)
	})
}

// expire records soft purges: eight bytes per object instead of a rewrite
// of its metadata.
func (d *diskTier) expire(objs []*object, sync bool) error {
	return d.write(int64(25*len(objs)), sync, func(b *pebble.Batch) {
		for _, o := range objs {
			if onDisk(o) {
				_ = b.Set(segKey('e', o.seg, o.id), binary.BigEndian.AppendUint64(nil, uint64(o.lifetime)), nil)
			}
		}
	})
}

// dropAll deletes every record.
func (d *diskTier) dropAll() error {
	d.wq.cancel(nil, true)
	return d.write(0, true, func(b *pebble.Batch) { _ = b.DeleteRange([]byte{0}, []byte{0xff}, nil) })
}

func writeOpts(sync bool) *pebble.WriteOptions {
	if sync {
		return pebble.Sync
	}
	return pebble.NoSync
}

// load calls fn with every stored object, its soft purges applied.
// Records that do not decode, of purged objects, or whose body is not in
// the segments (a segment deleted or cut short while accel was down) are
// deleted; so are the records of an older format, which kept bodies in
// pebble: the cache starts without them.
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
	var stale [][]byte
	// cut holds the soft purges by id, each with its key; those left once
	// the objects are loaded name none, and go.
	type softPurge struct {
		key      []byte
		lifetime int64
	}
	cut := map[uint64]softPurge{}
	if err := d.scanKeys('e', func(k, v []byte) {
		if len(k) != 17 || len(v) != 8 {
			stale = append(stale, k)
		} else {
			cut[binary.BigEndian.Uint64(k[9:])] = softPurge{k, int64(binary.BigEndian.Uint64(v))}
		}
	}); err != nil {
		return err
	}
	gone := 0
	err := d.scanKeys('o', func(k, v []byte) {
		if len(k) != 17 {
			stale = append(stale, k)
			return
		}
		seg, id := binary.BigEndian.Uint64(k[1:]), binary.BigEndian.Uint64(k[9:])
		d.lastSeg = max(d.lastSeg, seg)
		o, err := decodeObject(v)
		switch {
		case err != nil || o.id != id || o.seg != seg || dead[id]:
		case !d.segs.holds(seg, o.off, o.size):
			gone++
		default:
			if p, ok := cut[id]; ok && string(p.key[1:9]) == string(k[1:9]) {
				o.lifetime = min(o.lifetime, max(0, timeDuration(p.lifetime)))
				delete(cut, id)
			}
			fn(o)
			return
		}
		stale = append(stale, k)
	})
	if err != nil {
		return err
	}
	for _, p := range cut {
		stale = append(stale, p.key)
	}
	old, err := d.has('b')
	if err != nil {
		return err
	}
	if gone > 0 {
		d.log.Warn("cache: records whose bodies are gone from the segments dropped", "dir", d.dir, "records", gone)
	}
	if diskState(d.state.Load()) != diskOK {
		// A read-only tier keeps its records; they are skipped again on
		// the next start.
		return nil
	}
	if len(stale) > 0 || old {
		if err := d.write(0, true, func(b *pebble.Batch) {
			for _, k := range stale {
				_ = b.Delete(k, nil)
			}
			if old {
				_ = b.DeleteRange([]byte{'b'}, []byte{'b' + 1}, nil)
			}
		}); err != nil {
			return err
		}
	}
	for _, k := range tombs {
		if err := d.remove(k, true); err != nil {
			return err
		}
	}
	return nil
}

// scan calls fn with the id and value of each purge record of kind.
func (d *diskTier) scan(kind byte, fn func(id uint64, v []byte)) error {
	return d.scanKeys(kind, func(k, v []byte) {
		if len(k) == 9 {
			fn(binary.BigEndian.Uint64(k[1:]), v)
		}
	})
}

// has reports whether a record of kind is stored.
func (d *diskTier) has(kind byte) (bool, error) {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kind}, UpperBound: []byte{kind + 1}})
	if err != nil {
		return false, err
	}
	ok := it.First()
	return ok, it.Close()
}

// scanKeys calls fn with a copy of each key of kind and of its value.
func (d *diskTier) scanKeys(kind byte, fn func(k, v []byte)) error {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kind}, UpperBound: []byte{kind + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return errors.Join(err, it.Close())
		}
		fn(slices.Clone(it.Key()), slices.Clone(v))
	}
	return it.Close()
}

// enter starts a use of db; false when the tier was released. A true
// answer holds relMu shared until the caller's RUnlock.
func (d *diskTier) enter() bool {
	d.relMu.RLock()
	if d.released {
		d.relMu.RUnlock()
		return false
	}
	return true
}

// release closes pebble for good while the cache goes on: the reads and
// writes running now finish first, later ones find nothing (a read is a
// miss, a write keeps the object in memory only). A seamless restart
// uses it to hand the directory and its lock to the new process.
func (d *diskTier) release() error {
	d.relMu.Lock()
	was := d.released
	d.released = true
	d.relMu.Unlock()
	if was {
		return nil
	}
	d.log.Info("cache: persistent tier closed for the next process; serving from memory", "dir", d.dir)
	err := d.close()
	d.state.Store(int32(diskOff))
	return err
}

// close closes pebble, waiting at most closeWait: a stuck disk must not
// hold a drain. An off tier is left as it is; pebble cannot close it.
// After release it has nothing left to close.
func (d *diskTier) close() error {
	select {
	case <-d.closing:
		return nil
	default:
	}
	close(d.closing)
	if d.wq.done != nil {
		// The writer commits what was queued, each batch bounded by
		// writeStall (after a stall the tier takes no more writes).
		<-d.wq.done
	}
	if !d.readable() {
		d.segs.close()
		return nil
	}
	done := make(chan error, 1)
	go func() {
		err := d.db.Close()
		d.segs.close()
		done <- err
	}()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("cache: closing %s took longer than %v", d.dir, closeWait)
	}
}

// pebbleLogger sends pebble's messages to accel's log: its routine
// chatter at debug level, its errors as warnings (the tier logs the error
// that changes its state). A fatal error turns the tier off and parks the
// goroutine that met it, since pebble requires Fatalf not to return and
// accel must go on serving.
type pebbleLogger struct{ d *diskTier }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.d.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.d.log.Warn("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.d.kill(fmt.Errorf("pebble: "+format, args...))
	select {}
}
