package cache

import (
	"io"
	"net/http"
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
