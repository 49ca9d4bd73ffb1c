package accel

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const adminToken = "test-token-0123456789abcdef"

// cachedConfig caches on every route and runs the admin API on loopback;
// /open/ accepts PURGE from loopback, /closed/ from another network only.
const cachedConfig = `
listen:
  - address: "127.0.0.1:0"
pools:
  - name: app
    servers:
      - address: "ORIGIN"
routes:
  - pool: app
    cache: {enabled: true}
  - path: /open/
    pool: app
    cache: {enabled: true}
    purge_from: ["127.0.0.0/8"]
  - path: /closed/
    pool: app
    cache: {enabled: true}
    purge_from: ["192.0.2.0/24"]
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "127.0.0.1:0"
  token: "` + adminToken + `"
`

// countingOrigin answers every path with a cacheable body tagged by the
// path's first segment, and counts requests per path.
type countingOrigin struct {
	*origin
	mu    sync.Mutex
	count map[string]int
}

func startCountingOrigin(t *testing.T) *countingOrigin {
	o := &countingOrigin{origin: startOrigin(t), count: map[string]int{}}
	o.handle = func(r *http.Request, _ []byte) (int, http.Header, []byte) {
		o.mu.Lock()
		o.count[r.URL.Path]++
		n := o.count[r.URL.Path]
		o.mu.Unlock()
		tag := strings.Split(strings.Trim(r.URL.Path, "/"), "/")[0]
		return 200, http.Header{
			"Cache-Control": {"max-age=300, stale-while-revalidate=300"},
			"Surrogate-Key": {"all tag-" + tag},
		}, []byte(r.URL.Path + " v" + string(rune('0'+n)))
	}
	return o
}

func (o *countingOrigin) hits(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count[path]
}

type cacheResult struct {
	body, status string
}

func cachedGet(t *testing.T, s *Server, path string) cacheResult {
	t.Helper()
	resp, err := client(t, "h1").Get(baseURL(s, "h1") + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return cacheResult{string(b), resp.Header.Get("Cache-Status")}
}

func isHit(r cacheResult) bool { return strings.Contains(r.status, "; hit") }

func adminDo(t *testing.T, s *Server, token, method, path string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+s.AdminAddr().String()+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminPurge drives each purge kind through the real admin listener:
// the purged objects miss on the next request, the others still hit.
func TestAdminPurge(t *testing.T) {
	o := startCountingOrigin(t)
	s := startAccel(t, cachedConfig, o.addr())
	host := s.Addrs()[0].String()
	paths := []string{"/a/1", "/b/1", "/b/2", "/static/x", "/static/y", "/c/1"}
	// A hit is a request the origin did not see.
	hit := func(p string) bool {
		before := o.hits(p)
		cachedGet(t, s, p)
		return o.hits(p) == before
	}
	warm := func() {
		for _, p := range paths {
			cachedGet(t, s, p)
			if !hit(p) {
				t.Fatalf("%s not a hit after warming", p)
			}
		}
	}
	expect := func(step string, missing ...string) {
		t.Helper()
		for _, p := range paths {
			if got, want := hit(p), !contains(missing, p); got != want {
				t.Errorf("%s: %s hit=%v, want %v", step, p, got, want)
			}
		}
	}
	warm()

	if code, body := adminDo(t, s, "wrong", "POST", "/purge/all", nil); code != 401 {
		t.Fatalf("wrong token: %d %s", code, body)
	}
	if code, _ := adminDo(t, s, "", "POST", "/purge/all", nil); code != 401 {
		t.Fatalf("missing token: %d", code)
	}
	expect("after refused purges")

	code, body := adminDo(t, s, adminToken, "POST", "/purge/url", url.Values{"url": {"http://" + host + "/a/1"}})
	if code != 200 || !strings.Contains(body, `"purged": 1`) {
		t.Fatalf("purge url: %d %s", code, body)
	}
	expect("purge url", "/a/1")

	code, body = adminDo(t, s, adminToken, "POST", "/purge/prefix", url.Values{"prefix": {host + "/static/"}})
	if code != 200 || !strings.Contains(body, `"purged": 2`) {
		t.Fatalf("purge prefix: %d %s", code, body)
	}
	expect("purge prefix", "/static/x", "/static/y")

	code, body = adminDo(t, s, adminToken, "POST", "/purge/tags", url.Values{"tags": {"tag-b"}})
	if code != 200 || !strings.Contains(body, `"purged": 2`) {
		t.Fatalf("purge tags: %d %s", code, body)
	}
	expect("purge tags", "/b/1", "/b/2")

	code, body = adminDo(t, s, adminToken, "POST", "/purge/all", nil)
	if code != 200 || !strings.Contains(body, `"purged": 6`) {
		t.Fatalf("purge all: %d %s", code, body)
	}
	expect("purge all", paths...)
}

// TestAdminSoftPurge: a soft-purged object is served stale at once and
// refreshed by exactly one background fetch.
func TestAdminSoftPurge(t *testing.T) {
	o := startCountingOrigin(t)
	s := startAccel(t, cachedConfig, o.addr())
	first := cachedGet(t, s, "/soft/1")
	if r := cachedGet(t, s, "/soft/1"); !isHit(r) {
		t.Fatalf("not a hit: %q", r.status)
	}
	code, body := adminDo(t, s, adminToken, "POST", "/purge/tags", url.Values{"tags": {"tag-soft"}, "soft": {"1"}})
	if code != 200 || !strings.Contains(body, `"purged": 1`) {
		t.Fatalf("soft purge: %d %s", code, body)
	}
	r := cachedGet(t, s, "/soft/1")
	if r.body != first.body || !isHit(r) || !strings.Contains(r.status, "detail=stale") {
		t.Fatalf("after soft purge got %q (%q), want the stale body %q", r.body, r.status, first.body)
	}
	for i := 0; i < 100 && o.hits("/soft/1") < 2; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := o.hits("/soft/1"); n != 2 {
		t.Fatalf("origin saw %d requests, want 2 (one background refresh)", n)
	}
	if r := cachedGet(t, s, "/soft/1"); !isHit(r) || r.body == first.body {
		t.Errorf("after refresh got %q (%q)", r.body, r.status)
	}
}

// TestPurgeMethod: PURGE on the client listener works from listed networks
// only.
func TestPurgeMethod(t *testing.T) {
	o := startCountingOrigin(t)
	s := startAccel(t, cachedConfig, o.addr())
	for _, tc := range []struct {
		path   string
		status int
	}{{"/open/1", 200}, {"/closed/1", 403}, {"/elsewhere/1", 405}} {
		cachedGet(t, s, tc.path)
		req, _ := http.NewRequest("PURGE", baseURL(s, "h1")+tc.path, nil)
		resp, err := client(t, "h1").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("PURGE %s: %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
		before := o.hits(tc.path)
		cachedGet(t, s, tc.path)
		if hit := o.hits(tc.path) == before; hit == (tc.status == 200) {
			t.Errorf("%s after PURGE answered %d: hit=%v", tc.path, tc.status, hit)
		}
	}
}

// TestMetricsMoveWithHits: /metrics parses as Prometheus text and its hit
// counter follows the hits served.
func TestMetricsMoveWithHits(t *testing.T) {
	o := startCountingOrigin(t)
	s := startAccel(t, cachedConfig, o.addr())
	hits := func() float64 {
		code, body := adminDo(t, s, adminToken, "GET", "/metrics", nil)
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("/metrics does not parse: %v", err)
		}
		var n float64
		for _, m := range families["accel_requests_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cache" && l.GetValue() == "hit" {
					n += m.GetCounter().GetValue()
				}
			}
		}
		return n
	}
	cachedGet(t, s, "/m/1")
	before := hits()
	for i := 0; i < 5; i++ {
		if r := cachedGet(t, s, "/m/1"); !isHit(r) {
			t.Fatalf("not a hit: %q", r.status)
		}
	}
	// A request is counted when its handler returns, which can be just
	// after the client has read the whole response.
	var got float64
	waitUntil(t, "5 hits counted", func() bool { got = hits() - before; return got >= 5 })
	if got != 5 {
		t.Errorf("hit counter moved by %v, want 5", got)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestStatsTopHostsAsPurgeKeys: the status page's top hosts name a host as
// the cache keys it (with its port, not the scheme's default), so that a
// URL built from one purges what was stored.
func TestStatsTopHostsAsPurgeKeys(t *testing.T) {
	o := startCountingOrigin(t)
	s := startAccel(t, cachedConfig, o.addr())
	cachedGet(t, s, "/a/1")
	var st struct {
		TopHosts []struct{ Key string } `json:"top_hosts"`
	}
	// The request is counted once its answer went out: wait for it.
	for try := 0; len(st.TopHosts) == 0; try++ {
		if try > 0 {
			time.Sleep(10 * time.Millisecond)
		}
		code, body := adminDo(t, s, adminToken, "GET", "/stats", nil)
		if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || try == 500 {
			t.Fatalf("stats: %d %s (%v)", code, body, err)
		}
	}
	if len(st.TopHosts) != 1 {
		t.Fatalf("top hosts %+v", st.TopHosts)
	}
	if want := s.Addrs()[0].String(); st.TopHosts[0].Key != want {
		t.Errorf("top host %q, want %q", st.TopHosts[0].Key, want)
	}
	code, body := adminDo(t, s, adminToken, "POST", "/purge/url", url.Values{"url": {"http://" + st.TopHosts[0].Key + "/a/1"}})
	if code != 200 || !strings.Contains(body, `"purged": 1`) {
		t.Errorf("purge of the top host's URL: %d %s", code, body)
	}
}
