package diskfs

import "syscall"

// Room is the free space of dir's filesystem and whether it is mounted
// read-only (where pebble's first write would fail).
func Room(dir string) (free int64, readOnly bool, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false, err
	}
	return int64(st.Bavail) * st.Bsize, st.Flags&0x1 != 0, nil // ST_RDONLY
}
