package admin

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// The label values a request is counted under. Anything else a caller
// passes is counted as "other", so a bug upstream of the metrics can never
// grow the number of series.
//
// Status codes are counted by class, as HAProxy's hrsp_1xx..hrsp_5xx and
// nginx's VTS do: a class per series keeps every series known at start,
// so all of them are exported at 0 before the first request and a
// dashboard's rate() never starts from a missing series.
var (
	protocols      = []string{"h1", "h2", "other"}
	statusClasses  = []string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}
	cacheStatuses  = []string{"hit", "stale", "revalidated", "miss", "pass", "bypass", "purge", "error", "other"}
	purgeKinds     = []string{"url", "prefix", "tags", "all", "other"}
	upstreamClass  = []string{"1xx", "2xx", "3xx", "4xx", "5xx", "error"}
	connProtocols  = []string{"h1", "h2"}
	handshakeTypes = []string{"full", "resumed"}
)

// requestBuckets cover a cache hit on loopback (tens of microseconds) up
// to a slow origin.
var requestBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// upstreamBuckets reach below net/http's defaults: an origin on the same
// LAN answers in about a millisecond, and the defaults would put every such
// answer in one bucket.
var upstreamBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// CacheStats is a snapshot of the cache, read once per scrape of /metrics
// and per GET /stats. It mirrors the cache's own stats type field for field
// so that accel converts one to the other without the two packages
// importing each other; /metrics exports the tier sizes, evictions and
// coalesced waiters (hits and misses are in accel_requests_total already),
// /stats all of it.
type CacheStats struct {
	// Objects is the number of stored responses (all variants).
	Objects int64 `json:"objects"`
	// MemoryObjects and MemoryBytes are what the memory tier holds.
	MemoryObjects int64 `json:"memory_objects"`
	MemoryBytes   int64 `json:"memory_bytes"`
	// DiskObjects and DiskBytes are what the persistent tier holds.
	DiskObjects int64 `json:"disk_objects"`
	DiskBytes   int64 `json:"disk_bytes"`
	// DiskState is the persistent tier's health: "ok", "read-only",
	// "off", or "" without one.
	DiskState string `json:"disk_state"`
	// DiskFailures counts the persistent tier's write failures.
	DiskFailures int64 `json:"disk_failures"`
	// DiskSkipped counts new objects kept in memory only because the
	// persistent tier's write queue was full.
	DiskSkipped int64 `json:"disk_skipped"`
	// DiskCorrupt counts bodies read from the persistent tier with a
	// wrong length or checksum: each one a miss, never served.
	DiskCorrupt int64 `json:"disk_corrupt"`
	// Evictions counts objects dropped for space.
	Evictions int64 `json:"evictions"`
	// CoalescedWaiters counts requests that waited for another request's
	// origin fetch instead of making their own.
	CoalescedWaiters int64 `json:"coalesced_waiters"`
	Hits             int64 `json:"hits"`
	Misses           int64 `json:"misses"`
	Stale            int64 `json:"stale"`
	Passes           int64 `json:"passes"`
}

// Metrics holds accel's Prometheus collectors in a registry of its own, so
// that two servers in one process (tests, mostly) never collide in the
// global one. Its methods are safe for concurrent use; the ones the request
// path calls cost an atomic add or two.
type Metrics struct {
	reg     *prometheus.Registry
	started time.Time

	// requests counts and times the answered requests (ObserveRequest):
	// it never hashes label values nor allocates.
	requests  *requestCounts
	conns     []prometheus.Gauge // indexed like connProtocols
	bytesIn   prometheus.Counter
	bytesOut  prometheus.Counter
	handshake [2]prometheus.Counter // [0] full, [1] resumed
	storeErrs prometheus.Counter
	rejects   *prometheus.CounterVec
	// fleetFetch counts misses sent to the owner member ("peer") and
	// those that went to the origin after the owner failed ("fallback").
	fleetFetch *prometheus.CounterVec
	h2errs     *prometheus.CounterVec
	purges     []prometheus.Counter // indexed like purgeKinds

	upLatency   *prometheus.HistogramVec
	upResponses *prometheus.CounterVec
	// upSeries holds each pool server's upstream series, resolved once
	// (InitPool, or the first try of a server it did not name), so that
	// ObserveUpstream, which runs for every origin request, hashes no
	// label values. The map is replaced, never changed: readers take it
	// without a lock; upMu serialises the writers.
	upSeries   atomic.Pointer[map[upKey]*upstreamSeries]
	upMu       sync.Mutex
	retries    *prometheus.CounterVec
	ejections  *prometheus.CounterVec
	allFailing *prometheus.CounterVec

	pools   *poolCollector
	servers *serverCollector
	cache   *cacheCollector

	// The status page's live lists.
	targets targets
	errors  recentErrors
}

// NewMetrics registers accel's collectors, plus the Go runtime and process
// collectors, in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), started: time.Now()}
	m.targets.hosts, m.targets.paths = newTopK(64), newTopK(256)

	m.requests = newRequestCounts()
	conns := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "accel_client_connections",
		Help: "Open client connections, by protocol once known (h1 for HTTP/1.x, cleartext or TLS; h2).",
	}, []string{"proto"})
	m.conns = make([]prometheus.Gauge, len(connProtocols))
	for i, p := range connProtocols {
		m.conns[i] = conns.WithLabelValues(p)
	}
	b := ReadBuild()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "accel_build_info",
		Help: "Always 1; the labels say which accel runs (accel version).",
	}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(b.Version, b.Revision, b.GoVersion).Set(1)
	m.bytesIn = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "accel_received_bytes_total",
		Help: "Request body bytes received from clients.",
	})
	m.bytesOut = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "accel_sent_bytes_total",
		Help: "Response body bytes sent to clients.",
	})
	hs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accel_tls_handshakes_total",
		Help: "Completed TLS handshakes, full or resumed.",
	}, []string{"type"})
	m.handshake = [2]prometheus.Counter{hs.WithLabelValues(handshakeTypes[0]), hs.WithLabelValues(handshakeTypes[1])}
	m.storeErrs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "accel_tls_session_store_errors_total",
		Help: "TLS session store errors; each one gave a full handshake instead of a resumed one.",
	})
	m.fleetFetch = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accel_fleet_fetches_total",
		Help: "Cache misses fetched from the fleet member owning the key (peer), or from the origin after that member failed or was too slow (fallback).",
	}, []string{"result"})
	m.rejects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accel_rejections_total",
		Help: "Connections or requests refused before reaching the pipeline, by reason.",
	}, []string{"reason"})
	m.h2errs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accel_http2_errors_total",
		Help: "HTTP/2 frames, streams and connections refused or cut, by reason (rapid reset, frame floods, malformed requests, ...).",
	}, []string{"reason"})
	pv := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accel_purges_total",
		Help: "Purge requests served, by kind.",
	}, []string{"kind"})
	m.purges = make([]prometheus.Counter, len(purgeKinds))
	for i, k := range purgeKinds {
		m.purges[i] = pv.WithLabelValues(k)
	}

	m.upLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "accel_upstream_request_duration_seconds",
		Help:    "Time from sending a request to an origin server to its response head, or to the failure.",
		Buckets: upstreamBuckets,
	}, []string{"pool", "server"})
	m.upResponses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accel_upstream_responses_total",
		Help: "Origin server answers by status class (1xx..5xx), or error when none came.",
	}, []string{"pool", "server", "class"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accel_upstream_retries_total",
		Help: "Requests retried after the named server failed them.",
	}, []string{"pool", "server"})
	m.ejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accel_upstream_ejections_total",
		Help: "Times the server was taken out of its pool for failing.",
	}, []string{"pool", "server"})

	m.allFailing = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "accel_upstream_all_failing_total",
		Help: "Times every server of the pool was ejected or down, so that requests went to all of them.",
	}, []string{"pool"})
	m.pools = newPoolCollector()
	m.servers = newServerCollector()
	m.cache = newCacheCollector()

	m.reg.MustRegister(m.requests, conns, build, m.servers, m.bytesIn, m.bytesOut, hs, m.storeErrs, m.rejects, m.h2errs, pv, m.fleetFetch,
		m.upLatency, m.upResponses, m.retries, m.ejections, m.allFailing, m.pools, m.cache,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// ObserveRequest counts one answered client request: its protocol ("h1",
// "h2"), its status, its cache status ("hit", "stale", "revalidated",
// "miss", "pass", "bypass", "purge", "error"), its body bytes in each
// direction and how long it took. It does not allocate.
func (m *Metrics) ObserveRequest(proto string, status int, cacheStatus string, bytesIn, bytesOut int64, d time.Duration) {
	class := len(statusClasses) - 1
	if status >= 100 && status <= 599 {
		class = status/100 - 1
	}
	m.requests.observe(series(index(protocols, proto), class, index(cacheStatuses, cacheStatus)), d)
	if bytesIn > 0 {
		m.bytesIn.Add(float64(bytesIn))
	}
	if bytesOut > 0 {
		m.bytesOut.Add(float64(bytesOut))
	}
}

type upKey struct{ pool, server string }

// upstreamSeries are one server's series; responses is indexed like
// upstreamClass.
type upstreamSeries struct {
	latency   prometheus.Observer
	responses []prometheus.Counter
}

// ObserveUpstream records one try against an origin server: how long it
// took and how it ended (a status, or err when no response came).
func (m *Metrics) ObserveUpstream(pool, server string, d time.Duration, status int, err error) {
	us := m.upstream(pool, server)
	us.latency.Observe(d.Seconds())
	class := len(upstreamClass) - 1 // "error"
	if err == nil && status >= 100 && status <= 599 {
		class = status/100 - 1
	}
	us.responses[class].Inc()
}

// upstream returns the series of server in pool, resolving them the first
// time.
func (m *Metrics) upstream(pool, server string) *upstreamSeries {
	k := upKey{pool, server}
	if all := m.upSeries.Load(); all != nil {
		if us := (*all)[k]; us != nil {
			return us
		}
	}
	m.upMu.Lock()
	defer m.upMu.Unlock()
	old := m.upSeries.Load()
	if old != nil && (*old)[k] != nil {
		return (*old)[k]
	}
	us := &upstreamSeries{latency: m.upLatency.WithLabelValues(pool, server)}
	for _, c := range upstreamClass {
		us.responses = append(us.responses, m.upResponses.WithLabelValues(pool, server, c))
	}
	all := map[upKey]*upstreamSeries{}
	if old != nil {
		all = maps.Clone(*old)
	}
	all[k] = us
	m.upSeries.Store(&all)
	return us
}

// ConnOpened and ConnClosed move the open client connections gauge of
// proto ("h1" or "h2"; anything else is not counted).
func (m *Metrics) ConnOpened(proto string) { m.conn(proto, 1) }

// ConnClosed is ConnOpened's other half.
func (m *Metrics) ConnClosed(proto string) { m.conn(proto, -1) }

func (m *Metrics) conn(proto string, d float64) {
	for i, p := range connProtocols {
		if p == proto {
			m.conns[i].Add(d)
		}
	}
}

// InitPool exports pool's per-server series at 0 before the first request
// reaches them.
func (m *Metrics) InitPool(pool string, servers []string) {
	for _, sv := range servers {
		m.upstream(pool, sv)
		m.retries.WithLabelValues(pool, sv)
		m.ejections.WithLabelValues(pool, sv)
	}
	m.allFailing.WithLabelValues(pool)
}

// InitRejections exports the rejection reasons known at start at 0.
func (m *Metrics) InitRejections(reasons ...string) {
	for _, r := range reasons {
		m.rejects.WithLabelValues(r)
	}
}

// IncRetry counts a request retried after server failed it.
func (m *Metrics) IncRetry(pool, server string) { m.retries.WithLabelValues(pool, server).Inc() }

// IncEjection counts server being taken out of pool.
func (m *Metrics) IncEjection(pool, server string) { m.ejections.WithLabelValues(pool, server).Inc() }

// IncAllFailing counts pool entering the state where every server is
// ejected or down and requests go to all of them.
func (m *Metrics) IncAllFailing(pool string) { m.allFailing.WithLabelValues(pool).Inc() }

// IncHandshake counts a completed TLS handshake.
func (m *Metrics) IncHandshake(resumed bool) {
	if resumed {
		m.handshake[1].Inc()
		return
	}
	m.handshake[0].Inc()
}

// IncSessionStoreError counts a failed TLS session store operation.
func (m *Metrics) IncSessionStoreError() { m.storeErrs.Inc() }

// IncFleetFetch counts a miss fetched from the fleet member owning its key
// ("peer") or from the origin after that member failed ("fallback").
func (m *Metrics) IncFleetFetch(result string) { m.fleetFetch.WithLabelValues(result).Inc() }

// IncRejection counts a refused connection or request. reason is a fixed
// name from the code (parser.Error.Name, "tls_handshake", ...), never
// anything a client sent, which keeps the label's values few.
func (m *Metrics) IncRejection(reason string) { m.rejects.WithLabelValues(reason).Inc() }

// IncHTTP2Error counts an HTTP/2 refusal: a stream reset or refused, or a
// connection cut by a limit. reason is a fixed name from package h2, never
// anything a client sent.
func (m *Metrics) IncHTTP2Error(reason string) { m.h2errs.WithLabelValues(reason).Inc() }

// IncPurge counts a purge of kind "url", "prefix", "tags" or "all".
func (m *Metrics) IncPurge(kind string) { m.purges[index(purgeKinds, kind)].Inc() }

// PoolStats is a snapshot of an origin pool, read once per scrape. It
// mirrors upstream.Stats field for field.
type PoolStats struct {
	Servers    int  // configured
	Ejected    int  // taken out by passive health
	Down       int  // marked down by active checks
	AllFailing bool // every server ejected or down: requests go to all
	Active     int  // connections leased to requests
	Open       int  // connections open, leased or idle
	Queued     int  // requests waiting for a connection
	// BufferFileErrors counts temp files for response buffering that
	// could not be made or written.
	BufferFileErrors int64
}

// SetPoolStatsFunc makes /metrics report pool through f, called once per
// scrape. A reload that rebuilds the pool calls it again and replaces f; a
// nil f stops reporting the pool.
func (m *Metrics) SetPoolStatsFunc(pool string, f func() PoolStats) { m.pools.set(pool, f) }

// ServerState is one origin server of a pool.
type ServerState struct {
	Addr string `json:"addr"`
	// Up is false while the server is ejected or failing health checks.
	Up bool `json:"up"`
	// InFlight counts the requests it is answering now.
	InFlight int `json:"in_flight"`
}

// SetServersFunc makes /metrics report pool's servers through f, called
// once per scrape; like SetPoolStatsFunc, a reload replaces f and nil
// drops the pool.
func (m *Metrics) SetServersFunc(pool string, f func() []ServerState) { m.servers.set(pool, f) }

// SetCacheStatsFunc makes /metrics and /stats report the cache through f,
// called once per scrape.
func (m *Metrics) SetCacheStatsFunc(f func() CacheStats) { m.cache.set(f) }

// index returns the position of v in values, or of the last one ("other")
// when v is not there.
func index(values []string, v string) int {
	for i, s := range values {
		if s == v {
			return i
		}
	}
	return len(values) - 1
}

// poolCollector reads each pool's state when scraped, so the request path
// never updates a gauge.
type poolCollector struct {
	queue, servers, allFailing, conns, fileErrs *prometheus.Desc
	// mu guards funcs, which a reload replaces while a scrape reads.
	mu    sync.Mutex
	funcs map[string]func() PoolStats
}

func newPoolCollector() *poolCollector {
	return &poolCollector{
		queue:      prometheus.NewDesc("accel_upstream_queue_depth", "Requests waiting for a connection, by pool.", []string{"pool"}, nil),
		servers:    prometheus.NewDesc("accel_upstream_servers", "Servers of the pool by state: configured, ejected (passive health), down (active checks).", []string{"pool", "state"}, nil),
		allFailing: prometheus.NewDesc("accel_upstream_all_failing", "1 while every server of the pool is ejected or down and requests go to all of them.", []string{"pool"}, nil),
		conns:      prometheus.NewDesc("accel_upstream_connections", "Origin connections of the pool: active (leased to a request) and open (leased or idle).", []string{"pool", "state"}, nil),
		fileErrs:   prometheus.NewDesc("accel_upstream_buffer_file_errors_total", "Temp files for response buffering that could not be made or written; each starts 10s of memory-only buffering.", []string{"pool"}, nil),
		funcs:      map[string]func() PoolStats{},
	}
}

func (c *poolCollector) set(pool string, f func() PoolStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f == nil {
		delete(c.funcs, pool)
		return
	}
	c.funcs[pool] = f
}

// stats returns a snapshot of every pool, read outside the lock so a slow
// pool cannot block set.
func (c *poolCollector) stats() map[string]PoolStats {
	c.mu.Lock()
	funcs := make(map[string]func() PoolStats, len(c.funcs))
	for p, f := range c.funcs {
		funcs[p] = f
	}
	c.mu.Unlock()
	out := make(map[string]PoolStats, len(funcs))
	for p, f := range funcs {
		out[p] = f()
	}
	return out
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.queue
	ch <- c.servers
	ch <- c.allFailing
	ch <- c.conns
	ch <- c.fileErrs
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	for pool, s := range c.stats() {
		gauge(c.queue, s.Queued, pool)
		gauge(c.servers, s.Servers, pool, "configured")
		gauge(c.servers, s.Ejected, pool, "ejected")
		gauge(c.servers, s.Down, pool, "down")
		failing := 0
		if s.AllFailing {
			failing = 1
		}
		gauge(c.allFailing, failing, pool)
		gauge(c.conns, s.Active, pool, "active")
		gauge(c.conns, s.Open, pool, "open")
		ch <- prometheus.MustNewConstMetric(c.fileErrs, prometheus.CounterValue, float64(s.BufferFileErrors), pool)
	}
}

// serverCollector reads each pool's servers when scraped: up and in
// flight per server.
type serverCollector struct {
	up, inFlight *prometheus.Desc
	// mu guards funcs, which a reload replaces while a scrape reads.
	mu    sync.Mutex
	funcs map[string]func() []ServerState
}

func newServerCollector() *serverCollector {
	return &serverCollector{
		up:       prometheus.NewDesc("accel_upstream_server_up", "1 while the server takes requests, 0 while ejected or failing its health check.", []string{"pool", "server"}, nil),
		inFlight: prometheus.NewDesc("accel_upstream_in_flight", "Requests the server is answering now (connections leased to it).", []string{"pool", "server"}, nil),
		funcs:    map[string]func() []ServerState{},
	}
}

func (c *serverCollector) set(pool string, f func() []ServerState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f == nil {
		delete(c.funcs, pool)
		return
	}
	c.funcs[pool] = f
}

// states reads every pool's servers, outside the lock so a slow pool
// cannot block set.
func (c *serverCollector) states() map[string][]ServerState {
	c.mu.Lock()
	funcs := make(map[string]func() []ServerState, len(c.funcs))
	for p, f := range c.funcs {
		funcs[p] = f
	}
	c.mu.Unlock()
	out := make(map[string][]ServerState, len(funcs))
	for p, f := range funcs {
		out[p] = f()
	}
	return out
}

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.inFlight
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	for pool, servers := range c.states() {
		for _, sv := range servers {
			up := 0.0
			if sv.Up {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, pool, sv.Addr)
			ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(sv.InFlight), pool, sv.Addr)
		}
	}
}

// cacheCollector turns one CacheStats snapshot per scrape into the cache's
// series; reading the cache once keeps them consistent with each other.
type cacheCollector struct {
	objects, bytes, evictions, coalesced *prometheus.Desc
	diskState, diskFailures, diskSkipped *prometheus.Desc
	diskCorrupt                          *prometheus.Desc

	mu sync.Mutex // guards f
	f  func() CacheStats
}

func newCacheCollector() *cacheCollector {
	return &cacheCollector{
		objects:   prometheus.NewDesc("accel_cache_objects", "Objects stored, by tier.", []string{"tier"}, nil),
		bytes:     prometheus.NewDesc("accel_cache_bytes", "Bytes stored, by tier.", []string{"tier"}, nil),
		evictions: prometheus.NewDesc("accel_cache_evictions_total", "Objects evicted to make room.", nil, nil),
		coalesced: prometheus.NewDesc("accel_cache_coalesced_waiters_total", "Requests that waited for another request's origin fetch.", nil, nil),
		diskState: prometheus.NewDesc("accel_cache_disk_state",
			"1 for the persistent tier's current state: ok, read-only (new objects stay in memory until a retry succeeds) or off (until a restart).",
			[]string{"state"}, nil),
		diskFailures: prometheus.NewDesc("accel_cache_disk_failures_total", "Write failures of the persistent tier (full, read-only, I/O errors, stalls).", nil, nil),
		diskSkipped:  prometheus.NewDesc("accel_cache_disk_skipped_total", "New objects kept in memory only because the persistent tier's write queue was full.", nil, nil),
		diskCorrupt:  prometheus.NewDesc("accel_cache_disk_corrupt_total", "Bodies read from the persistent tier with a wrong length or checksum (each one a miss, never served).", nil, nil),
	}
}

func (c *cacheCollector) set(f func() CacheStats) {
	c.mu.Lock()
	c.f = f
	c.mu.Unlock()
}

// snapshot returns the cache's stats, or false before SetCacheStatsFunc
// (or with the cache off).
func (c *cacheCollector) snapshot() (CacheStats, bool) {
	c.mu.Lock()
	f := c.f
	c.mu.Unlock()
	if f == nil {
		return CacheStats{}, false
	}
	return f(), true
}

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.objects
	ch <- c.bytes
	ch <- c.evictions
	ch <- c.coalesced
	ch <- c.diskState
	ch <- c.diskFailures
	ch <- c.diskSkipped
	ch <- c.diskCorrupt
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s, ok := c.snapshot()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.objects, prometheus.GaugeValue, float64(s.MemoryObjects), "memory")
	ch <- prometheus.MustNewConstMetric(c.objects, prometheus.GaugeValue, float64(s.DiskObjects), "disk")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.MemoryBytes), "memory")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.DiskBytes), "disk")
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(s.Evictions))
	ch <- prometheus.MustNewConstMetric(c.coalesced, prometheus.CounterValue, float64(s.CoalescedWaiters))
	if s.DiskState != "" {
		for _, st := range []string{"ok", "read-only", "off"} {
			v := 0.0
			if st == s.DiskState {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.diskState, prometheus.GaugeValue, v, st)
		}
		ch <- prometheus.MustNewConstMetric(c.diskFailures, prometheus.CounterValue, float64(s.DiskFailures))
		ch <- prometheus.MustNewConstMetric(c.diskSkipped, prometheus.CounterValue, float64(s.DiskSkipped))
		ch <- prometheus.MustNewConstMetric(c.diskCorrupt, prometheus.CounterValue, float64(s.DiskCorrupt))
	}
}
