package cache

import "syscall"

// readOnlyFS reports whether dir is on a filesystem mounted read-only:
// pebble's first write there would fail, and some of its failures are
// fatal, so the tier stops writing before.
func readOnlyFS(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Flags&0x1 != 0 // ST_RDONLY
}
