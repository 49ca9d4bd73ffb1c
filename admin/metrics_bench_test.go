package admin

import (
	"testing"
	"time"
)

// BenchmarkObserve is what every answered request costs the metrics: its
// counters and duration, and the status page's top hosts and paths, from
// both cores at once as under load.
func BenchmarkObserve(b *testing.B) {
	m := NewMetrics()
	host, path := []byte("example.com"), []byte("/1k")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveRequest("h1", 200, "hit", 0, 1024, 50*time.Microsecond)
			m.ObserveTarget(host, path)
		}
	})
}
