package cache

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// methods records the methods an origin received.
type methods struct {
	mu sync.Mutex
	m  []string
}

func (m *methods) add(s string) {
	m.mu.Lock()
	m.m = append(m.m, s)
	m.mu.Unlock()
}

func (m *methods) get() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.m)
}

// headOrigin serves body with the fields etag and cc, recording methods.
func headOrigin(t *testing.T, ms *methods, etag, cc *string) *env {
	e := newEnv(t, Config{}, nil)
	var mu sync.Mutex
	e.o.set(func(w http.ResponseWriter, r *http.Request) {
		ms.add(r.Method)
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("ETag", *etag)
		w.Header().Set("Cache-Control", *cc)
		w.Header().Set("X-Version", *etag)
		if inm := r.Header.Get("If-None-Match"); inm == *etag {
			w.WriteHeader(304)
			return
		}
		w.Header().Set("Content-Length", "9")
		w.Write([]byte("full body"))
	})
	return e
}

// A HEAD miss is fetched as a GET and stored, so the GET that follows is a
// hit; the HEAD itself gets the head without a body.
func TestHeadMissFetchesGet(t *testing.T) {
	var ms methods
	etag, cc := `"a"`, "max-age=60"
	e := headOrigin(t, &ms, &etag, &cc)
	r, _, err := e.do("HEAD", "/h")
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 200 || r.body.Len() != 0 || r.length != 9 || !hasStatus(r, "stored") {
		t.Fatalf("HEAD: %d body %q length %d %q", r.status, r.body.String(), r.length, r.get("Cache-Status"))
	}
	e.settle()
	g := e.get("/h")
	if !hasStatus(g, "; hit") || g.body.String() != "full body" {
		t.Fatalf("GET after HEAD: %q %q", g.get("Cache-Status"), g.body.String())
	}
	if got := ms.get(); !slices.Equal(got, []string{"GET"}) {
		t.Errorf("origin saw %v, want one GET", got)
	}
}

// A route with pass_head sends a HEAD miss as HEAD and stores nothing.
func TestHeadPass(t *testing.T) {
	var ms methods
	etag, cc := `"a"`, "max-age=60"
	e := headOrigin(t, &ms, &etag, &cc)
	e.rules.PassHead = true
	r, _, err := e.do("HEAD", "/h")
	if err != nil || r.status != 200 || r.body.Len() != 0 {
		t.Fatalf("HEAD: %v %d %q", err, r.status, r.body.String())
	}
	e.settle()
	if g := e.get("/h"); !hasStatus(g, "fwd=uri-miss") {
		t.Fatalf("GET after a passed HEAD: %q", g.get("Cache-Status"))
	}
	if got := ms.get(); !slices.Equal(got, []string{"HEAD", "GET"}) {
		t.Errorf("origin saw %v, want HEAD then GET", got)
	}
}

// RFC 9111 §4.3.5: a 200 to a HEAD whose validators and length match the
// stored GET response updates its fields and freshness; one that differs
// makes it stale, so the next GET revalidates.
func TestHeadUpdatesStoredGet(t *testing.T) {
	t.Run("matching freshens", func(t *testing.T) {
		var ms methods
		etag, cc := `"a"`, "max-age=10"
		e := headOrigin(t, &ms, &etag, &cc)
		e.rules.PassHead = true
		e.get("/h")
		e.settle()
		e.clk.advance(20 * time.Second)
		cc = "max-age=60"
		r, _, err := e.do("HEAD", "/h")
		if err != nil || r.status != 200 {
			t.Fatalf("HEAD: %v %d", err, r.status)
		}
		e.clk.advance(30 * time.Second)
		g := e.get("/h")
		if !hasStatus(g, "; hit") || g.get("Cache-Control") != "max-age=60" || g.body.String() != "full body" {
			t.Fatalf("GET after HEAD: %q %q %q", g.get("Cache-Status"), g.get("Cache-Control"), g.body.String())
		}
		if age, _ := strconv.Atoi(g.get("Age")); age > 35 {
			t.Errorf("Age %d: freshness not renewed by the HEAD", age)
		}
		if got := ms.get(); !slices.Equal(got, []string{"GET", "HEAD"}) {
			t.Errorf("origin saw %v", got)
		}
	})
	t.Run("changed makes stale", func(t *testing.T) {
		var ms methods
		etag, cc := `"a"`, "max-age=600"
		e := headOrigin(t, &ms, &etag, &cc)
		e.rules.PassHead = true
		e.get("/h")
		e.settle()
		etag = `"b"`
		// no-cache makes the HEAD go to the origin although the stored
		// response is fresh.
		if r, _, err := e.do("HEAD", "/h", "Cache-Control", "no-cache"); err != nil || r.get("ETag") != `"b"` {
			t.Fatalf("HEAD: %v %q", err, r.get("ETag"))
		}
		g := e.get("/h")
		if !hasStatus(g, "fwd=stale") || g.get("X-Version") != `"b"` {
			t.Fatalf("GET after a HEAD with another ETag: %q %q", g.get("Cache-Status"), g.get("X-Version"))
		}
		if got := ms.get(); !slices.Equal(got, []string{"GET", "HEAD", "GET"}) {
			t.Errorf("origin saw %v", got)
		}
	})
}

// A HEAD of a hit-for-pass key goes to the origin as HEAD: no body is
// fetched that nobody would store.
func TestHeadOfPassKey(t *testing.T) {
	var ms methods
	etag, cc := `"a"`, "private"
	e := headOrigin(t, &ms, &etag, &cc)
	e.get("/p")
	e.settle()
	if r, _, err := e.do("HEAD", "/p"); err != nil || r.status != 200 || r.body.Len() != 0 {
		t.Fatalf("HEAD: %v %d %q", err, r.status, r.body.String())
	}
	if got := ms.get(); !slices.Equal(got, []string{"GET", "HEAD"}) {
		t.Errorf("origin saw %v", got)
	}
}
