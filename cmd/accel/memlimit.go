package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// setMemoryLimit gives the Go runtime a soft memory limit derived from the
// cache's memory tier when the operator set none (GOMEMLIMIT): the tier
// plus a quarter for ristretto's and the index's bookkeeping, plus 64 MiB
// for connections, pebble's memtables and block cache, and the runtime.
// Without it a full memory tier lets the heap grow to twice its size
// before a collection (GOGC=100); with it the collector works harder as
// the heap nears the limit instead. GOGC still applies below the limit.
func setMemoryLimit(mem int64, log *slog.Logger) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit", "GOMEMLIMIT", v, "source", "environment")
		return
	}
	limit := mem + mem/4 + 64<<20
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "GOMEMLIMIT", limit, "source", "cache.memory")
}
