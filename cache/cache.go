package cache

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accel-proxy/accel/parser"
)

// Config sizes a Cache. The zero value is a 256 MiB memory-only cache.
type Config struct {
	// MemoryBytes bounds what the cache holds in memory: a quarter for
	// the index of every stored object, on disk or not (about 1 KB an
	// object with its fields: 64 MiB index some 60 000 objects, as
	// nginx's keys_zone does), the rest for bodies (the memory tier,
	// cost = body bytes). Least recently used objects are evicted when
	// the index is full. Zero: 256 MiB.
	MemoryBytes int64
	// Dir is the persistent tier's directory (segment files of bodies,
	// pebble for their metadata); "" keeps the cache in memory only, and
	// a restart starts cold.
	Dir string
	// DiskBytes bounds every file of the persistent tier, its segments of
	// bodies and pebble's own included; the oldest segment is reclaimed,
	// with its objects, to stay under it, and writes wait while pebble's
	// files reach it. Zero: 1 GiB. A filesystem with less room lowers it.
	DiskBytes int64
	// Log receives the persistent tier's failures and pebble's messages;
	// nil is slog.Default().
	Log *slog.Logger
	// Now is the clock; nil is time.Now. Tests inject one.
	Now func() time.Time
}

// Cache is the shared HTTP cache. It doesn't talk to origins on its own:
// Serve is given a Fetcher per request.
type Cache struct {
	cfg  Config
	now  func() time.Time
	ix   *index
	mem  *memTier
	disk *diskTier // nil when memory only
	// diskFailed is set when a persistent tier was configured but did
	// not open.
	diskFailed bool
	tiers      []tier
	fl         flights

	nextID atomic.Uint64
	// purgeGen counts purges; a fetch that started before one does not
	// store what it got, which may predate the purge.
	purgeGen atomic.Uint64

	// banMu guards the bans not yet swept (oldest first), the last ban
	// seq, and whether the sweeper goroutine runs.
	banMu    sync.Mutex
	bans     []*ban
	banSeq   uint64
	sweeping bool
	// sweepStep, when set (by tests), is called after each shard a sweep
	// has done.
	sweepStep func(shard int)

	evictMu sync.Mutex // one eviction pass at a time
	bg      sync.WaitGroup
	closed  atomic.Bool

	stats counters
}

// Response is an origin's response to a Fetch: hop-by-hop fields already
// removed. The cache closes Body once, and uses nothing of the Response
// after: a Fetcher may recycle it, its fields included, on Close.
type Response struct {
	Status int
	// Fields go with the Response: the cache clones what it keeps
	// before closing the body.
	Fields parser.Fields
	// ContentLength is the body length, -1 when unknown.
	ContentLength int64
	Body          io.ReadCloser
	// Buffered says Body is whole in memory already (a small response
	// that came with its head): reading it never waits for the origin, so
	// the cache stores it before answering, without a goroutine.
	Buffered bool
}

// Request is one client request through the cache.
type Request struct {
	// Scheme is "http" or "https".
	Scheme string
	// Head is the request as the client sent it, hop-by-hop fields
	// removed. It is valid only during Serve: the cache copies what it
	// keeps.
	Head *parser.Request
}

// Fetcher is a request's way to the origin: Fetch sends head there. The
// cache may pass a modified copy: its own conditional fields added, the
// client's removed. Background revalidations run with a context detached
// from any client and a GET head the cache owns. head is valid only until
// Fetch returns: the cache reuses it for another request's fetch. It is an
// interface so that a caller passes a pointer it already has: a method
// value made per request is an allocation on every miss.
type Fetcher interface {
	Fetch(ctx context.Context, head *parser.Request) (*Response, error)
	// Detach returns a Fetcher for a fetch that runs after Serve
	// returned (a background revalidation). The one given to Serve is
	// valid only during Serve, so that a front may keep it in storage it
	// reuses for its next request.
	Detach() Fetcher
}

// ResponseWriter is how Serve answers; accel's HTTP/1 and HTTP/2 fronts
// implement it and add Date when a head has none. Fields passed to
// WriteHead never hold Content-Length or Transfer-Encoding: the length,
// when known, comes before through SetContentLength.
type ResponseWriter interface {
	WriteHead(status int, fields parser.Fields) error
	SetContentLength(n int64)
	Write(p []byte) (int, error)
	Flush() error
	// WriteInterim sends a 1xx head before the final one: the cache's
	// 103 Early Hints. A front that may not send one (to an HTTP/1.0
	// client) drops it.
	WriteInterim(status int, fields parser.Fields) error
	// WriteStored writes a whole response whose body is at hand, a stored
	// one: status, fields, then extra (the fields made for this answer),
	// a Content-Length of len(body), and body unless the request was
	// HEAD. wire is fields in HTTP/1 form (parser.AppendFields), for a
	// front that can copy it as it is. Nothing passed is kept after it
	// returns; the bytes may still sit in the front's buffer until Flush.
	WriteStored(status int, fields parser.Fields, wire []byte, extra parser.Fields, body []byte) error
}

// Outcome says how Serve answered, for logs and metrics.
type Outcome struct {
	// Status is "hit", "stale" (a stale response served), "miss",
	// "revalidated", "pass" (not cacheable), or "bypass" (a method the
	// cache does not answer).
	Status string
	// Fwd is the RFC 9211 fwd value, "" on a hit.
	Fwd string
	// Stored is set when the forwarded response is being stored.
	Stored bool
	// Coalesced is set when the request waited on another's fetch.
	Coalesced bool
}

// errClosed is returned by Serve after Close.
var errClosed = errors.New("cache: closed")

const (
	defaultMemoryBytes = 256 << 20
	defaultDiskBytes   = 1 << 30
)

// EnsureDefaults fills the zero sizes with their defaults.
func (c *Config) EnsureDefaults() {
	if c.MemoryBytes <= 0 {
		c.MemoryBytes = defaultMemoryBytes
	}
	if c.DiskBytes <= 0 {
		c.DiskBytes = defaultDiskBytes
	}
}

// Open makes a cache. With a Dir it opens (or creates) the persistent tier
// there and rebuilds the index from it, dropping records that fail their
// checksum.
func Open(cfg Config) (*Cache, error) {
	cfg.EnsureDefaults()
	c := &Cache{cfg: cfg, now: cfg.Now, ix: newIndex()}
	if c.now == nil {
		c.now = time.Now
	}
	c.fl.m = map[flightKey]*flight{}
	c.fl.pass = map[flightKey]time.Time{}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	if cfg.Dir != "" {
		// A persistent tier that cannot open leaves the cache in memory:
		// accel serves, and says why the restart started cold.
		d, err := c.openDisk(log)
		if err != nil {
			log.Error("cache: persistent tier unavailable, serving from memory only until restart",
				"dir", cfg.Dir, "err", err)
			c.diskFailed = true
		} else {
			c.disk = d
		}
	}
	var onDrop func(*object)
	if c.disk == nil {
		// Without a disk, a body the memory tier evicts is an object gone.
		onDrop = func(o *object) {
			if c.ix.remove(o) {
				c.stats.evictions.Add(1)
			}
		}
	}
	mem := newMemTier(bodyBudget(cfg.MemoryBytes), onDrop)
	c.mem = mem
	c.tiers = []tier{mem}
	if c.disk != nil {
		c.tiers = append(c.tiers, c.disk)
		c.disk.start(c.keepInMemory, c.reclaimed, &c.bg)
	}
	if len(c.bans) > 0 {
		c.sweeping = true
		c.bg.Add(1)
		go c.sweep()
	}
	return c, nil
}

// openDisk opens the persistent tier and rebuilds the index and the bans
// from it. A directory whose records cannot be read is closed again.
func (c *Cache) openDisk(log *slog.Logger) (*diskTier, error) {
	d, err := openDisk(c.cfg.Dir, c.cfg.DiskBytes, log, c.now)
	if err != nil {
		return nil, err
	}
	bans, err := d.loadBans()
	if errors.Is(err, errCorrupt) {
		// Which objects an unreadable purge covers is unknown, so
		// none can be trusted: start cold.
		bans, err = nil, d.dropAll()
	}
	if err != nil {
		return nil, errors.Join(err, d.close())
	}
	var maxID uint64
	for _, b := range bans {
		// Ids must go on growing past every ban, even one whose
		// objects are all gone, or new objects would fall under it.
		maxID = max(maxID, b.maxID)
		c.banSeq = max(c.banSeq, b.seq)
	}
	err = d.load(func(o *object) {
		maxID = max(maxID, o.id)
		for _, old := range c.ix.insert(o) {
			// Two records for one variant: a crash between
			// replacing and deleting. The newer insert wins.
			if old.inserted > o.inserted {
				c.ix.insert(old)
				d.del(o)
			} else {
				d.del(old)
			}
		}
	})
	if err != nil {
		c.ix = newIndex()
		c.banSeq = 0
		return nil, errors.Join(err, d.close())
	}
	c.nextID.Store(maxID)
	if len(bans) > 0 {
		c.bans = bans
		c.ix.bans.Store(newBanSet(bans))
	}
	return d, nil
}

// ReleaseDisk closes the persistent tier, and with it the directory's
// lock, while the cache goes on serving from memory: in a seamless
// restart the new process opens the directory while this one finishes
// its requests. What is stored from then on stays in this process's
// memory; what only the disk held is a miss here. Close still ends the
// rest.
func (c *Cache) ReleaseDisk() error {
	if c.disk == nil {
		return nil
	}
	return c.disk.release()
}

// Close waits for background revalidations, stops the purge sweeper
// between shards (what it left is swept after the next Open) and closes
// the tiers.
func (c *Cache) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.bg.Wait()
	var err error
	if c.disk != nil {
		err = c.disk.close()
	}
	return err
}

// keepInMemory holds an indexed object's body that the disk did not take
// after all (its queued write failed): in memory, visible before the queue
// lets go of it, or else the object goes from the index.
func (c *Cache) keepInMemory(o *object, body []byte) {
	if !c.mem.put(o, body) {
		c.ix.remove(o)
	}
}

// reclaimed settles the objects whose bodies leave the disk with their
// segment (their records go with it). One whose body the memory tier holds
// (read or stored lately) is written again, at the head of the segments,
// as ATS evacuates what it keeps from the part of its disk it overwrites:
// reclaiming oldest first would otherwise drop a hot object once per turn
// of the disk. The others are evicted.
func (c *Cache) reclaimed(objs []*object) {
	var gone []*object
	for _, o := range objs {
		cur := c.ix.sibling(o.uri, []byte(o.variant))
		if cur == nil || cur.id != o.id {
			continue
		}
		if body, ok := c.mem.get(cur); ok {
			n := cur.clone()
			if c.disk.put(n, body) {
				if !c.ix.replace(cur, n) {
					// cur went meanwhile: n's write goes too.
					c.disk.wq.cancel([]*object{n}, false)
				}
				continue
			}
		}
		if cur := c.ix.take(o); cur != nil {
			gone = append(gone, cur)
		}
	}
	c.stats.evictions.Add(int64(len(gone)))
	c.forget(gone)
}

// Stats are the cache's counters and sizes at one moment.
type Stats struct {
	// Objects is the number of stored responses (all variants).
	Objects int64
	// MemoryObjects and MemoryBytes are what the memory tier holds.
	MemoryObjects, MemoryBytes int64
	// DiskObjects and DiskBytes are what the persistent tier holds
	// (bodies and metadata, before pebble's compression).
	DiskObjects, DiskBytes int64
	// DiskState is the persistent tier's health: "ok", "read-only" (new
	// objects stay in memory until a retry after a back-off succeeds),
	// "off" (until a restart), or "" without one.
	DiskState string
	// DiskFailures counts the persistent tier's write failures and
	// failed retries.
	DiskFailures int64
	// DiskSkipped counts the new objects kept in memory only because the
	// persistent tier's write queue was full (the disk fell behind).
	DiskSkipped int64
	// DiskCorrupt counts the bodies read from the persistent tier with a
	// wrong length or checksum (a segment damaged or cut short under its
	// records, a write lost in a crash of the machine): each one a miss.
	DiskCorrupt int64
	// Evictions counts objects dropped for space.
	Evictions int64
	// CoalescedWaiters counts requests that waited on another's fetch.
	CoalescedWaiters            int64
	Hits, Misses, Stale, Passes int64
}

type counters struct {
	evictions, waiters, hits, misses, stale, passes atomic.Int64
	// codings counts the compressed codings made, for tests.
	codings atomic.Int64
}

// Stats returns the current counters.
func (c *Cache) Stats() Stats {
	s := Stats{
		Objects:          c.ix.objects.Load(),
		MemoryObjects:    c.mem.objects.Load(),
		MemoryBytes:      c.mem.bytes.Load() - c.mem.objects.Load()*memOverhead,
		Evictions:        c.stats.evictions.Load(),
		CoalescedWaiters: c.stats.waiters.Load(),
		Hits:             c.stats.hits.Load(),
		Misses:           c.stats.misses.Load(),
		Stale:            c.stats.stale.Load(),
		Passes:           c.stats.passes.Load(),
	}
	switch {
	case c.disk != nil:
		s.DiskObjects, s.DiskBytes = s.Objects, c.ix.bytes.Load()
		s.DiskState = diskState(c.disk.state.Load()).String()
		s.DiskFailures = c.disk.failures.Load()
		s.DiskSkipped = c.disk.wq.skipped.Load()
		s.DiskCorrupt = c.disk.corrupt.Load()
	case c.diskFailed:
		s.DiskState, s.DiskFailures = diskOff.String(), 1
	}
	return s
}
