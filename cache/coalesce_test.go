package cache

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accel-proxy/accel/parser"
)

const crowd = 200

// 200 concurrent misses make one origin request, and the first bytes reach
// every waiter while the origin is still sending.
func TestCoalescingStreams(t *testing.T) {
	gate := make(chan struct{})
	e := newEnv(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("first half, "))
		w.(http.Flusher).Flush()
		<-gate // the origin takes its time (300 ms in the issue)
		w.Write([]byte("second half"))
	})
	recs := make([]*recorder, crowd)
	outs := make([]Outcome, crowd)
	errs := make([]error, crowd)
	var wg sync.WaitGroup
	for i := range recs {
		recs[i] = newRecorder()
		wg.Go(func() { outs[i], errs[i] = e.doTo(recs[i], "GET", "/cold") })
	}
	// Every client has its first bytes before the origin finished.
	deadline := time.After(20 * time.Second)
	for i, r := range recs {
		select {
		case <-r.firstByte:
		case <-deadline:
			t.Fatalf("client %d got no bytes before the origin finished", i)
		}
	}
	close(gate)
	wg.Wait()
	coalesced := 0
	for i, r := range recs {
		if errs[i] != nil || r.body.String() != "first half, second half" || r.status != 200 {
			t.Fatalf("client %d: %v %q", i, errs[i], r.body.String())
		}
		if outs[i].Coalesced {
			coalesced++
		}
	}
	if n := e.o.hits.Load(); n != 1 {
		t.Fatalf("origin saw %d requests, want 1", n)
	}
	if coalesced != crowd-1 {
		t.Fatalf("%d coalesced, want %d", coalesced, crowd-1)
	}
}

// With Cache-Control: private every request reaches the origin, at the
// same time: the origin holds each body until all 200 are in, which
// never happens if one waits for another.
func TestCoalescingPrivateReleases(t *testing.T) {
	var in atomic.Int32
	all := make(chan struct{})
	e := newEnv(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=60")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		if in.Add(1) == crowd {
			close(all)
		}
		select {
		case <-all:
			w.Write([]byte("ok"))
		case <-time.After(20 * time.Second):
			w.Write([]byte("serialised"))
		}
	})
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range crowd {
		wg.Go(func() {
			r, _, err := e.do("GET", "/private")
			if err != nil || r.body.String() != "ok" {
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	if n := e.o.hits.Load(); n != crowd || bad.Load() != 0 {
		t.Fatalf("origin saw %d requests, %d bad answers", n, bad.Load())
	}
	// Hit-for-pass: the next request does not wait in line either.
	e.o.set(serveBody("direct", "Cache-Control", "private"))
	if r := e.get("/private"); r.body.String() != "direct" || !strings.Contains(r.get("Cache-Status"), "fwd=") {
		t.Fatalf("%q %q", r.body.String(), r.get("Cache-Status"))
	}
}

// A body that came whole with its head (Response.Buffered) is stored by
// the leader without a fill goroutine; the requests that waited on its
// fetch are answered whole all the same, the origin asked once, and the
// next request is a hit.
func TestCoalescingBufferedBody(t *testing.T) {
	gate := make(chan struct{})
	e := newEnv(t, Config{}, func(w http.ResponseWriter, r *http.Request) {
		<-gate
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("whole at once"))
	})
	fetch := e.fetch
	e.fetch = func(ctx context.Context, h *parser.Request) (*Response, error) {
		resp, err := fetch(ctx, h)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body, resp.Buffered = &memBody{b: b}, true
		return resp, nil
	}
	recs := make([]*recorder, crowd)
	errs := make([]error, crowd)
	var wg sync.WaitGroup
	for i := range recs {
		recs[i] = newRecorder()
		wg.Go(func() { _, errs[i] = e.doTo(recs[i], "GET", "/buffered") })
	}
	for deadline := time.Now().Add(20 * time.Second); e.c.Stats().CoalescedWaiters < crowd-1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests waiting on the fetch", e.c.Stats().CoalescedWaiters, crowd-1)
		}
	}
	close(gate)
	wg.Wait()
	for i, r := range recs {
		if errs[i] != nil || r.status != 200 || r.body.String() != "whole at once" {
			t.Fatalf("client %d: %v %d %q", i, errs[i], r.status, r.body.String())
		}
	}
	if r := e.get("/buffered"); !hasStatus(r, "; hit") || r.body.String() != "whole at once" {
		t.Fatalf("not stored: %q %q", r.get("Cache-Status"), r.body.String())
	}
	if n := e.o.hits.Load(); n != 1 {
		t.Fatalf("origin saw %d requests, want 1", n)
	}
}
