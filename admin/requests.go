package admin

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// requestCounts is accel_requests_total and accel_request_duration_seconds
// in one collector that every answered request updates with two atomic
// adds: one per-series duration bucket and one sum of nanoseconds. A
// request counter, a Prometheus histogram (count, hot/cold index, bucket,
// and a float sum by compare-and-swap) and their shared cache lines were
// 2 % of the CPU of a cache hit. Both families are derived when scraped:
// a series' request count is the sum of its buckets, and a cache status's
// histogram adds its series up over protocols and status classes.
type requestCounts struct {
	reqDesc, durDesc *prometheus.Desc
	// buckets holds len(requestBuckets)+1 counts per series (the last
	// above every bound), series indexed [protocol][status class][cache
	// status] as flat; sums the nanoseconds per series.
	buckets []atomic.Uint64
	sums    []atomic.Int64
}

func newRequestCounts() *requestCounts {
	n := len(protocols) * len(statusClasses) * len(cacheStatuses)
	return &requestCounts{
		reqDesc: prometheus.NewDesc("accel_requests_total",
			"Client requests answered, by protocol (h1, h2), status class (2xx...) and cache status.",
			[]string{"proto", "status", "cache"}, nil),
		durDesc: prometheus.NewDesc("accel_request_duration_seconds",
			"Client request duration, from the parsed head to the last response byte handed to the socket, by cache status.",
			[]string{"cache"}, nil),
		buckets: make([]atomic.Uint64, n*(len(requestBuckets)+1)),
		sums:    make([]atomic.Int64, n),
	}
}

// observe counts one request of series i (see series) that took d.
func (r *requestCounts) observe(i int, d time.Duration) {
	// As a Prometheus histogram files it: in the first bucket whose upper
	// bound is at least d.
	v, b := d.Seconds(), 0
	for b < len(requestBuckets) && v > requestBuckets[b] {
		b++
	}
	r.buckets[i*(len(requestBuckets)+1)+b].Add(1)
	r.sums[i].Add(int64(d))
}

// series is the index of a protocol, status class and cache status.
func series(proto, class, cache int) int {
	return (proto*len(statusClasses)+class)*len(cacheStatuses) + cache
}

func (r *requestCounts) Describe(ch chan<- *prometheus.Desc) {
	ch <- r.reqDesc
	ch <- r.durDesc
}

func (r *requestCounts) Collect(ch chan<- prometheus.Metric) {
	nb := len(requestBuckets) + 1
	for c, cs := range cacheStatuses {
		var count uint64
		var sum int64
		per := make([]uint64, nb)
		for p, ps := range protocols {
			for k, sc := range statusClasses {
				i := series(p, k, c)
				var n uint64
				for b := range nb {
					v := r.buckets[i*nb+b].Load()
					per[b] += v
					n += v
				}
				count += n
				sum += r.sums[i].Load()
				ch <- prometheus.MustNewConstMetric(r.reqDesc, prometheus.CounterValue, float64(n), ps, sc, cs)
			}
		}
		cum := make(map[float64]uint64, len(requestBuckets))
		var below uint64
		for b, bound := range requestBuckets {
			below += per[b]
			cum[bound] = below
		}
		ch <- prometheus.MustNewConstHistogram(r.durDesc, count, time.Duration(sum).Seconds(), cum, cs)
	}
}
