package cache

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// segFiles returns the paths of dir's segment files, oldest first.
func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, segPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestDiskSegmentDamaged: a segment damaged, cut short or deleted under
// its records, while accel is down or while it runs, never serves a wrong
// byte: the object is a miss fetched again from the origin, and a body
// read back wrong is counted.
func TestDiskSegmentDamaged(t *testing.T) {
	const size = 4000
	for _, tc := range []struct {
		name string
		// damage harms the segment file; open says whether the cache is
		// running then.
		damage      func(t *testing.T, path string)
		open        bool
		wantCorrupt int64
	}{
		{"flipped", func(t *testing.T, p string) { flip(t, p, size/2) }, false, 1},
		{"cut short", func(t *testing.T, p string) { os.Truncate(p, size/2) }, false, 0},
		{"deleted", func(t *testing.T, p string) { os.Remove(p) }, false, 0},
		{"cut short while open", func(t *testing.T, p string) { os.Truncate(p, size/2) }, true, 1},
		{"flipped while open", func(t *testing.T, p string) { flip(t, p, size-1) }, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			e := newEnv(t, Config{Dir: dir, DiskBytes: 16 << 20}, sizedBodies)
			path := fmt.Sprintf("/%d/x", size)
			e.getWhole(path, size)
			e.getWhole("/100/other", 100)
			e.settle()
			files := segFiles(t, dir)
			if len(files) != 1 {
				t.Fatalf("segment files %q, want one", files)
			}
			if !tc.open {
				tc.damage(t, files[0])
			}
			e.reopen(dir) // memory is empty: bodies come from the segment
			if tc.open {
				tc.damage(t, files[0])
			}
			before := e.o.hits.Load()
			if r := e.getWhole(path, size); hasStatus(r, "; hit") {
				t.Errorf("damaged object served as a hit: %q", r.get("Cache-Status"))
			}
			if got := e.o.hits.Load() - before; got != 1 {
				t.Errorf("origin saw %d requests, want 1", got)
			}
			if got := e.c.Stats().DiskCorrupt; got != tc.wantCorrupt {
				t.Errorf("%d corrupt bodies counted, want %d", got, tc.wantCorrupt)
			}
			// Fetched again, it is stored again, in a new segment.
			e.settle()
			if r := e.getWhole(path, size); !hasStatus(r, "; hit") {
				t.Errorf("refetched object not a hit: %q", r.get("Cache-Status"))
			}
		})
	}
}

// flip inverts the byte at off of the file at path.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestDiskSegmentsReclaimed: a tier written four times over reclaims its
// oldest segments: the files stay under the bound, the oldest objects are
// evicted with their segment (misses), the newest are hits, and a restart
// brings back exactly the objects whose segments are left, each whole.
func TestDiskSegmentsReclaimed(t *testing.T) {
	const bound, size = 16 << 20, 20 << 10
	dir := t.TempDir()
	e := newEnv(t, Config{Dir: dir, DiskBytes: bound, MemoryBytes: 4 << 20}, sizedBodies)
	n := 4 * bound / size
	path := func(i int) string { return fmt.Sprintf("/%d/o-%d", size, i) }
	for i := range n {
		e.getWhole(path(i), size)
		e.settle()
	}
	if got := du(t, dir); got > bound {
		t.Errorf("the tier's files take %d bytes, bound %d", got, bound)
	}
	s := e.c.Stats()
	if s.Evictions == 0 || s.Objects >= int64(n) || s.DiskState != "ok" {
		t.Fatalf("after writing %d objects: %+v", n, s)
	}
	if max := int(bound / segSize(bound)); len(segFiles(t, dir)) > max {
		t.Errorf("%d segment files, want at most %d", len(segFiles(t, dir)), max)
	}
	kept := s.Objects
	e.reopen(dir)
	if got := e.c.Stats().Objects; got != kept {
		t.Errorf("a restart indexed %d objects, want the %d kept", got, kept)
	}
	// The newest objects are hits, read from the segments (memory is
	// empty); the oldest, whose segment went, is a miss.
	before := e.o.hits.Load()
	for i := n - 50; i < n; i++ {
		if r := e.getWhole(path(i), size); !hasStatus(r, "; hit") {
			t.Errorf("%s not a hit after a restart: %q", path(i), r.get("Cache-Status"))
		}
	}
	if r := e.getWhole(path(0), size); hasStatus(r, "; hit") {
		t.Errorf("oldest object, in a reclaimed segment, a hit: %q", r.get("Cache-Status"))
	}
	if got, c := e.o.hits.Load()-before, e.c.Stats().DiskCorrupt; got != 1 || c != 0 {
		t.Errorf("origin saw %d requests (want 1), %d corrupt", got, c)
	}
}

// segFault fails or holds the filesystem operations matched by match.
type segFault struct {
	mu    sync.Mutex
	match func(errorfs.Op) bool
	err   error         // returned by a matched operation
	hold  chan struct{} // a matched operation waits until it is closed
	held  chan struct{} // closed when an operation is held
}

func (f *segFault) MaybeError(op errorfs.Op) error {
	f.mu.Lock()
	if f.match == nil || !f.match(op) {
		f.mu.Unlock()
		return nil
	}
	err, hold, held := f.err, f.hold, f.held
	f.hold, f.held = nil, nil // one operation is held
	f.mu.Unlock()
	if hold != nil {
		close(held)
		<-hold
		return nil
	}
	return err
}

func (f *segFault) String() string { return "segFault" }

func (f *segFault) set(match func(errorfs.Op) bool, err error) {
	f.mu.Lock()
	f.match, f.err = match, err
	f.mu.Unlock()
}

func segmentWrite(op errorfs.Op) bool {
	return op.Kind.ReadOrWrite() == errorfs.OpIsWrite && strings.Contains(op.Path, segPrefix)
}

// TestDiskSegmentWriteError: the writes of the segments fail (EIO) while
// pebble's succeed. The tier turns read-only with one ERROR line, not off;
// misses are answered whole and kept in memory; what was stored before is
// still served; once the disk works again and the back-off is over, the
// tier takes writes again, and a restart finds what it stored.
func TestDiskSegmentWriteError(t *testing.T) {
	f := &segFault{}
	faultFS(t, f)
	dir := t.TempDir()
	logs := &logSink{}
	e := newEnv(t, Config{Dir: dir, Log: slog.New(logs)}, sizedBodies)
	const size = 20 << 10
	e.getWhole(fmt.Sprintf("/%d/before", size), size)
	e.settle()
	f.set(segmentWrite, syscall.EIO)
	for i := range 5 {
		e.getWhole(fmt.Sprintf("/%d/failed-%d", size, i), size)
		e.settle()
	}
	s := e.c.Stats()
	if s.DiskState != "read-only" || s.DiskFailures == 0 {
		t.Errorf("disk state %q, %d failures after EIO on a segment", s.DiskState, s.DiskFailures)
	}
	if errs := logs.errors(); len(errs) != 1 || !strings.Contains(errs[0], "input/output error") {
		t.Errorf("want one ERROR line with the error, got:\n%s", logs)
	}
	before := e.o.hits.Load()
	for i := range 5 {
		if r := e.getWhole(fmt.Sprintf("/%d/failed-%d", size, i), size); !hasStatus(r, "; hit") {
			t.Errorf("object kept in memory not a hit: %q", r.get("Cache-Status"))
		}
	}
	if r := e.getWhole(fmt.Sprintf("/%d/before", size), size); !hasStatus(r, "; hit") {
		t.Errorf("stored object not a hit: %q", r.get("Cache-Status"))
	}
	if got := e.o.hits.Load() - before; got != 0 {
		t.Errorf("origin saw %d requests, want none", got)
	}

	f.set(nil, nil)
	e.clk.advance(maxBackoff)
	e.getWhole(fmt.Sprintf("/%d/later", size), size)
	e.settle()
	if s := e.c.Stats(); s.DiskState != "ok" {
		t.Fatalf("disk state %q once segments write again\n%s", s.DiskState, logs)
	}
	e.reopen(dir)
	before = e.o.hits.Load()
	for _, p := range []string{"before", "later"} {
		if r := e.getWhole(fmt.Sprintf("/%d/%s", size, p), size); !hasStatus(r, "; hit") {
			t.Errorf("%s not a hit after a restart: %q", p, r.get("Cache-Status"))
		}
	}
	if r := e.getWhole(fmt.Sprintf("/%d/failed-0", size), size); hasStatus(r, "; hit") {
		t.Errorf("object whose write failed a hit after a restart: %q", r.get("Cache-Status"))
	}
	if got, c := e.o.hits.Load()-before, e.c.Stats().DiskCorrupt; got != 1 || c != 0 {
		t.Errorf("origin saw %d requests (want 1), %d corrupt", got, c)
	}
}

// TestDiskKilledMidBatch: a kill -9 while a batch's segment write is
// under way (the directory copied while that write hangs). No record of
// the batch is in pebble before its bodies are written; a restart from
// the copy serves what was committed before, takes the object in flight
// for a miss with nothing counted corrupt, and stores new objects in a
// segment no record names.
func TestDiskKilledMidBatch(t *testing.T) {
	f := &segFault{}
	faultFS(t, f)
	dir := t.TempDir()
	e := newEnv(t, Config{Dir: dir, DiskBytes: 16 << 20}, sizedBodies)
	const size = 3000
	e.getWhole(fmt.Sprintf("/%d/committed", size), size)
	e.settle()
	e.reopen(dir) // on disk, pebble's log included
	records := func(c *Cache) int {
		n := 0
		if err := c.disk.scanKeys('o', func(k, v []byte) { n++ }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	hold, held := make(chan struct{}), make(chan struct{})
	f.mu.Lock()
	f.match, f.hold, f.held = segmentWrite, hold, held
	f.mu.Unlock()
	e.getWhole(fmt.Sprintf("/%d/in-flight", size), size)
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the segment write never came")
	}
	if n := records(e.c); n != 1 {
		t.Errorf("%d records while the body is not written yet, want the 1 committed before", n)
	}
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	close(hold)
	e.settle()
	if n := records(e.c); n != 2 {
		t.Errorf("%d records once the body is written, want 2", n)
	}
	f.set(nil, nil)

	c, err := Open(Config{Dir: crashed, DiskBytes: 16 << 20, Now: e.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.c.Close()
	e.c = c
	before := e.o.hits.Load()
	if r := e.getWhole(fmt.Sprintf("/%d/committed", size), size); !hasStatus(r, "; hit") {
		t.Errorf("committed object not a hit: %q", r.get("Cache-Status"))
	}
	if r := e.getWhole(fmt.Sprintf("/%d/in-flight", size), size); hasStatus(r, "; hit") {
		t.Errorf("object whose records never committed a hit: %q", r.get("Cache-Status"))
	}
	e.settle()
	if got := e.o.hits.Load() - before; got != 1 || c.Stats().DiskCorrupt != 0 {
		t.Errorf("origin saw %d requests (want 1), %d corrupt", got, c.Stats().DiskCorrupt)
	}
	e.reopen(crashed)
	for _, p := range []string{"committed", "in-flight"} {
		if r := e.getWhole(fmt.Sprintf("/%d/%s", size, p), size); !hasStatus(r, "; hit") {
			t.Errorf("%s not a hit after another restart: %q", p, r.get("Cache-Status"))
		}
	}
}

// copyDir copies the regular files of src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDiskSegmentsUnderLoad: clients ask concurrently for more objects
// than the tier holds, its memory tier too small for them, so that bodies
// are read from segments while the writer appends and reclaims others.
// Every response is whole, no body is counted corrupt, the tier stays
// writable and under its bound.
func TestDiskSegmentsUnderLoad(t *testing.T) {
	const bound, size, objects, workers, requests = 8 << 20, 20 << 10, 600, 4, 300
	dir := t.TempDir()
	e := newEnv(t, Config{Dir: dir, DiskBytes: bound, MemoryBytes: 1 << 20}, sizedBodies)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range requests {
				path := fmt.Sprintf("/%d/o-%d", size, r.IntN(objects))
				rec, _, err := e.do("GET", path)
				if err != nil {
					t.Errorf("GET %s: %v", path, err)
					return
				}
				if got := rec.body.Bytes(); string(got) != string(body(path, size)) {
					t.Errorf("GET %s: %d bytes, not the body (%q)", path, len(got), rec.get("Cache-Status"))
					return
				}
			}
		}()
	}
	wg.Wait()
	e.settle()
	s := e.c.Stats()
	t.Logf("%+v, %d segment files", s, len(segFiles(t, dir)))
	if s.DiskCorrupt != 0 || s.DiskState != "ok" || s.Evictions == 0 || s.Hits == 0 {
		t.Errorf("after the load: %+v", s)
	}
	if got := du(t, dir); got > bound {
		t.Errorf("the tier's files take %d bytes, bound %d", got, bound)
	}
}

// TestDiskOlderFormatDropped: a directory written by an accel that kept
// bodies in pebble ('o' id and 'b' id records) opens: those records are
// dropped (the cache starts without them), and what is stored from then on
// survives a restart.
func TestDiskOlderFormatDropped(t *testing.T) {
	dir := t.TempDir()
	d, err := openDisk(dir, 16<<20, slog.Default(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	o := &object{id: 7, uri: "http://example.com/old", status: 200, size: 3, sum: 1}
	o.setFields(nil)
	// The older keys: the id alone, no segment.
	d.db.Set(diskKey('o', 7), o.encode(), nil)
	d.db.Set(diskKey('b', 7), []byte("old"), nil)
	d.db.Set(diskKey('e', 7), make([]byte, 8), nil)
	d.close()

	e := newEnv(t, Config{Dir: dir, DiskBytes: 16 << 20}, sizedBodies)
	if n := e.c.Stats().Objects; n != 0 {
		t.Errorf("%d objects indexed from records of the older format", n)
	}
	for _, kind := range []byte("obe") {
		n := 0
		e.c.disk.scanKeys(kind, func(k, v []byte) { n++ })
		if n != 0 {
			t.Errorf("%d records of kind %q left", n, kind)
		}
	}
	e.getWhole("/100/new", 100)
	e.settle()
	e.reopen(dir)
	if r := e.getWhole("/100/new", 100); !hasStatus(r, "; hit") {
		t.Errorf("object stored after the upgrade not a hit after a restart: %q", r.get("Cache-Status"))
	}
}

// TestDiskPutRefusedLeavesNoPlace: an object the disk does not take (a
// copy of a stored one, as a compressed sibling starts, while the tier is
// read-only) names no place in the segments, so that no record or read
// ever points it at another object's body.
func TestDiskPutRefusedLeavesNoPlace(t *testing.T) {
	e := newEnv(t, Config{Dir: t.TempDir(), DiskBytes: 16 << 20, Log: slog.New(&logSink{})}, sizedBodies)
	e.getWhole("/100/a", 100)
	e.settle()
	o, _, _ := e.c.lookup("http://example.com/100/a", "", nil)
	if o == nil || !onDisk(o) {
		t.Fatalf("stored object %+v not on disk", o)
	}
	e.c.disk.fail(errDiskFull)
	n := o.clone()
	if e.c.disk.put(n, []byte("other")) || onDisk(n) {
		t.Errorf("refused put left the object at segment %d offset %d", n.seg, n.off)
	}
}

// TestDiskSegmentsKeepHotObjects: an object read all along while the tier
// is written over several times is never dropped with its segment: it is
// written again at the head, so the origin sees it once, and a restart
// still finds it on disk.
func TestDiskSegmentsKeepHotObjects(t *testing.T) {
	const bound, size = 16 << 20, 20 << 10
	dir := t.TempDir()
	e := newEnv(t, Config{Dir: dir, DiskBytes: bound, MemoryBytes: 4 << 20}, sizedBodies)
	const hot = "/1000/hot"
	e.getWhole(hot, 1000)
	e.settle()
	for i := range 3 * bound / size {
		e.getWhole(fmt.Sprintf("/%d/o-%d", size, i), size)
		e.settle()
		if r := e.getWhole(hot, 1000); !hasStatus(r, "; hit") {
			t.Fatalf("hot object a miss after %d stores: %q", i, r.get("Cache-Status"))
		}
	}
	if s := e.c.Stats(); s.Evictions == 0 {
		t.Fatalf("nothing reclaimed: %+v", s)
	}
	if files := segFiles(t, dir); filepath.Base(files[0]) == segName(1) {
		t.Fatalf("the first segment, where the hot object was stored, is still there")
	}
	e.reopen(dir)
	if r := e.getWhole(hot, 1000); !hasStatus(r, "; hit") {
		t.Errorf("hot object not on disk after a restart: %q", r.get("Cache-Status"))
	}
}
