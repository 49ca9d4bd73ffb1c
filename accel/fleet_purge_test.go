package accel

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/accel-proxy/accel/internal/testproc"
	"github.com/accel-proxy/accel/policy"
)

// fleetPurgeConfig is one instance of a fleet on IP, sharing purges
// through the Redis at REDIS.
const fleetPurgeConfig = `
listen:
  - address: "IP:0"
pools:
  - name: app
    servers:
      - address: "ORIGIN"
routes:
  - pool: app
    cache: {enabled: true}
    purge_from: ["127.0.0.0/8"]
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "IP:0"
  token: "` + adminToken + `"
fleet:
  redis: REDIS
  stream: test:purges
`

// fleetMember runs one instance from its data directory; stop shuts it
// down (and the test's end does, if it still runs).
type fleetMember struct {
	s    *Server
	dir  string
	stop func()
}

func startMember(t *testing.T, ip, originAddr, redisAddr, dir string) *fleetMember {
	t.Helper()
	text := strings.NewReplacer("IP", ip, "ORIGIN", originAddr, "REDIS", redisAddr, "DATADIR", dir).Replace(fleetPurgeConfig)
	file := filepath.Join(dir, "accel.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	m := &fleetMember{s: s, dir: dir}
	m.stop = func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	}
	t.Cleanup(m.stop)
	return m
}

// siteGet asks an instance for path on the fleet's one site name, as a
// balancer's clients would.
func siteGet(t *testing.T, s *Server, path string) cacheResult {
	t.Helper()
	req, _ := http.NewRequest("GET", baseURL(s, "h1")+path, nil)
	req.Host = "www.example.test"
	resp, err := client(t, "h1").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return cacheResult{string(b), resp.Header.Get("Cache-Status")}
}

// waitApplied waits until the member's saved last-applied id reaches the
// stream's last entry.
func waitApplied(t *testing.T, rp *testproc.Proc, m *fleetMember) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		want := lastStreamID(t, rp)
		b, _ := os.ReadFile(filepath.Join(m.dir, "fleet-purges.id"))
		if strings.TrimSpace(string(b)) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("member never applied %s (has %q)", want, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func lastStreamID(t *testing.T, rp *testproc.Proc) string {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: rp.Addr})
	defer rdb.Close()
	msgs, err := rdb.XRevRangeN(context.Background(), "test:purges", "+", "-", 1).Result()
	if err != nil || len(msgs) == 0 {
		t.Fatalf("reading the stream: %v %v", msgs, err)
	}
	return msgs[0].ID
}

// TestFleetPurge: a purge sent to A (admin API, then the PURGE method)
// makes B and C miss on their next request; C, stopped during a purge and
// restarted, misses the purged object on its first request and still
// hits the others.
func TestFleetPurge(t *testing.T) {
	o := startCountingOrigin(t)
	rp := testproc.Redis(t)
	var m []*fleetMember
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		m = append(m, startMember(t, ip, o.addr(), rp.Addr, t.TempDir()))
	}
	a, b, c := m[0], m[1], m[2]
	for _, p := range []string{"/p", "/q", "/r"} {
		for _, x := range m {
			siteGet(t, x.s, p)
			if r := siteGet(t, x.s, p); !isHit(r) {
				t.Fatalf("%s not cached: %s", p, r.status)
			}
		}
	}

	code, body := adminDo(t, a.s, adminToken, "POST", "/purge/url", url.Values{"url": {"http://www.example.test/p"}})
	if code != 200 {
		t.Fatalf("purge: %d %s", code, body)
	}
	for _, x := range []*fleetMember{b, c} {
		waitApplied(t, rp, x)
	}
	for i, x := range m {
		if r := siteGet(t, x.s, "/p"); isHit(r) {
			t.Errorf("member %d: /p still a hit after the purge: %s", i, r.status)
		}
		if r := siteGet(t, x.s, "/q"); !isHit(r) {
			t.Errorf("member %d: /q lost: %s", i, r.status)
		}
	}

	// C is down while the PURGE method purges /r through B.
	c.stop()
	req, _ := http.NewRequest("PURGE", baseURL(b.s, "h1")+"/r", nil)
	req.Host = "www.example.test"
	resp, err := client(t, "h1").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PURGE: %d", resp.StatusCode)
	}
	waitApplied(t, rp, a)
	if r := siteGet(t, a.s, "/r"); isHit(r) {
		t.Errorf("A: /r still a hit: %s", r.status)
	}
	c = startMember(t, "127.0.0.3", o.addr(), rp.Addr, c.dir)
	if r := siteGet(t, c.s, "/r"); isHit(r) {
		t.Errorf("restarted C: /r a hit on its first request: %s", r.status)
	}
	if r := siteGet(t, c.s, "/q"); !isHit(r) {
		t.Errorf("restarted C: /q lost (the cache should survive a replay): %s", r.status)
	}
}
