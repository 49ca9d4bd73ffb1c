package main

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// setMemoryLimit gives the Go runtime a soft memory limit derived from the
// cache's memory tier when the operator set none (GOMEMLIMIT): the tier
// plus a quarter for ristretto's and the index's bookkeeping, plus 64 MiB
// for connections, pebble's memtables and block cache, and the runtime.
// Without it a full memory tier lets the heap grow to twice its size
// before a collection (GOGC=100); with it the collector works harder as
// the heap nears the limit instead. Unless GOGC is set, the collector also
// gets a floor of gcHeadroom (tuneGC).
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

// gcHeadroom is the least garbage the heap may gather between two
// collections. A proxy's live heap is small until the cache fills (3 MB on
// the no-store miss path) while every miss allocates, so GOGC=100 ran the
// collector twenty times a second there, 9 % of the CPU; with a floor of
// 16 MiB it runs a few times a second. It bounds what the floor adds to
// the RSS; once the live heap passes 16 MiB it changes nothing.
const gcHeadroom = 16 << 20

// gcPercent is the GOGC that lets a heap with live bytes grow by at least
// gcHeadroom, and never by less than GOGC=100 would.
func gcPercent(live uint64) int {
	if live == 0 {
		return 100
	}
	return int(max(100, gcHeadroom*100/live))
}

// gcCycle is the object whose finalizer marks a collection. It holds a
// pointer so that it is not batched with others by the tiny allocator,
// whose objects may never be finalized.
type gcCycle struct{ _ *byte }

// tuneGC sets GOGC from the live heap after every collection: a
// finalizer runs once per cycle and re-arms itself. Nothing of it runs
// between collections.
func tuneGC() {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var arm func()
	arm = func() {
		runtime.SetFinalizer(new(gcCycle), func(*gcCycle) {
			metrics.Read(s)
			if s[0].Value.Kind() == metrics.KindUint64 {
				debug.SetGCPercent(gcPercent(s[0].Value.Uint64()))
			}
			arm()
		})
	}
	arm()
}
