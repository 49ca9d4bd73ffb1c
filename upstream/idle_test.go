package upstream

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// A keep-alive connection idle for longer than FirstByteTimeout (but
// within IdleTimeout) is reused: the deadline of its last response does
// not make the idle check take it for broken.
func TestIdleConnReusedAfterFirstByteTimeout(t *testing.T) {
	o := startOrigin(t, "127.0.0.1:0", ok)
	p := newTestPool(t, Config{
		Servers:          servers(o),
		FirstByteTimeout: 100 * time.Millisecond,
		IdleTimeout:      time.Minute,
	})
	if _, _, err := fetch(p, get("/a")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // idle: past FirstByteTimeout, far within IdleTimeout
	if _, _, err := fetch(p, get("/b")); err != nil {
		t.Fatal(err)
	}
	if n := o.accepts.Load(); n != 1 {
		t.Fatalf("origin accepted %d connections for two sequential requests on an idle-but-live keep-alive connection, want 1", n)
	}
}

// After an origin closed more idle keep-alive connections than exchange
// tests one by one (its own idle timeout, a restart), a POST still goes
// out on a live connection: the idle set is dropped and a fresh one dialed.
func TestManyDeadIdleConnsPostSucceeds(t *testing.T) {
	var gate sync.WaitGroup
	release := make(chan struct{})
	o := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			gate.Done()
			<-release
		}
		ok(w, r)
	})
	p := newTestPool(t, Config{Servers: servers(o), MaxConnsPerServer: 64, Retries: -1})
	// Open 12 connections at once, then let them all go idle.
	const n = 12
	gate.Add(n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, _, err := fetch(p, get("/hold")); err != nil {
				t.Error(err)
			}
		})
	}
	gate.Wait()
	close(release)
	wg.Wait()
	if got := o.accepts.Load(); got != n {
		t.Fatalf("setup: %d connections, want %d", got, n)
	}
	// The origin closes every idle connection (as its idle timeout would).
	o.srv.SetKeepAlivesEnabled(false)
	o.srv.SetKeepAlivesEnabled(true)
	time.Sleep(100 * time.Millisecond) // let the FINs arrive

	_, body, err := fetch(p, post("/p", strings.NewReader("x"), 1))
	if err != nil {
		t.Fatalf("POST on a live origin failed (status %d): %v", Status(err), err)
	}
	if string(body) != "ok" {
		t.Fatalf("body %q", body)
	}
}
