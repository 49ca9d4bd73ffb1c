package cache

import (
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDiskBoundEvicts: storing more than DiskBytes keeps the persistent
// tier's objects under what the bound leaves them (dataBound), counts
// evictions, and keeps the newest objects. TestDiskBoundCountsPebbleFiles
// measures the files.
func TestDiskBoundEvicts(t *testing.T) {
	const bound = 2 << 20
	body := strings.Repeat("x", 16<<10)
	e := newEnv(t, Config{Dir: t.TempDir(), DiskBytes: bound}, serveBody(body, "Cache-Control", "max-age=600"))
	for i := 0; i < 300; i++ {
		e.get("/obj/" + strconv.Itoa(i))
		e.settle()
	}
	s := e.c.Stats()
	if s.DiskBytes > dataBound(bound) || s.Evictions == 0 {
		t.Fatalf("disk tier holds %d bytes (bound %d leaves %d), %d evictions", s.DiskBytes, bound, dataBound(bound), s.Evictions)
	}
	before := e.o.hits.Load()
	if r := e.get("/obj/299"); r.body.String() != body || !hasStatus(r, "; hit") {
		t.Errorf("newest object not kept: %q", r.get("Cache-Status"))
	}
	if e.o.hits.Load() != before {
		t.Error("newest object went to the origin")
	}
}

// TestIndexBoundEvicts: the index of stored objects is part of the memory
// bound, with a disk tier or without: many small objects evict the least
// recently used ones instead of growing the heap past MemoryBytes (before,
// a disk tier of 1 KiB objects grew the heap by 2.4 KB an object whatever
// the memory setting), and the newest object stays a hit.
func TestIndexBoundEvicts(t *testing.T) {
	const memory, n = 4 << 20, 10_000
	body := strings.Repeat("i", 1<<10)
	for _, dir := range []string{"", t.TempDir()} {
		e := newEnv(t, Config{MemoryBytes: memory, Dir: dir, DiskBytes: 1 << 30}, serveBody(body, "Cache-Control", "max-age=600"))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := 0; i < n; i++ {
			e.get("/small/" + strconv.Itoa(i))
		}
		e.settle()
		runtime.GC()
		runtime.ReadMemStats(&after)
		s := e.c.Stats()
		t.Logf("disk %q: heap grew %d bytes, index %d bytes, %d objects", dir, int64(after.HeapInuse)-int64(before.HeapInuse), e.c.ix.meta.Load(), s.Objects)
		if meta := e.c.ix.meta.Load(); meta > metaBudget(memory) || s.Evictions == 0 {
			t.Errorf("disk %q: index holds %d bytes (budget %d), %d objects, %d evictions", dir, meta, metaBudget(memory), s.Objects, s.Evictions)
		}
		// Bodies (3 MiB), the index (1 MiB), pebble's memtable and block
		// cache when there is a disk (4 MiB at most): 10 000 objects
		// indexed without the bound take 24 MB.
		if grew := int64(after.HeapInuse) - int64(before.HeapInuse); !raceEnabled && grew > 2*memory+4<<20 {
			t.Errorf("disk %q: heap grew %d bytes for %d stored objects with MemoryBytes %d", dir, grew, n, memory)
		}
		before2 := e.o.hits.Load()
		if r := e.get("/small/" + strconv.Itoa(n-1)); r.body.String() != body || !hasStatus(r, "; hit") {
			t.Errorf("disk %q: newest object not kept: %q", dir, r.get("Cache-Status"))
		}
		if e.o.hits.Load() != before2 {
			t.Errorf("disk %q: newest object went to the origin", dir)
		}
	}
}

// TestIndexEvictionKeepsUsed: eviction compares hints of when objects
// were last used, which hits do not write; an object read since it was
// stored must not go on its old hint. The first objects stored, read
// again after every other was stored, all survive an eviction (a tenth
// of the index, at random places: a sample is taken from one shard of
// some twenty objects, so evicting much more would take some of them as
// the oldest of their shard); on the store-time hints alone most of them
// went first.
func TestIndexEvictionKeepsUsed(t *testing.T) {
	body := strings.Repeat("u", 256)
	e := newEnv(t, Config{MemoryBytes: 4 << 20}, serveBody(body, "Cache-Control", "max-age=86400"))
	fill := func(prefix string, from, to int) {
		for i := from; i < to; i++ {
			e.clk.advance(time.Millisecond)
			if r := e.get(prefix + strconv.Itoa(i)); r.body.String() != body {
				t.Fatalf("%s%d: %d bytes", prefix, i, r.body.Len())
			}
		}
		e.settle()
	}
	// Up to the index's budget, without an eviction: objects of one size.
	fill("/old/", 0, 1)
	n, each := 1, e.c.ix.meta.Load()
	for ; e.c.ix.meta.Load()+2*each < metaBudget(4<<20); n++ {
		fill("/old/", n, n+1)
	}
	if s := e.c.Stats(); s.Evictions != 0 {
		t.Fatalf("%d evictions filling the index", s.Evictions)
	}
	const read = 50
	for i := range read {
		e.clk.advance(time.Millisecond)
		if r := e.get("/old/" + strconv.Itoa(i)); !hasStatus(r, "; hit") {
			t.Fatalf("/old/%d: %q", i, r.get("Cache-Status"))
		}
	}
	before := e.o.hits.Load()
	for i := 0; e.c.Stats().Evictions == 0; i++ {
		if i > n {
			t.Fatalf("%d new objects stored, %d evictions", i, e.c.Stats().Evictions)
		}
		fill("/new/", i, i+1)
	}
	e.o.hits.Store(before)
	for i := range read {
		e.get("/old/" + strconv.Itoa(i))
	}
	if got := e.o.hits.Load() - before; got != 0 {
		t.Errorf("%d of the %d objects read since they were stored were evicted (of %d stored first, %d evicted)", got, read, n, e.c.Stats().Evictions)
	}
}

// TestMaxObjectSizePassesThrough: a body over the route's maximum object
// size is passed to the client whole and not stored, whether its length
// is announced or only found out while it streams; neither answer says
// "stored" (a head without a length never does: the body may turn out too
// big).
func TestMaxObjectSizePassesThrough(t *testing.T) {
	body := strings.Repeat("y", 4<<10)
	for _, announced := range []bool{true, false} {
		fields := []string{"Cache-Control", "max-age=600"}
		if announced {
			fields = append(fields, "Content-Length", strconv.Itoa(len(body)))
		}
		e := newEnv(t, Config{}, serveBody(body, fields...))
		e.rules.MaxObjectSize = 1 << 10
		for i := 0; i < 2; i++ {
			r := e.get("/big")
			e.settle()
			if r.body.String() != body || hasStatus(r, "; hit") || hasStatus(r, "stored") {
				t.Fatalf("announced=%v, request %d: %d bytes, Cache-Status %q", announced, i, r.body.Len(), r.get("Cache-Status"))
			}
		}
		if n := e.o.hits.Load(); n != 2 {
			t.Errorf("announced=%v: origin saw %d requests, want 2", announced, n)
		}
	}
}

// TestStoredAnnouncedOnlyWhenKnown: Cache-Status says "stored" only when
// the head can know it: a known length within the limit. A chunked body
// does not say it, is stored when it arrives whole, and is not when the
// origin cuts it off.
func TestStoredAnnouncedOnlyWhenKnown(t *testing.T) {
	body := strings.Repeat("z", 3000)
	e := newEnv(t, Config{}, serveBody(body, "Cache-Control", "max-age=600", "Content-Length", strconv.Itoa(len(body))))
	if r := e.get("/known"); !hasStatus(r, "; stored") {
		t.Errorf("known length: Cache-Status %q, want stored", r.get("Cache-Status"))
	}
	e.settle()
	e.o.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, body[:1000])
		w.(http.Flusher).Flush() // chunked from here on
		io.WriteString(w, body[1000:])
	})
	r := e.get("/chunked")
	e.settle()
	if hasStatus(r, "stored") || r.body.String() != body {
		t.Errorf("chunked: Cache-Status %q, %d bytes", r.get("Cache-Status"), r.body.Len())
	}
	if r := e.get("/chunked"); !hasStatus(r, "; hit") {
		t.Errorf("a whole chunked body was not stored: %q", r.get("Cache-Status"))
	}
	e.o.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, body[:1000])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the origin cuts the body off
	})
	r, _, _ = e.do("GET", "/cut")
	e.settle()
	if hasStatus(r, "stored") {
		t.Errorf("cut off: Cache-Status %q says stored", r.get("Cache-Status"))
	}
	before := e.o.hits.Load()
	e.do("GET", "/cut")
	if e.o.hits.Load() != before+1 {
		t.Error("a cut-off body was stored")
	}
}

// TestEvictionSampleFollowsIndex: the objects eviction samples from are
// exactly the indexed ones through every way an object enters, changes or
// leaves the index (a re-store, a Vary change, soft and hard purges by
// URL, prefix and tag, eviction itself), so that it never picks a purged
// object nor misses a stored one.
func TestEvictionSampleFollowsIndex(t *testing.T) {
	e := newEnv(t, Config{MemoryBytes: 4 << 20, Dir: t.TempDir(), DiskBytes: 1 << 30}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "all "+strings.Split(strings.Trim(r.URL.Path, "/"), "/")[0])
		if strings.HasPrefix(r.URL.Path, "/vary/") {
			w.Header().Set("Vary", r.Header.Get("X-Vary-By"))
		}
		io.WriteString(w, strings.Repeat("s", 512))
	})
	check := func(step string) {
		t.Helper()
		n := 0
		for i := range e.c.ix.shards {
			s := &e.c.ix.shards[i]
			s.mu.RLock()
			indexed := map[*object]bool{}
			for _, u := range s.uris {
				for o := range u.all {
					indexed[o] = true
				}
			}
			for slot, e := range s.objs {
				o := e.o
				if !indexed[o] || o.slot != slot {
					t.Errorf("%s: shard %d samples %s (slot %d, at %d), not indexed there", step, i, o.uri, o.slot, slot)
				}
				if e.hint > o.used.Load() {
					t.Errorf("%s: %s has a hint (%d) past its last use (%d)", step, o.uri, e.hint, o.used.Load())
				}
				delete(indexed, o)
			}
			for o := range indexed {
				t.Errorf("%s: shard %d never samples %s", step, i, o.uri)
			}
			n += len(s.objs)
			s.mu.RUnlock()
		}
		if objs := e.c.ix.objects.Load(); int64(n) != objs {
			t.Errorf("%s: %d objects sampled, %d indexed", step, n, objs)
		}
	}
	for i := range 200 {
		e.get("/a/" + strconv.Itoa(i))
		e.get("/b/" + strconv.Itoa(i))
	}
	e.settle()
	check("stored")
	e.clk.advance(time.Hour)
	e.get("/a/1")
	e.get("/vary/x", "X-Vary-By", "Accept", "Accept", "text/html")
	e.get("/vary/x", "X-Vary-By", "Accept", "Accept", "text/plain")
	e.get("/vary/x", "X-Vary-By", "Accept-Language", "Accept-Language", "de")
	e.settle()
	check("re-stored, Vary changed")
	mustPurge := func(n int, err error) {
		t.Helper()
		if err != nil || n == 0 {
			t.Fatalf("purge: %d, %v", n, err)
		}
	}
	mustPurge(e.c.PurgeURL("http://example.com/a/2", false))
	mustPurge(e.c.PurgeURL("http://example.com/a/3", true))
	mustPurge(e.c.PurgePrefix("http://example.com/b/1", false))
	mustPurge(e.c.PurgeTags([]string{"b"}, true))
	e.settle()
	check("purged")
	for i := range 3000 {
		e.get("/c/" + strconv.Itoa(i))
	}
	e.settle()
	if e.c.Stats().Evictions == 0 {
		t.Fatal("nothing evicted")
	}
	check("evicted")
	mustPurge(e.c.PurgeAll(false))
	e.settle()
	check("all purged")
}

// TestMemoryTierKeepsReadBodies: without a disk, a flood of new objects
// read once (a crawler) evicts its own kind, not the object clients keep
// reading: the hot object is fetched from the origin once in all, the
// tier stays within its budget, and the newest scanned object is a hit.
func TestMemoryTierKeepsReadBodies(t *testing.T) {
	const memory, scans = 4 << 20, 2000
	body := strings.Repeat("m", 16<<10)
	var hot atomic.Int64
	e := newEnv(t, Config{MemoryBytes: memory}, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hot" {
			hot.Add(1)
		}
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, body)
	})
	e.get("/hot")
	e.settle()
	for i := range scans {
		e.get("/scan/" + strconv.Itoa(i))
		if i%10 == 0 {
			if r := e.get("/hot"); r.body.String() != body {
				t.Fatalf("scan %d: hot object answered %d bytes", i, r.body.Len())
			}
		}
	}
	e.settle()
	s := e.c.Stats()
	if got := hot.Load(); got != 1 {
		t.Errorf("hot object fetched from the origin %d times during %d scans, want once", got, scans)
	}
	if s.MemoryBytes > bodyBudget(memory) || s.Evictions == 0 {
		t.Errorf("memory tier holds %d bytes in %d objects (budget %d), %d evictions", s.MemoryBytes, s.MemoryObjects, bodyBudget(memory), s.Evictions)
	}
	before := e.o.hits.Load()
	if r := e.get("/scan/" + strconv.Itoa(scans-1)); r.body.String() != body || !hasStatus(r, "; hit") {
		t.Errorf("newest object not kept: %q", r.get("Cache-Status"))
	}
	if e.o.hits.Load() != before {
		t.Error("newest object went to the origin")
	}
}

// TestMemoryTierConcurrent: stores, reads, purges and evictions of one
// small tier at once (run under -race) leave its counts true: the bytes
// and objects it reports are those of the bodies it holds, within its
// budget, and every body read is the one stored for its object. Each
// operation goes through a new copy of its object, as updates make them,
// and the copies of one id share one entry.
func TestMemoryTierConcurrent(t *testing.T) {
	const budget = 64 << 10
	m := newMemTier(budget, nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var objs [300]*object
			for i := range objs {
				id := uint64(g*2000 + i + 1)
				objs[i] = &object{id: id, place: new(memPlace), size: int64(1<<10 + id%7)}
			}
			for i := range 2000 {
				o := objs[i%300].clone()
				body := []byte(strings.Repeat(strconv.Itoa(int(o.id%10)), int(o.size)))
				switch i % 4 {
				case 0, 1:
					if !m.put(o, body) {
						t.Errorf("put of %d bytes refused", len(body))
						return
					}
				case 2:
					if b, ok := m.get(o); ok && string(b) != string(body) {
						t.Errorf("object %d read %q...", o.id, b[:8])
						return
					}
				case 3:
					m.del(o)
				}
			}
		}()
	}
	wg.Wait()
	var objects, bytes int64
	for i := range m.shards {
		for j := range m.shards[i].ents {
			e := &m.shards[i].ents[j]
			objects++
			bytes += int64(len(e.body)) + memOverhead
			if int(e.o.place.at) != j+1 {
				t.Errorf("entry %d of shard %d: its place names entry %d", j, i, e.o.place.at-1)
			}
		}
	}
	if objects != m.objects.Load() || bytes != m.bytes.Load() || bytes > budget {
		t.Errorf("tier holds %d objects, %d bytes (budget %d); reports %d objects, %d bytes", objects, bytes, budget, m.objects.Load(), m.bytes.Load())
	}
	if m.put(&object{id: 1 << 40, place: new(memPlace), size: budget}, make([]byte, budget)) {
		t.Error("a body larger than the whole budget was taken")
	}
}
