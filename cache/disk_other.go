//go:build !linux

package cache

// readOnlyFS reports false where the mount flags are not read: a write
// then fails and makes the tier read-only.
func readOnlyFS(string) bool { return false }
