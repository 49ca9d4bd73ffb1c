package cache

import (
	"context"
	"errors"
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

// goneClient is a recorder whose client went away once it had the head:
// every body write fails.
type goneClient struct{ *recorder }

func (goneClient) Write([]byte) (int, error) { return 0, errors.New("client gone") }

// closeNotifier closes closed when the body is closed.
type closeNotifier struct {
	io.ReadCloser
	closed chan struct{}
}

func (c closeNotifier) Close() error {
	err := c.ReadCloser.Close()
	close(c.closed)
	return err
}

// Two hit-for-pass keys whose origin turns cacheable: each fetch, which
// no request joins (its flight would come from a pool), streams the body
// to its client while a goroutine stores it. The first one's client goes
// away after the head, and its store goes on while the second fetch
// streams: the flight the first store fills is not the second's, and
// each body reaches its client and its store whole. A flight reused under
// its fill is also a data race, which -race (CI) reports.
func TestPassKeysTurnStorable(t *testing.T) {
	held := map[string]chan struct{}{"/a": make(chan struct{}), "/b": make(chan struct{})}
	e := newEnv(t, Config{}, serveBody("not stored", "Cache-Control", "no-store"))
	for p := range held {
		if r := e.get(p); r.body.String() != "not stored" {
			t.Fatalf("%s: first answer %q", p, r.body.String())
		}
	}
	e.o.set(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "11")
		w.WriteHeader(200)
		io.WriteString(w, r.URL.Path+" head")
		w.(http.Flusher).Flush()
		<-held[r.URL.Path]
		io.WriteString(w, " end")
	})
	// aRead is closed when /a's store has read its body to the end.
	aRead := make(chan struct{})
	fetch := e.fetch
	e.fetch = func(ctx context.Context, h *parser.Request) (*Response, error) {
		resp, err := fetch(ctx, h)
		if err == nil && string(h.Target) == "/a" {
			resp.Body = closeNotifier{resp.Body, aRead}
		}
		return resp, err
	}
	serve := func(w ResponseWriter, path string) chan error {
		done := make(chan error, 1)
		go func() {
			h := &parser.Request{Method: []byte("GET"), Target: []byte(path), Host: []byte("example.com"), Major: 1, Minor: 1}
			_, err := e.c.Serve(context.Background(), &Request{Scheme: "http", Head: h}, &e.rules, e.fetch, w)
			done <- err
		}()
		return done
	}
	if err := <-serve(goneClient{newRecorder()}, "/a"); err == nil {
		t.Fatal("/a: the client went away, and Serve reported no error")
	}
	b := newRecorder()
	doneB := serve(b, "/b")
	<-b.firstByte
	close(held["/a"])
	<-aRead
	close(held["/b"])
	if err := <-doneB; err != nil || b.body.String() != "/b head end" {
		t.Fatalf("/b streamed %q, %v", b.body.String(), err)
	}
	e.settle()
	for p := range held {
		if r := e.get(p); !hasStatus(r, "; hit") || r.body.String() != p+" head end" {
			t.Fatalf("%s after the store: %q %q", p, r.get("Cache-Status"), r.body.String())
		}
	}
}
