package admin

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics through the listener and parses it with
// Prometheus's own text parser.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value returns the sample of family name whose labels include want, or
// NaN when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return math.NaN()
	}
next:
	for _, m := range f.GetMetric() {
		lp := labelsOf(m)
		for k, v := range want {
			if lp[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return math.NaN()
}

func TestMetricsEndpoint(t *testing.T) {
	m := NewMetrics()
	_, base := startServer(t, Config{Token: testToken}, m, Options{})

	hit := map[string]string{"proto": "h2", "status": "2xx", "cache": "hit"}
	before := scrape(t, base)
	if v := value(before, "accel_requests_total", hit); v != 0 {
		t.Fatalf("h2 hits before any request: %v, want 0 (series exist from the start)", v)
	}

	m.ObserveRequest("h2", 200, "hit", 0, 100, time.Millisecond)
	m.ObserveRequest("h2", 200, "hit", 10, 50, time.Millisecond)
	m.ObserveRequest("h1", 200, "miss", 0, 5, time.Millisecond)
	m.ObserveRequest("h3", 0, "weird", 0, 0, time.Millisecond) // unknown values land in "other"
	m.ObserveUpstream("web", "10.0.0.1:80", 20*time.Millisecond, 200, nil)
	m.ObserveUpstream("web", "10.0.0.1:80", time.Second, 0, errors.New("refused"))
	m.IncRetry("web", "10.0.0.1:80")
	m.IncEjection("web", "10.0.0.1:80")
	m.IncHandshake(true)
	m.IncHandshake(false)
	m.IncHandshake(false)
	m.IncSessionStoreError()
	m.IncRejection("cl_te")
	m.IncPurge("tags")
	m.IncAllFailing("web")
	m.SetPoolStatsFunc("web", func() PoolStats {
		return PoolStats{Servers: 3, Ejected: 2, Down: 1, AllFailing: true, Active: 4, Open: 6, Queued: 3, BufferFileErrors: 5}
	})
	m.SetCacheStatsFunc(func() CacheStats {
		return CacheStats{MemoryObjects: 4, MemoryBytes: 400, DiskObjects: 9, DiskBytes: 900, Evictions: 2, CoalescedWaiters: 6}
	})

	after := scrape(t, base)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"accel_requests_total", hit, 2},
		{"accel_requests_total", map[string]string{"proto": "h1", "status": "2xx", "cache": "miss"}, 1},
		{"accel_requests_total", map[string]string{"proto": "other", "status": "other", "cache": "other"}, 1},
		{"accel_received_bytes_total", nil, 10},
		{"accel_sent_bytes_total", nil, 155},
		{"accel_upstream_request_duration_seconds", map[string]string{"pool": "web", "server": "10.0.0.1:80"}, 2},
		{"accel_upstream_responses_total", map[string]string{"server": "10.0.0.1:80", "class": "2xx"}, 1},
		{"accel_upstream_responses_total", map[string]string{"server": "10.0.0.1:80", "class": "error"}, 1},
		{"accel_upstream_retries_total", map[string]string{"pool": "web"}, 1},
		{"accel_upstream_ejections_total", map[string]string{"pool": "web"}, 1},
		{"accel_upstream_queue_depth", map[string]string{"pool": "web"}, 3},
		{"accel_upstream_servers", map[string]string{"pool": "web", "state": "configured"}, 3},
		{"accel_upstream_servers", map[string]string{"pool": "web", "state": "ejected"}, 2},
		{"accel_upstream_servers", map[string]string{"pool": "web", "state": "down"}, 1},
		{"accel_upstream_all_failing", map[string]string{"pool": "web"}, 1},
		{"accel_upstream_all_failing_total", map[string]string{"pool": "web"}, 1},
		{"accel_upstream_connections", map[string]string{"pool": "web", "state": "active"}, 4},
		{"accel_upstream_connections", map[string]string{"pool": "web", "state": "open"}, 6},
		{"accel_upstream_buffer_file_errors_total", map[string]string{"pool": "web"}, 5},
		{"accel_tls_handshakes_total", map[string]string{"type": "resumed"}, 1},
		{"accel_tls_handshakes_total", map[string]string{"type": "full"}, 2},
		{"accel_tls_session_store_errors_total", nil, 1},
		{"accel_rejections_total", map[string]string{"reason": "cl_te"}, 1},
		{"accel_purges_total", map[string]string{"kind": "tags"}, 1},
		{"accel_cache_objects", map[string]string{"tier": "memory"}, 4},
		{"accel_cache_objects", map[string]string{"tier": "disk"}, 9},
		{"accel_cache_bytes", map[string]string{"tier": "disk"}, 900},
		{"accel_cache_evictions_total", nil, 2},
		{"accel_cache_coalesced_waiters_total", nil, 6},
	}
	for _, c := range checks {
		if got := value(after, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if after["go_goroutines"] == nil {
		t.Error("no Go runtime metrics")
	}

	// A reload replaces a pool's stats function; nil drops the pool.
	m.SetPoolStatsFunc("web", func() PoolStats { return PoolStats{Queued: 1} })
	if v := value(scrape(t, base), "accel_upstream_queue_depth", map[string]string{"pool": "web"}); v != 1 {
		t.Errorf("queue depth after replacing the func: %v, want 1", v)
	}
	m.SetPoolStatsFunc("web", nil)
	if v := value(scrape(t, base), "accel_upstream_queue_depth", map[string]string{"pool": "web"}); !math.IsNaN(v) {
		t.Errorf("queue depth of a dropped pool: %v, want no series", v)
	}
}

func TestStats(t *testing.T) {
	m := NewMetrics()
	_, base := startServer(t, Config{Token: testToken}, m, Options{
		Stats: func() any {
			return map[string]any{"tls_sessions": map[string]int{"stored": 5}, "queue_depth": map[string]int{"api": 9}}
		},
	})

	get := func() map[string]any {
		t.Helper()
		status, h, body := call(t, "GET", base+"/stats", testToken, "", "")
		if status != 200 || h.Get("Content-Type") != "application/json" {
			t.Fatalf("GET /stats: %d %q %s", status, h.Get("Content-Type"), body)
		}
		var out map[string]any
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("GET /stats: %v in %s", err, body)
		}
		return out
	}

	st := get()
	if st["hit_ratio"] != nil {
		t.Errorf("hit_ratio before any lookup: %v, want null", st["hit_ratio"])
	}
	if _, ok := st["cache"]; ok {
		t.Errorf("cache section without a cache stats func: %v", st["cache"])
	}

	for range 3 {
		m.ObserveRequest("h1", 200, "hit", 0, 10, time.Millisecond)
	}
	m.ObserveRequest("h2", 200, "stale", 0, 10, time.Millisecond)
	m.ObserveRequest("h2", 200, "miss", 0, 10, time.Millisecond)
	m.ObserveRequest("h2", 200, "pass", 7, 10, time.Millisecond) // not a lookup: no effect on the ratio
	m.ObserveUpstream("web", "a:80", 10*time.Millisecond, 503, nil)
	m.ObserveUpstream("web", "a:80", 30*time.Millisecond, 200, nil)
	m.IncRetry("web", "a:80")
	m.IncHandshake(true)
	m.IncRejection("obs_fold")
	m.SetCacheStatsFunc(func() CacheStats { return CacheStats{Objects: 12, DiskBytes: 1000} })
	m.SetPoolStatsFunc("web", func() PoolStats { return PoolStats{Queued: 2} })

	st = get()
	want := map[string]any{
		"requests.total":                         6.0,
		"requests.by_protocol.h1.hit":            3.0,
		"requests.by_protocol.h2.stale":          1.0,
		"requests.by_cache_status.miss":          1.0,
		"requests.by_cache_status.pass":          1.0,
		"hit_ratio":                              0.8, // (3 hit + 1 stale) / (4 + 1 miss)
		"bytes.in":                               7.0,
		"bytes.out":                              60.0,
		"upstream.web.a:80.tries":                2.0,
		"upstream.web.a:80.responses.5xx":        1.0,
		"upstream.web.a:80.responses.2xx":        1.0,
		"upstream.web.a:80.retries":              1.0,
		"upstream.web.a:80.ejections":            0.0,
		"upstream.web.a:80.mean_latency_seconds": 0.02,
		"tls.handshakes_resumed":                 1.0,
		"tls.handshakes_full":                    0.0,
		"rejections.obs_fold":                    1.0,
		"cache.objects":                          12.0,
		"cache.disk_bytes":                       1000.0,
		"tls_sessions.stored":                    5.0, // merged from Options.Stats
		"queue_depth.api":                        nil, // built-in keys win over Options.Stats
		"queue_depth.web":                        2.0,
	}
	for path, w := range want {
		got := lookup(st, path)
		if f, ok := got.(float64); ok && w != nil && math.Abs(f-w.(float64)) < 1e-9 || got == nil && w == nil {
			continue
		}
		t.Errorf("%s = %v, want %v", path, got, w)
	}
	if st["uptime_seconds"] == nil {
		t.Error("no uptime_seconds")
	}
}

// lookup follows a dotted path through decoded JSON; the last two parts may
// hold a colon but no dot, which is enough for the keys used here.
func lookup(v any, path string) any {
	parts := strings.Split(path, ".")
	for _, p := range parts {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// TestObserveRequestAllocs keeps the per-request path free of allocations.
func TestObserveRequestAllocs(t *testing.T) {
	m := NewMetrics()
	if n := testing.AllocsPerRun(100, func() {
		m.ObserveRequest("h1", 200, "hit", 10, 1000, time.Millisecond)
		m.IncHandshake(true)
	}); n != 0 {
		t.Errorf("ObserveRequest allocates %v times", n)
	}
}

// Every origin request is observed: once its pool is known, that costs
// no allocation (nor a hash of label values), whatever the status.
func TestObserveUpstreamAllocs(t *testing.T) {
	m := NewMetrics()
	m.InitPool("web", []string{"a:80", "b:80"})
	fail := errors.New("refused")
	if n := testing.AllocsPerRun(100, func() {
		m.ObserveUpstream("web", "a:80", time.Millisecond, 200, nil)
		m.ObserveUpstream("web", "b:80", time.Millisecond, 503, nil)
		m.ObserveUpstream("web", "b:80", time.Millisecond, 0, fail)
	}); n != 0 {
		t.Errorf("ObserveUpstream allocates %v times", n)
	}
}

// TestRequestDurationBuckets: a request's duration lands where a
// Prometheus histogram puts it (a duration equal to a bound is within it),
// the sum is exact, and the requests of every protocol and status class
// add up in their cache status's histogram.
func TestRequestDurationBuckets(t *testing.T) {
	m := NewMetrics()
	_, base := startServer(t, Config{Token: testToken}, m, Options{})
	m.ObserveRequest("h1", 200, "pass", 0, 0, 250*time.Microsecond)
	m.ObserveRequest("h2", 404, "pass", 0, 0, 251*time.Microsecond)
	m.ObserveRequest("h1", 503, "pass", 0, 0, time.Minute)
	m.ObserveRequest("h1", 200, "hit", 0, 0, time.Microsecond)

	fams := scrape(t, base)
	var h *dto.Histogram
	for _, mt := range fams["accel_request_duration_seconds"].GetMetric() {
		if labelsOf(mt)["cache"] == "pass" {
			h = mt.GetHistogram()
		}
	}
	if h == nil {
		t.Fatal("no accel_request_duration_seconds{cache=pass}")
	}
	if h.GetSampleCount() != 3 {
		t.Errorf("pass requests timed: %d, want 3", h.GetSampleCount())
	}
	if want := (250*time.Microsecond + 251*time.Microsecond + time.Minute).Seconds(); math.Abs(h.GetSampleSum()-want) > 1e-9 {
		t.Errorf("sum %v, want %v", h.GetSampleSum(), want)
	}
	want := map[float64]uint64{.0001: 0, .00025: 1, .0005: 2, 30: 2}
	for _, b := range h.GetBucket() {
		if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"proto": "h1", "status": "2xx", "cache": "pass"}, 1},
		{map[string]string{"proto": "h2", "status": "4xx", "cache": "pass"}, 1},
		{map[string]string{"proto": "h1", "status": "5xx", "cache": "pass"}, 1},
		{map[string]string{"proto": "h1", "status": "2xx", "cache": "hit"}, 1},
		{map[string]string{"proto": "h2", "status": "2xx", "cache": "hit"}, 0},
	} {
		if v := value(fams, "accel_requests_total", c.labels); v != c.want {
			t.Errorf("accel_requests_total%v = %v, want %v", c.labels, v, c.want)
		}
	}
}

// TestMetricsDocumented keeps docs/admin.md's table and /metrics in step:
// every accel_* family the table names is exported with the type it
// gives, and every exported accel_* family is in the table. A metrics
// object with every series touched once stands for a running server.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/admin.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{} // name: type
	names := regexp.MustCompile("`(accel_[a-z0-9_]+)`")
	for line := range strings.Lines(string(doc)) {
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(line, "| `accel_") || len(cells) < 4 {
			continue
		}
		for _, n := range names.FindAllStringSubmatch(cells[1], -1) {
			documented[n[1]] = strings.TrimSpace(cells[2])
		}
	}
	if len(documented) < 30 {
		t.Fatalf("found %d families in docs/admin.md's table; is it still a table?", len(documented))
	}

	m := NewMetrics()
	m.InitPool("web", []string{"a:80"})
	m.InitRejections("cl_te")
	m.ObserveRequest("h1", 200, "hit", 1, 2, time.Millisecond)
	m.ObserveUpstream("web", "a:80", 3*time.Millisecond, 200, nil)
	m.IncFleetFetch("peer")
	m.IncHTTP2Error("too_many_resets")
	m.SetPoolStatsFunc("web", func() PoolStats { return PoolStats{Servers: 1} })
	m.SetServersFunc("web", func() []ServerState { return []ServerState{{Addr: "a:80", Up: true}} })
	m.SetCacheStatsFunc(func() CacheStats { return CacheStats{DiskState: "ok"} })
	_, base := startServer(t, Config{Token: testToken}, m, Options{})
	fams := scrape(t, base)
	for name, typ := range documented {
		f := fams[name]
		if f == nil {
			t.Errorf("%s is documented but not exported", name)
		} else if got := strings.ToLower(f.GetType().String()); got != typ {
			t.Errorf("%s is a %s, documented as a %s", name, got, typ)
		}
	}
	for name := range fams {
		if _, ok := documented[name]; !ok && strings.HasPrefix(name, "accel_") {
			t.Errorf("%s is exported but not in docs/admin.md's table", name)
		}
	}
}
