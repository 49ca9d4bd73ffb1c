package main

import (
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercent(t *testing.T) {
	fast := uint64(1 << 30) // allocated per second under load
	for _, tc := range []struct {
		name      string
		live      uint64
		allocated uint64
		elapsed   time.Duration
		want      int
	}{
		{"no live heap yet", 0, fast, time.Second, 100},
		{"no time passed", 1 << 20, fast, 0, 100},
		{"small heap under load: the whole floor", 1 << 20, fast, time.Second, 1600},
		{"4 MiB under load", 4 << 20, fast, time.Second, 400},
		{"live heap as large as the floor", 16 << 20, fast, time.Second, 100},
		{"large heap", 1 << 30, fast, time.Second, 100},
		// 32 MiB/s fills 8 MiB per gcPeriod.
		{"moderate rate: a period's worth", 1 << 20, 32 << 20, time.Second, 800},
		// The hit path: a few hundred KB a second keeps GOGC=100.
		{"slow allocation", 1 << 20, 400 << 10, time.Second, 100},
		{"idle", 4 << 20, 1 << 20, 2 * time.Minute, 100},
	} {
		if got := gcPercent(tc.live, tc.allocated, tc.elapsed); got != tc.want {
			t.Errorf("%s: gcPercent(%d, %d, %v) = %d, want %d", tc.name, tc.live, tc.allocated, tc.elapsed, got, tc.want)
		}
	}
}

// TestTuneGCHeadroom: once tuneGC runs, a small live heap that allocates
// as fast as this loop does (far more than gcHeadroom per gcPeriod) may
// gather gcHeadroom of garbage before the next collection, where GOGC=100
// lets it gather only its own size: the goal the runtime works to is at
// least live + gcHeadroom after a few collections.
func TestTuneGCHeadroom(t *testing.T) {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if goal, live := s[0].Value.Uint64(), s[1].Value.Uint64(); goal >= live+gcHeadroom {
		t.Fatalf("before tuning: goal %d already %d above live", goal, goal-live)
	}
	tuneGC()
	start := s[2].Value.Uint64()
	var sink [][]byte
	// Garbage until a collection after the tuner's has set the goal, at
	// most 64 cycles' worth.
	for {
		sink = append(sink[:0], make([]byte, 64<<10))
		metrics.Read(s)
		goal, live, cycles := s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()
		if cycles > start+1 && goal >= live+gcHeadroom-1<<20 {
			t.Logf("after %d collections: goal %d MiB, live %d MiB", cycles-start, goal>>20, live>>20)
			return
		}
		if cycles > start+64 {
			t.Fatalf("after %d collections: goal %d, live %d: not %d above", cycles-start, goal, live, gcHeadroom)
		}
	}
}
