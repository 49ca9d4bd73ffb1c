package accel

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A stale-while-revalidate refresh runs after its request ended; it pins a
// config generation of its own, so a reload does not close its pool under
// it and the refresh reaches the origin.
func TestBackgroundRefreshSurvivesReload(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	hold := make(chan struct{})
	var heldA atomic.Bool
	clk := &testClock{}
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		n := hits[r.URL.Path]
		mu.Unlock()
		if r.URL.Path == "/a" && n > 1 {
			heldA.Store(true)
			<-hold
		}
		dateBy(w, clk)
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=60")
		io.WriteString(w, r.URL.Path+" version "+strconv.Itoa(n))
	})
	count := func(p string) int {
		mu.Lock()
		defer mu.Unlock()
		return hits[p]
	}
	cfg := strings.Replace(cacheConfig, "    servers:",
		"    max_conns_per_server: 1\n    queue_size: 10\n    queue_timeout: 10s\n    servers:", 1)
	s := startAccelClock(t, cfg, o.addr, t.TempDir(), nil, clk)
	fetch(t, s, "GET", "/a")
	fetch(t, s, "GET", "/b")
	clk.advance(1100 * time.Millisecond)

	// /a's refresh takes the pool's only connection and is held by the
	// origin; /b's refresh queues behind it. Both clients are answered stale.
	if g := fetch(t, s, "GET", "/a"); !strings.HasPrefix(g.body, "/a version 1") {
		t.Fatalf("stale /a: %q", g.body)
	}
	waitFor(t, "the refresh of /a to reach the origin", heldA.Load)
	if g := fetch(t, s, "GET", "/b"); !strings.HasPrefix(g.body, "/b version 1") {
		t.Fatalf("stale /b: %q", g.body)
	}
	pool := s.state.Load().pools["app"]
	waitFor(t, "the refresh of /b to queue", func() bool { return pool.Stats().Queued == 1 })

	// A reload (same file) retires the generation both refreshes use.
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	close(hold)
	// Dropped, the refresh never comes: waitFor fails after its bound.
	waitFor(t, "the queued refresh of /b, which the reload must not drop", func() bool { return count("/b") == 2 })
}
