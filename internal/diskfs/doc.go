// Package diskfs owns what accel's persistent stores (the cache's disk tier
// and the TLS session store) need of the filesystem under pebble: an open
// that cannot hang a start, and the room a directory has left.
//
// pebble cannot survive some write errors on its own (a failed log write
// panics, a failed MANIFEST write is fatal), so the stores look before they
// write and give up first; both look the same way, through this package.
package diskfs
