package main

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// setMemoryLimit gives the Go runtime a soft memory limit derived from the
// cache's memory tier when the operator set none (GOMEMLIMIT): the tier
// plus a quarter for its own and the index's bookkeeping, plus 64 MiB for
// connections, pebble's memtables and block cache, and the runtime.
// Without it a full memory tier lets the heap grow to twice its size
// before a collection (GOGC=100); with it the collector works harder as
// the heap nears the limit instead. Unless GOGC is set, the collector also
// gets a floor that follows its allocation rate (tuneGC).
func setMemoryLimit(mem int64, log *slog.Logger) {
	if v := os.Getenv("GOGC"); v != "" {
		log.Info("garbage collector", "GOGC", v, "source", "environment")
	} else {
		tuneGC()
	}
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit", "GOMEMLIMIT", v, "source", "environment")
		return
	}
	limit := mem + mem/4 + 64<<20
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "GOMEMLIMIT", limit, "source", "cache.memory")
}

// gcHeadroom is the most garbage the floor lets the heap gather between
// two collections. A proxy's live heap is small until the cache fills (3
// MB on the no-store miss path) while every miss allocates, so GOGC=100
// ran the collector twenty times a second there, 9 % of the CPU; with a
// floor it runs a few times a second. It bounds what the floor adds to
// the RSS; once the live heap passes it the floor changes nothing.
const gcHeadroom = 16 << 20

// gcPeriod is how often the floor lets the collector run under load: the
// headroom is what the heap allocated in this long at the last cycle's
// rate, so a heap that allocates little (the hit path, an idle process)
// keeps Go's default pacing and does not hold gcHeadroom of garbage in
// its RSS for nothing.
const gcPeriod = 250 * time.Millisecond

// gcPercent is the GOGC that lets a heap with live bytes, which allocated
// allocated bytes in elapsed, gather the garbage of one gcPeriod at that
// rate, at most gcHeadroom, and never less than GOGC=100 would.
func gcPercent(live, allocated uint64, elapsed time.Duration) int {
	if live == 0 || elapsed <= 0 {
		return 100
	}
	headroom := min(float64(allocated)*float64(gcPeriod)/float64(elapsed), gcHeadroom)
	return int(max(100, headroom*100/float64(live)))
}

// gcCycle is the object whose finalizer marks a collection. It holds a
// pointer so that it is not batched with others by the tiny allocator,
// whose objects may never be finalized.
type gcCycle struct{ _ *byte }

// tuneGC sets GOGC from the live heap and the bytes allocated since the
// previous collection, after every collection: a finalizer runs once per
// cycle and re-arms itself. Nothing of it runs between collections.
func tuneGC() {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	var lastAllocs uint64
	last := time.Now()
	var arm func()
	arm = func() {
		runtime.SetFinalizer(new(gcCycle), func(*gcCycle) {
			metrics.Read(s)
			now := time.Now()
			if s[0].Value.Kind() == metrics.KindUint64 && s[1].Value.Kind() == metrics.KindUint64 {
				allocs := s[1].Value.Uint64()
				debug.SetGCPercent(gcPercent(s[0].Value.Uint64(), allocs-lastAllocs, now.Sub(last)))
				lastAllocs = allocs
			}
			last = now
			arm()
		})
	}
	arm()
}
