//go:build !linux

package testfs

import "errors"

// Free is not measured here; the tests that fill filesystems run on Linux.
func Free(string) (int64, error) { return 0, errors.New("testfs: Free needs Linux") }
