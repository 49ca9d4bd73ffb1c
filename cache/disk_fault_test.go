package cache

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// These tests inject faults under pebble (errorfs) beside the real-disk
// ones in disk_test.go: an I/O error on every write, and a disk whose
// writes never return.

// faultFS puts inj under pebble for the test.
func faultFS(t *testing.T, inj errorfs.Injector) {
	old := diskFS
	diskFS = errorfs.Wrap(vfs.Default, inj)
	t.Cleanup(func() { diskFS = old })
}

// TestDiskIOError: every write of pebble fails with EIO (a dying disk).
// pebble panics on a failed log write; the tier turns off with one ERROR
// line, the process goes on, misses are answered whole and kept in
// memory, hits are served.
func TestDiskIOError(t *testing.T) {
	var failing atomic.Bool
	faultFS(t, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return syscall.EIO
		}
		return nil
	}))
	logs := &logSink{}
	e := newEnv(t, Config{Dir: t.TempDir(), Log: slog.New(logs)}, sizedBodies)
	const size = 20 << 10
	for i := range 3 {
		e.getWhole(fmt.Sprintf("/%d/before-%d", size, i), size)
		e.settle()
	}
	failing.Store(true)
	for i := range 30 {
		e.getWhole(fmt.Sprintf("/%d/after-%d", size, i), size)
		e.settle()
	}
	for i := range 3 {
		if r := e.getWhole(fmt.Sprintf("/%d/before-%d", size, i), size); !hasStatus(r, "; hit") {
			t.Errorf("stored object not a hit: %q", r.get("Cache-Status"))
		}
	}
	if r := e.getWhole(fmt.Sprintf("/%d/after-%d", size, 29), size); !hasStatus(r, "; hit") {
		t.Errorf("object kept in memory not a hit: %q", r.get("Cache-Status"))
	}
	s := e.c.Stats()
	if s.DiskState == "ok" || s.DiskFailures == 0 || len(logs.errors()) != 1 {
		t.Errorf("disk state %q, %d failures after EIO:\n%s", s.DiskState, s.DiskFailures, logs)
	}
}

// TestDiskStuck: pebble's writes never return (a hung disk). Responses
// complete without waiting for the disk; the writer gives up after
// writeStall and the tier turns read-only, the objects kept in memory;
// Close returns after closeWait instead of hanging a drain.
func TestDiskStuck(t *testing.T) {
	var stuck atomic.Bool
	release := make(chan struct{})
	faultFS(t, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if stuck.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			// The disk comes back when the test ends. (One that came
			// back with an error while pebble rotates its log would
			// stop the process: pebble panics there with its lock
			// released, which no recover can catch.)
			<-release
		}
		return nil
	}))
	t.Cleanup(func() { close(release) })
	logs := &logSink{}
	e := newEnv(t, Config{Dir: t.TempDir(), Log: slog.New(logs)}, sizedBodies)
	c := e.c
	const size = 20 << 10
	e.getWhole(fmt.Sprintf("/%d/before", size), size)
	e.settle()
	stuck.Store(true)
	// Enough to fill a memtable, so that pebble has to write.
	for i := range 20 {
		e.getWhole(fmt.Sprintf("/%d/stuck-%d", size, i), size)
	}
	e.settle()
	if s := c.Stats(); s.DiskState != "read-only" {
		t.Errorf("disk state %q with writes that never return\n%s", s.DiskState, logs)
	}
	for i := range 20 {
		if r := e.getWhole(fmt.Sprintf("/%d/stuck-%d", size, i), size); !hasStatus(r, "; hit") {
			t.Errorf("object kept in memory not a hit: %q", r.get("Cache-Status"))
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err == nil {
			t.Error("Close of a stuck disk reported nothing")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close hung on a stuck disk")
	}
}
