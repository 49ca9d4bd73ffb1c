package cache

import (
	"strconv"
	"strings"
	"testing"
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

// TestMaxObjectSizePassesThrough: a body over the route's maximum object
// size is passed to the client whole and not stored, whether its length
// is announced or only found out while it streams (then the first answer
// could only announce the intent to store).
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
			if r.body.String() != body || hasStatus(r, "; hit") || announced && hasStatus(r, "stored") {
				t.Fatalf("announced=%v, request %d: %d bytes, Cache-Status %q", announced, i, r.body.Len(), r.get("Cache-Status"))
			}
		}
		if n := e.o.hits.Load(); n != 2 {
			t.Errorf("announced=%v: origin saw %d requests, want 2", announced, n)
		}
	}
}
