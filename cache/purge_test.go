package cache

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/accel-proxy/accel/parser"
)

func taggedOrigin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "max-age=600, stale-while-revalidate=600")
	w.Header().Set("Surrogate-Key", "all "+strings.Trim(r.URL.Path, "/"))
	w.Header().Set("Cache-Tag", "path-"+strings.Split(strings.Trim(r.URL.Path, "/"), "/")[0])
	w.Write([]byte(r.URL.Path))
}

func TestPurgeKinds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		purge  func(c *Cache) (int, error)
		n      int
		purged []string
	}{
		{"url", func(c *Cache) (int, error) { return c.PurgeURL("http://EXAMPLE.com:80/a/1", false) }, 1, []string{"/a/1"}},
		{"url no scheme", func(c *Cache) (int, error) { return c.PurgeURL("example.com/a/1", false) }, 1, []string{"/a/1"}},
		{"prefix", func(c *Cache) (int, error) { return c.PurgePrefix("http://example.com/a/", false) }, 2, []string{"/a/1", "/a/2"}},
		{"tag", func(c *Cache) (int, error) { return c.PurgeTags([]string{"a/2", "b/1"}, false) }, 2, []string{"/a/2", "/b/1"}},
		{"cache-tag", func(c *Cache) (int, error) { return c.PurgeTags([]string{"path-b"}, false) }, 1, []string{"/b/1"}},
		{"all", func(c *Cache) (int, error) { return c.PurgeAll(false) }, 3, []string{"/a/1", "/a/2", "/b/1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			e := newEnv(t, Config{Dir: dir}, taggedOrigin)
			paths := []string{"/a/1", "/a/2", "/b/1"}
			for _, p := range paths {
				e.get(p)
			}
			e.settle()
			n, err := tc.purge(e.c)
			if err != nil || n != tc.n {
				t.Fatalf("purged %d (%v), want %d", n, err, tc.n)
			}
			// Also after a restart: the purge reached the disk.
			e.c.Close()
			c, err := Open(Config{Dir: dir, Now: e.clk.now})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			e.c = c
			for _, p := range paths {
				r := e.get(p)
				purged := strings.Contains(strings.Join(tc.purged, " "), p)
				if hit := hasStatus(r, "; hit"); hit == purged {
					t.Errorf("%s: %q (purged %v)", p, r.get("Cache-Status"), purged)
				}
			}
		})
	}
}

// A soft purge leaves the object to be served stale while one background
// fetch refreshes it.
func TestSoftPurge(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, Config{Dir: dir}, taggedOrigin)
	e.get("/a/1")
	e.settle()
	if n, err := e.c.PurgeTags([]string{"all"}, true); n != 1 || err != nil {
		t.Fatalf("%d %v", n, err)
	}
	e.c.Close()
	c, err := Open(Config{Dir: dir, Now: e.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e.c = c
	e.clk.advance(time.Second)
	r := e.get("/a/1")
	if r.body.String() != "/a/1" || !hasStatus(r, "; hit; ttl=-") {
		t.Fatalf("%q %q", r.body.String(), r.get("Cache-Status"))
	}
	e.settle()
	if n := e.o.hits.Load(); n != 2 {
		t.Fatalf("origin saw %d requests, want 2", n)
	}
	if r := e.get("/a/1"); !hasStatus(r, "; hit; ttl=5") {
		t.Fatalf("not refreshed: %q", r.get("Cache-Status"))
	}
}

// fillTagged stores n objects directly, every other one tagged "even",
// without an origin: the purge is what is measured.
func fillTagged(c *Cache, n int) {
	now := c.now()
	for i := range n {
		tags := []string{fmt.Sprintf("item-%d", i)}
		if i%2 == 0 {
			tags = append(tags, "even")
		}
		o := &object{uri: fmt.Sprintf("http://example.com/item/%d", i), status: 200,
			fields: parser.Fields{}.Add("Cache-Control", "max-age=600"), tags: tags,
			lifetime: 10 * time.Minute, received: now.UnixNano()}
		c.store(o, []byte("body"))
	}
}

func TestTagPurgeMany(t *testing.T) {
	const n = 20_000
	e := newEnv(t, Config{Dir: t.TempDir(), DiskBytes: 1 << 30}, serveBody("origin"))
	fillTagged(e.c, n)
	got, err := e.c.PurgeTags([]string{"even"}, false)
	if err != nil || got != n/2 {
		t.Fatalf("purged %d (%v), want %d", got, err, n/2)
	}
	for _, i := range []int{0, 1, 2, 3, n - 2, n - 1} {
		r := e.get(fmt.Sprintf("/item/%d", i))
		if hit := hasStatus(r, "; hit"); hit != (i%2 == 1) {
			t.Errorf("item %d: %q", i, r.get("Cache-Status"))
		}
	}
}

// itemURI is the primary key fillTagged stores item i under.
func itemURI(i int) string { return fmt.Sprintf("http://example.com/item/%d", i) }

// While a purge of 100 000 objects is swept, other goroutines' lookups are
// served between the sweep's steps, and every purged object misses from
// the moment the purge returns, swept yet or not.
func TestTagPurgeServesDuringSweep(t *testing.T) {
	const n, probes = 200_000, 50
	// 200 000 indexed objects need more than the default 64 MiB index.
	e := newEnv(t, Config{MemoryBytes: 1 << 30, Dir: t.TempDir(), DiskBytes: 4 << 30}, serveBody("origin"))
	fillTagged(e.c, n)
	returned := make(chan struct{})
	var steps, hits, misses int
	e.c.sweepStep = func(shard int) {
		if steps++; shard == 0 {
			// The sweep has begun, and the purge must not wait for it.
			select {
			case <-returned:
			case <-time.After(time.Minute):
				t.Error("PurgeTags waited for its sweep")
			}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for j := range probes {
				i := (shard*probes + j) * 2 % n
				if o, _, _ := e.c.lookup(itemURI(i+1), "", nil); o != nil {
					hits++
				}
				if o, _, _ := e.c.lookup(itemURI(i), "", nil); o == nil {
					misses++
				}
			}
		}()
		<-done
	}
	got, err := e.c.PurgeTags([]string{"even"}, false)
	close(returned)
	if err != nil || got != n/2 {
		t.Fatalf("purged %d (%v), want %d", got, err, n/2)
	}
	e.settle()
	if steps != shardCount || hits != shardCount*probes || misses != shardCount*probes {
		t.Fatalf("%d steps, %d hits, %d misses; want %d, %d, %d", steps, hits, misses,
			shardCount, shardCount*probes, shardCount*probes)
	}
	if objs := e.c.Stats().Objects; objs != n/2 {
		t.Fatalf("%d objects left, want %d", objs, n/2)
	}
}

// A purge holds across a restart that interrupts its sweep, and the sweep
// then completes and retires its record.
func TestPurgeRestartMidSweep(t *testing.T) {
	const n = 2000
	for _, tc := range []struct {
		name   string
		purge  func(c *Cache) (int, error)
		count  int
		purged func(i int) bool
	}{
		{"tag", func(c *Cache) (int, error) { return c.PurgeTags([]string{"even"}, false) },
			n / 2, func(i int) bool { return i%2 == 0 }},
		{"soft prefix", func(c *Cache) (int, error) { return c.PurgePrefix("example.com/item/1", true) },
			1111, func(i int) bool { return strings.HasPrefix(fmt.Sprint(i), "1") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			clk := &clock{}
			c, err := Open(Config{Dir: dir, Now: clk.now})
			if err != nil {
				t.Fatal(err)
			}
			fillTagged(c, n)
			closed := make(chan error, 1)
			c.sweepStep = func(shard int) {
				if shard == 0 {
					go func() { closed <- c.Close() }()
					for !c.closed.Load() {
						runtime.Gosched()
					}
				}
			}
			if got, err := tc.purge(c); err != nil || got != tc.count {
				t.Fatalf("purged %d (%v), want %d", got, err, tc.count)
			}
			if err := <-closed; err != nil {
				t.Fatal(err)
			}
			c, err = Open(Config{Dir: dir, Now: clk.now})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			check := func() {
				t.Helper()
				for i := range n {
					o, _, _ := c.lookup(itemURI(i), "", nil)
					switch {
					case o == nil && tc.purged(i) && tc.name == "tag":
					case o != nil && tc.purged(i) && tc.name != "tag" && o.lifetime < 10*time.Minute:
					case o != nil && !tc.purged(i) && o.lifetime == 10*time.Minute:
					default:
						t.Fatalf("item %d after restart: %v (purged %v)", i, o, tc.purged(i))
					}
				}
			}
			check()
			c.bg.Wait()
			if c.ix.bans.Load() != nil {
				t.Fatal("ban not retired")
			}
			left := 0
			if err := c.disk.scan('n', func(uint64, []byte) { left++ }); err != nil || left != 0 {
				t.Fatalf("%d ban records left (%v)", left, err)
			}
			check()
		})
	}
}

// BenchmarkTagPurge100k purges 100 000 tagged objects (of 200 000) from
// memory and disk; the time per op is the purge call, after which every
// purged object misses; sweep-ns/op is the background sweep that follows.
func BenchmarkTagPurge100k(b *testing.B) {
	var sweep time.Duration
	for b.Loop() {
		b.StopTimer()
		c, err := Open(Config{MemoryBytes: 1 << 30, Dir: b.TempDir(), DiskBytes: 4 << 30})
		if err != nil {
			b.Fatal(err)
		}
		fillTagged(c, 200_000)
		b.StartTimer()
		n, err := c.PurgeTags([]string{"even"}, false)
		b.StopTimer()
		if err != nil || n != 100_000 {
			b.Fatalf("purged %d: %v", n, err)
		}
		start := time.Now()
		c.bg.Wait()
		sweep += time.Since(start)
		c.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(sweep.Nanoseconds())/float64(b.N), "sweep-ns/op")
}
