package cache

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accel-proxy/accel/internal/testfs"
)

// logSink is a slog handler that keeps what the cache logs.
type logSink struct {
	mu   sync.Mutex
	recs []string // "LEVEL msg err"
}

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *logSink) WithAttrs([]slog.Attr) slog.Handler       { return s }
func (s *logSink) WithGroup(string) slog.Handler            { return s }
func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			line += " err=" + a.Value.String()
		}
		return true
	})
	s.mu.Lock()
	s.recs = append(s.recs, line)
	s.mu.Unlock()
	return nil
}

// errors returns the ERROR lines.
func (s *logSink) errors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.recs {
		if strings.HasPrefix(r, "ERROR") {
			out = append(out, r)
		}
	}
	return out
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.recs, "\n")
}

// diskEnv is a cache whose persistent tier is on a small real filesystem,
// in front of an origin answering every path with a cacheable body of the
// size the path names (/N/anything: N bytes).
func diskEnv(t *testing.T, fsSize int64, cfg Config) (*env, string, *logSink) {
	t.Helper()
	mnt := testfs.Mount(t, fsSize)
	cfg.Dir = filepath.Join(mnt, "cache")
	sink := &logSink{}
	cfg.Log = slog.New(sink)
	e := newEnv(t, cfg, sizedBodies)
	return e, mnt, sink
}

func sizedBodies(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(strings.Split(r.URL.Path, "/")[1])
	w.Header().Set("Cache-Control", "max-age=600")
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.Write(body(r.URL.Path, n))
}

// body is the deterministic body of path: n bytes that differ per path
// and that pebble cannot compress, so that the bytes on disk are real.
func body(path string, n int) []byte {
	var seed [32]byte
	copy(seed[:], path)
	b := make([]byte, n)
	rand.NewChaCha8(seed).Read(b)
	return b
}

// getWhole fetches path and fails unless the whole body came back.
func (e *env) getWhole(path string, n int) *recorder {
	e.t.Helper()
	r := e.get(path)
	if got := r.body.Bytes(); string(got) != string(body(path, n)) {
		e.t.Fatalf("GET %s: %d bytes, want %d; Cache-Status %q", path, len(got), n, r.get("Cache-Status"))
	}
	return r
}

// TestDiskFilledByOthers: the filesystem under the persistent tier fills
// up (another process writes it full). Misses are answered whole and kept
// in memory, hits are served, the tier turns read-only with one ERROR line
// and the metric, and once the room is back and the back-off is over it
// takes writes again.
func TestDiskFilledByOthers(t *testing.T) {
	e, mnt, logs := diskEnv(t, 16<<20, Config{})
	const size = 40 << 10
	for i := range 5 {
		e.getWhole(fmt.Sprintf("/%d/before-%d", size, i), size)
		e.settle()
	}
	filler := testfs.Fill(t, mnt, 64<<10)
	e.clk.advance(time.Second) // the room is measured at most every 100ms
	before := e.o.hits.Load()
	for i := range 40 {
		e.getWhole(fmt.Sprintf("/%d/after-%d", size, i), size)
		e.settle()
	}
	for i := range 5 {
		if r := e.getWhole(fmt.Sprintf("/%d/before-%d", size, i), size); !hasStatus(r, "; hit") {
			t.Errorf("stored object not served as a hit: %q", r.get("Cache-Status"))
		}
	}
	if r := e.getWhole(fmt.Sprintf("/%d/after-%d", size, 39), size); !hasStatus(r, "; hit") {
		t.Errorf("object kept in memory not served as a hit: %q", r.get("Cache-Status"))
	}
	if got := e.o.hits.Load() - before; got != 40 {
		t.Errorf("origin saw %d requests, want 40", got)
	}
	s := e.c.Stats()
	if s.DiskState != "read-only" || s.DiskFailures == 0 {
		t.Errorf("disk state %q, %d failures; want read-only and counted", s.DiskState, s.DiskFailures)
	}
	if errs := logs.errors(); len(errs) != 1 || !strings.Contains(errs[0], "read-only") {
		t.Errorf("want one ERROR line saying read-only, got:\n%s", logs)
	}

	// Room again: after the back-off the next store goes to disk.
	os.Remove(filler)
	e.clk.advance(maxBackoff)
	e.getWhole(fmt.Sprintf("/%d/later", size), size)
	e.settle()
	if s := e.c.Stats(); s.DiskState != "ok" {
		t.Errorf("disk state %q after the room came back, want ok\n%s", s.DiskState, logs)
	}
	if !strings.Contains(logs.String(), "writable again") {
		t.Errorf("recovery not logged:\n%s", logs)
	}
}

// TestDiskENOSPCOnWrite: a body larger than the room left, which the
// room check lets through (it asks for a log file's worth), fails with
// ENOSPC in its segment write. The tier turns read-only with one ERROR
// line saying the filesystem is full, the process does not stop, the
// response is whole and what was stored before is served.
func TestDiskENOSPCOnWrite(t *testing.T) {
	e, mnt, logs := diskEnv(t, 16<<20, Config{})
	e.rules.MaxObjectSize = 4 << 20
	e.getWhole("/1000/first", 1000)
	e.settle()
	d := e.c.disk
	testfs.Fill(t, mnt, d.memtable+16<<10)
	e.clk.advance(time.Second)
	// Larger than the room left, so the write meets ENOSPC.
	big := int(d.memtable + 64<<10)
	for i := range 3 {
		e.getWhole(fmt.Sprintf("/%d/big-%d", big, i), big)
		e.settle()
	}
	if s := e.c.Stats(); s.DiskState == "ok" {
		t.Errorf("disk state %q after ENOSPC\n%s", s.DiskState, logs)
	}
	if errs := logs.errors(); len(errs) != 1 || !strings.Contains(errs[0], "full") {
		t.Errorf("want one ERROR line saying the disk is full, got:\n%s", logs)
	}
	if r := e.getWhole(fmt.Sprintf("/%d/big-2", big), big); !hasStatus(r, "; hit") {
		t.Errorf("object kept in memory not a hit: %q", r.get("Cache-Status"))
	}
	if r := e.getWhole("/1000/first", 1000); !hasStatus(r, "; hit") {
		t.Errorf("stored object not a hit: %q", r.get("Cache-Status"))
	}
}

// TestDiskReadOnlyFilesystem: a restart on a filesystem mounted
// read-only (Linux refuses to remount one while pebble has files open for
// writing, so the remount comes between two runs): the tier opens
// read-only with one ERROR line, what the disk holds is served, misses are
// answered whole and kept in memory.
func TestDiskReadOnlyFilesystem(t *testing.T) {
	e, mnt, _ := diskEnv(t, 16<<20, Config{MemoryBytes: 1 << 20})
	const size = 100 << 10
	for i := range 20 {
		e.getWhole(fmt.Sprintf("/%d/o-%d", size, i), size)
		e.settle()
	}
	e.c.Close()
	testfs.ReadOnly(t, mnt, true)
	t.Cleanup(func() { testfs.ReadOnly(t, mnt, false) })
	logs := &logSink{}
	c, err := Open(Config{Dir: filepath.Join(mnt, "cache"), MemoryBytes: 1 << 20, Now: e.clk.now, Log: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.c = c
	if got := c.Stats().DiskState; got != "read-only" {
		t.Errorf("disk state %q on a read-only filesystem\n%s", got, logs)
	}
	before := e.o.hits.Load()
	for i := range 5 {
		e.getWhole(fmt.Sprintf("/%d/new-%d", size, i), size)
		e.settle()
	}
	// The memory tier (1 MiB) holds few of the 20: they come from disk.
	for i := range 20 {
		if r := e.getWhole(fmt.Sprintf("/%d/o-%d", size, i), size); !hasStatus(r, "; hit") {
			t.Errorf("object on the read-only disk not served: %q", r.get("Cache-Status"))
		}
	}
	if got := e.o.hits.Load() - before; got != 5 {
		t.Errorf("origin saw %d requests, want the 5 new ones only", got)
	}
	if errs := logs.errors(); len(errs) != 1 {
		t.Errorf("want one ERROR line, got:\n%s", logs)
	}
}

// TestDiskRestartOnFullDirectory: a cache whose filesystem is full opens
// at once, says why in one ERROR line, and serves: the objects on disk
// read-only, new ones from memory.
func TestDiskRestartOnFullDirectory(t *testing.T) {
	e, mnt, _ := diskEnv(t, 16<<20, Config{})
	const size = 40 << 10
	for i := range 10 {
		e.getWhole(fmt.Sprintf("/%d/o-%d", size, i), size)
		e.settle()
	}
	e.c.Close()
	testfs.Fill(t, mnt, 0)
	logs := &logSink{}
	done := make(chan struct{})
	var c *Cache
	var err error
	go func() {
		c, err = Open(Config{Dir: filepath.Join(mnt, "cache"), Now: e.clk.now, Log: slog.New(logs)})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Open on a full filesystem did not return")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.c = c
	before := e.o.hits.Load()
	for i := range 10 {
		e.getWhole(fmt.Sprintf("/%d/o-%d", size, i), size)
	}
	for i := range 10 {
		e.getWhole(fmt.Sprintf("/%d/new-%d", size, i), size)
		e.settle()
	}
	if got := e.o.hits.Load() - before; got != 10 {
		t.Errorf("origin saw %d requests, want the 10 new ones", got)
	}
	// Retries after the back-off wait for a restart, and log nothing.
	e.clk.advance(2 * maxBackoff)
	e.getWhole(fmt.Sprintf("/%d/later", size), size)
	e.settle()
	if errs := logs.errors(); len(errs) != 1 {
		t.Errorf("want one ERROR line, got:\n%s", logs)
	}
}

// TestDiskBoundCountsPebbleFiles: the bound holds for everything the tier
// puts on the filesystem, the body segments, pebble's logs, tables and
// manifests and the ballast included, while writing five times the bound (sampled after
// every store) and once it is closed.
func TestDiskBoundCountsPebbleFiles(t *testing.T) {
	const bound = 16 << 20
	e, mnt, logs := diskEnv(t, 64<<20, Config{DiskBytes: bound})
	dir := filepath.Join(mnt, "cache")
	// Slack: one write may go in past the last measure, and pebble
	// deletes the inputs of a compaction a moment after its output is in.
	slack := e.c.disk.memtable + bound/8
	const size = 100 << 10
	var peak int64
	for i := range 5 * bound / size {
		e.getWhole(fmt.Sprintf("/%d/o-%d", size, i), size)
		e.settle()
		peak = max(peak, du(t, dir))
	}
	s := e.c.Stats()
	e.c.Close()
	final := du(t, dir)
	t.Logf("bound %d, slack %d: peak %d bytes, after close %d; %+v", bound, slack, peak, final, s)
	if peak > bound+slack || final > bound {
		t.Errorf("the tier's files took %d bytes at most and %d after close; bound %d + slack %d", peak, final, bound, slack)
	}
	if s.DiskState != "ok" || s.Evictions == 0 {
		t.Errorf("disk state %q, %d evictions\n%s", s.DiskState, s.Evictions, logs)
	}
	if errs := logs.errors(); len(errs) != 0 {
		t.Errorf("a bound is not an error: %s", errs)
	}
}

// du is what the files in dir take (du -b): pebble may delete one while
// they are counted, and then it counts nothing.
func du(t *testing.T, dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

// TestDiskDamagedDirectory: a persistent tier whose pebble files are
// damaged (its MANIFEST overwritten) does not stop the start: the cache
// opens in memory with one ERROR line and serves.
func TestDiskDamagedDirectory(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, Config{Dir: dir}, sizedBodies)
	e.getWhole("/1000/a", 1000)
	e.settle()
	e.c.Close()
	manifests, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
	if len(manifests) == 0 {
		t.Fatal("no MANIFEST to damage")
	}
	for _, m := range manifests {
		os.WriteFile(m, []byte("this is not a manifest"), 0o644)
	}
	logs := &logSink{}
	c, err := Open(Config{Dir: dir, Now: e.clk.now, Log: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.c = c
	if s := c.Stats(); s.DiskState != "off" {
		t.Errorf("disk state %q on a damaged directory", s.DiskState)
	}
	e.getWhole("/1000/a", 1000)
	e.settle()
	if r := e.getWhole("/1000/a", 1000); !hasStatus(r, "; hit") {
		t.Errorf("memory-only cache does not serve hits: %q", r.get("Cache-Status"))
	}
	if errs := logs.errors(); len(errs) != 1 {
		t.Errorf("want one ERROR line, got:\n%s", logs)
	}
}

// Opening a 1 GiB tier writes its 8 MiB ballast without a buffer of that
// size: the heap such a buffer made live at the collector's first cycle
// set the pace of the next, and an idle process then gathered as much
// garbage in its RSS before collecting it.
func TestBallastWrittenWithoutItsSize(t *testing.T) {
	dir := t.TempDir()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	d, err := openDisk(dir, defaultDiskBytes, slog.Default(), time.Now)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	_, ballast := diskSizes(d.bound)
	if fi, err := os.Stat(filepath.Join(dir, ballastName)); err != nil || fi.Size() != ballast {
		t.Fatalf("ballast: %v, want %d bytes", err, ballast)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > uint64(ballast)/4 {
		t.Errorf("opening the tier allocated %d bytes of heap, want under a quarter of its %d-byte ballast", n, ballast)
	}
}
