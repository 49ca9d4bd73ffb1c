package cache

import (
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestHitMissAgeGrows(t *testing.T) {
	e := newEnv(t, Config{}, serveBody("hello", "Cache-Control", "max-age=60"))
	r := e.get("/a")
	if r.body.String() != "hello" || !hasStatus(r, "fwd=uri-miss") || !hasStatus(r, "stored") {
		t.Fatalf("first: %q %q", r.body.String(), r.get("Cache-Status"))
	}
	e.settle()
	e.clk.advance(5 * time.Second)
	r = e.get("/a")
	if r.body.String() != "hello" || !strings.HasPrefix(r.get("Cache-Status"), "accel; hit; ttl=5") || r.age(t) != 5 {
		t.Fatalf("second: %q %q age %q", r.body.String(), r.get("Cache-Status"), r.get("Age"))
	}
	e.clk.advance(10 * time.Second)
	if r = e.get("/a"); r.age(t) != 15 {
		t.Fatalf("age %d, want 15", r.age(t))
	}
	if n := e.o.hits.Load(); n != 1 {
		t.Fatalf("origin saw %d requests, want 1", n)
	}
	if s := e.c.Stats(); s.Hits != 2 || s.Objects != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRestartWarm(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, Config{Dir: dir}, serveBody("persisted", "Cache-Control", "max-age=600"))
	e.get("/p")
	e.settle()
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := Open(Config{Dir: dir, Now: e.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.c = c
	r := e.get("/p")
	if r.body.String() != "persisted" || !hasStatus(r, "; hit") {
		t.Fatalf("after restart: %q %q", r.body.String(), r.get("Cache-Status"))
	}
	if n := e.o.hits.Load(); n != 1 {
		t.Fatalf("origin saw %d requests, want 1", n)
	}
}

// TestReleaseDiskHandsOverDirectory is the cache's half of a seamless
// restart: after ReleaseDisk a second cache opens the same directory
// (the lock is free) and finds what the first stored, while the first
// goes on answering from memory, and its disk reads and writes after the
// release touch nothing (no panic on a closed pebble, nothing written).
func TestReleaseDiskHandsOverDirectory(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, Config{Dir: dir}, serveBody("persisted", "Cache-Control", "max-age=600"))
	e.get("/p")
	e.settle()
	if err := e.c.ReleaseDisk(); err != nil {
		t.Fatal(err)
	}
	next, err := Open(Config{Dir: dir, Now: e.clk.now})
	if err != nil {
		t.Fatalf("the released directory does not open: %v", err)
	}
	defer next.Close()
	// The old cache: a memory hit, and a miss stored in memory only.
	if r := e.get("/p"); r.body.String() != "persisted" || !hasStatus(r, "; hit") {
		t.Fatalf("old cache after release: %q %q", r.body.String(), r.get("Cache-Status"))
	}
	e.get("/only-old")
	e.settle()
	if r := e.get("/only-old"); !hasStatus(r, "; hit") {
		t.Fatalf("old cache stores nothing after release: %q", r.get("Cache-Status"))
	}
	if got := e.c.Stats().DiskState; got != "off" {
		t.Errorf("old cache's disk state %q after release, want off", got)
	}
	// The new cache: the object stored before the release, from disk.
	old := e.c
	e.c = next
	if r := e.get("/p"); r.body.String() != "persisted" || !hasStatus(r, "; hit") {
		t.Fatalf("new cache: %q %q", r.body.String(), r.get("Cache-Status"))
	}
	if n := e.o.hits.Load(); n != 2 {
		t.Fatalf("origin saw %d requests, want 2 (/p once, /only-old once)", n)
	}
	if err := old.Close(); err != nil {
		t.Errorf("closing the released cache: %v", err)
	}
}

// A damaged metadata record is dropped when the index is rebuilt.
func TestCorruptMetadataDropped(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, Config{Dir: dir}, serveBody("meta", "Cache-Control", "max-age=600"))
	e.get("/m")
	e.settle()
	e.c.Close()
	d, err := openDisk(dir, defaultDiskBytes, slog.Default(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	d.scanKeys('o', func(k, v []byte) {
		v[len(v)/2] ^= 0x55
		d.db.Set(k, v, nil)
	})
	d.close()
	c, err := Open(Config{Dir: dir, Now: e.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := c.Stats().Objects; n != 0 {
		t.Fatalf("%d objects indexed from a corrupt record", n)
	}
}

// Bodies that come without a length (chunked) are kept at their size: the
// buffer they were read into grows by doubling, and the memory tier, which
// counts a body by its length, held up to twice what it counted (32 KiB
// for each of these 20 KiB bodies).
func TestChunkedBodyKeptAtItsSize(t *testing.T) {
	const n, size = 200, 20 << 10
	e := newEnv(t, Config{MemoryBytes: 16 << 20}, serveBody(strings.Repeat("c", size), "Cache-Control", "max-age=600"))
	if got := e.get("/warm").body.Len(); got != size {
		t.Fatalf("body of %d bytes, want %d", got, size)
	}
	e.settle()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		e.get(fmt.Sprintf("/c%d", i))
	}
	e.settle()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if st := e.c.Stats(); st.Objects != n+1 {
		t.Fatalf("%d objects stored, want %d", st.Objects, n+1)
	}
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > n*size*5/4 {
		t.Errorf("the heap grew by %d bytes for %d bodies of %d bytes, want at most a quarter more than their %d", grown, n, size, n*size)
	}
}
