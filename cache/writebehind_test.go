package cache

import (
	"fmt"
	"testing"
	"time"
)

// reopen closes e's cache and opens its directory again.
func (e *env) reopen(dir string) {
	e.t.Helper()
	if err := e.c.Close(); err != nil {
		e.t.Fatal(err)
	}
	c, err := Open(Config{Dir: dir, DiskBytes: 16 << 20, Now: e.clk.now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	e.c = c
}

// TestDiskWriteQueueFull: the disk's writer is held (as by a disk whose
// writes do not return) while misses keep coming. The write queue fills
// to its bound; the objects past it stay in memory only and are counted;
// every request is answered whole and every object is a hit meanwhile.
// Released, the writer commits what was queued: after a restart those
// objects are on disk, and the skipped ones are not.
func TestDiskWriteQueueFull(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, Config{Dir: dir, DiskBytes: 16 << 20}, sizedBodies)
	const size, n = 20 << 10, 40
	if n*size <= e.c.disk.wq.limit {
		t.Fatalf("%d objects of %d bytes do not fill a queue of %d", n, size, e.c.disk.wq.limit)
	}
	path := func(i int) string { return fmt.Sprintf("/%d/o-%d", size, i) }
	e.c.disk.commit.Lock()
	held := true
	defer func() {
		if held {
			e.c.disk.commit.Unlock()
		}
	}()
	for i := range n {
		e.getWhole(path(i), size)
	}
	skipped := e.c.Stats().DiskSkipped
	if skipped == 0 || skipped >= n {
		t.Fatalf("%d of %d objects skipped the disk, want some", skipped, n)
	}
	for i := range n {
		if r := e.getWhole(path(i), size); !hasStatus(r, "; hit") {
			t.Errorf("%s not a hit while the disk is held: %q", path(i), r.get("Cache-Status"))
		}
	}
	if got := e.o.hits.Load(); got != n {
		t.Errorf("origin saw %d requests, want %d", got, n)
	}
	e.c.disk.commit.Unlock()
	held = false
	e.settle()
	if s := e.c.Stats(); s.DiskState != "ok" || s.DiskFailures != 0 || s.DiskSkipped != skipped {
		t.Errorf("after the release: %+v", s)
	}

	e.reopen(dir)
	before := e.o.hits.Load()
	for i := range n {
		e.getWhole(path(i), size)
	}
	if got := int64(e.o.hits.Load() - before); got != skipped {
		t.Errorf("after a restart the origin saw %d requests, want the %d skipped objects", got, skipped)
	}
}

// TestDiskPurgeOfQueuedWrite: a URL purged while its write is still queued
// stays purged after a restart, whichever of the writer and the purge's
// disk writes goes first.
func TestDiskPurgeOfQueuedWrite(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, Config{Dir: dir, DiskBytes: 16 << 20}, sizedBodies)
	e.getWhole("/1000/kept", 1000)
	e.settle()
	e.c.disk.commit.Lock()
	e.getWhole("/1000/purged", 1000)
	done := make(chan error, 1)
	go func() {
		_, err := e.c.PurgeURL("http://example.com/1000/purged", false)
		done <- err
	}()
	e.c.disk.commit.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.settle()
	e.reopen(dir)
	before := e.o.hits.Load()
	if r := e.getWhole("/1000/kept", 1000); !hasStatus(r, "; hit") {
		t.Errorf("kept object lost in the restart: %q", r.get("Cache-Status"))
	}
	if r := e.getWhole("/1000/purged", 1000); hasStatus(r, "; hit") {
		t.Errorf("purged object back after a restart: %q", r.get("Cache-Status"))
	}
	if got := e.o.hits.Load() - before; got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
}

// TestDiskWriterLoneBodyAtOnce: a body stored while the writer is idle is
// written at once, not after the linger with which a busy writer gathers
// a batch (a minute here; a test that failed would end when it does).
// Each store is settled before the next, so the writer never finds two
// bodies; after a restart all three are hits.
func TestDiskWriterLoneBodyAtOnce(t *testing.T) {
	defer func(d time.Duration) { writeLinger = d }(writeLinger)
	writeLinger = time.Minute
	dir := t.TempDir()
	e := newEnv(t, Config{Dir: dir, DiskBytes: 16 << 20}, sizedBodies)
	path := func(i int) string { return fmt.Sprintf("/1000/lone-%d", i) }
	for i := range 3 {
		e.getWhole(path(i), 1000)
		settled := make(chan struct{})
		go func() {
			e.c.bg.Wait()
			close(settled)
		}()
		select {
		case <-settled:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s still queued after 20 s: the writer waits for company", path(i))
		}
	}
	e.reopen(dir)
	before := e.o.hits.Load()
	for i := range 3 {
		if r := e.getWhole(path(i), 1000); !hasStatus(r, "; hit") {
			t.Errorf("%s not on disk after a restart: %q", path(i), r.get("Cache-Status"))
		}
	}
	if got := e.o.hits.Load() - before; got != 0 {
		t.Errorf("origin saw %d requests after the restart, want 0", got)
	}
}
