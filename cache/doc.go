// Package cache owns accel's stored responses: the shared HTTP cache of
// RFC 9111 with RFC 5861's stale extensions, its memory and persistent
// tiers, request coalescing, and purge.
//
// A response is found by its primary key (scheme, host, target, as the
// route's key options shape them) and then by its secondary key (the route's
// extra header and cookie values and the request's values of the fields
// the stored response names in Vary). The index of every stored object,
// with its header fields, freshness, tags and body checksum, lives in this
// package's own sharded maps and, when a directory is configured, in pebble;
// bodies live in a memory tier that evicts the least read (tier.go) and
// in append-only segment files beside pebble, reclaimed oldest first
// (segment.go), so a restart starts warm and nothing depends on the memory
// tier keeping what it was given. Concurrent misses for one key share one origin fetch
// whose body streams to every waiter as it arrives; a key whose response
// turned out not storable is remembered for a while (hit-for-pass) so that
// uncacheable URLs are never serialised. A URL purge acts on the index at
// once and on disk in one batch; a tag or prefix purge records a persisted
// ban that lookups check and a background sweep applies shard by shard.
// Either way a purge holds from the very next request and across restarts.
package cache
