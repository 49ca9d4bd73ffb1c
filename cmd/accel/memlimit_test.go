package main

import (
	"runtime/metrics"
	"testing"
)

func TestGCPercent(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{{0, 100}, {1 << 20, 1600}, {4 << 20, 400}, {16 << 20, 100}, {1 << 30, 100}} {
		if got := gcPercent(tc.live); got != tc.want {
			t.Errorf("gcPercent(%d) = %d, want %d", tc.live, got, tc.want)
		}
	}
}

// TestTuneGCHeadroom: once tuneGC runs, a small live heap may gather
// gcHeadroom of garbage before the next collection, where GOGC=100 lets
// it gather only its own size: the goal the runtime works to is at least
// live + gcHeadroom after a few collections.
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
