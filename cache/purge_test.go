package cache

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"accel/parser"
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

// BenchmarkTagPurge100k purges 100 000 tagged objects (of 200 000) from
// memory and disk; the reported time per op is the whole purge.
func BenchmarkTagPurge100k(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		c, err := Open(Config{Dir: b.TempDir(), DiskBytes: 4 << 30})
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
		c.Close()
		b.StartTimer()
	}
}
