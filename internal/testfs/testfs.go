// Package testfs gives tests small real filesystems to fill up and to turn
// read-only: a tmpfs mounted for the test, or, where mounting a tmpfs is
// not allowed, an ext4 image on a loop device. It unmounts what it mounted
// when the test ends. Without either (not root, no mkfs) the test is
// skipped with the reason, except under CI (CI set), where it fails.
package testfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// Mount mounts a filesystem of size bytes on a new directory and returns
// the directory.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	tmpfsErr := run("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "tmpfs", mnt)
	if tmpfsErr == nil {
		t.Cleanup(func() { unmount(t, mnt) })
		return mnt
	}
	img := filepath.Join(dir, "fs.img")
	err := run("truncate", "-s", strconv.FormatInt(size, 10), img)
	if err == nil {
		err = run("mkfs.ext4", "-q", "-F", "-m", "0", img)
	}
	if err == nil {
		err = run("mount", "-o", "loop", img, mnt)
	}
	if err != nil {
		unavailable(t, fmt.Errorf("mount tmpfs: %v; ext4 image: %v", tmpfsErr, err))
	}
	t.Cleanup(func() { unmount(t, mnt) })
	return mnt
}

// ReadOnly remounts the filesystem at mnt read-only (ro) or read-write.
func ReadOnly(t testing.TB, mnt string, ro bool) {
	t.Helper()
	mode := "remount,rw"
	if ro {
		mode = "remount,ro"
	}
	if err := run("mount", "-o", mode, mnt); err != nil {
		t.Fatalf("remount %s: %v", mnt, err)
	}
}

// Fill writes a file in dir until the filesystem is full, leaving about
// leave bytes free, and returns its path; removing it frees the room.
func Fill(t testing.TB, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	for {
		free, err := Free(dir)
		if err != nil {
			t.Fatal(err)
		}
		if free <= leave {
			break
		}
		n := min(free-leave, int64(len(chunk)))
		if _, err := f.Write(chunk[:n]); err != nil {
			break // full
		}
	}
	if err := f.Sync(); err != nil {
		t.Logf("filler sync: %v", err)
	}
	return path
}

func unmount(t testing.TB, mnt string) {
	if err := run("umount", "-l", mnt); err != nil {
		t.Errorf("umount %s: %v", mnt, err)
	}
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("no small filesystem for this test: %v", err)
	}
	t.Skipf("no small filesystem for this test (run as root, or with mkfs.ext4 and loop devices): %v", err)
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, out)
	}
	return nil
}
