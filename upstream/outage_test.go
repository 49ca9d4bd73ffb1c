package upstream

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// dropListener closes the first n connections it accepts unanswered, the
// way a restarting or overloaded origin does.
type dropListener struct {
	net.Listener
	left    atomic.Int64
	dropped atomic.Int64
}

func (l *dropListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.left.Add(-1) < 0 {
			return c, err
		}
		c.Close()
		l.dropped.Add(1)
	}
}

// allFailingLog records OnAllFailing calls.
type allFailingLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *allFailingLog) hook(failing bool, server string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if failing {
		l.calls = append(l.calls, "failing")
	} else {
		l.calls = append(l.calls, "recovered "+server)
	}
}

func (l *allFailingLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.calls, ", ")
}

// A one-server pool whose origin drops connections is never ejected: the
// requests after the drops are answered, where an ejection would have
// refused them all for the cooldown.
func TestOnlyServerNeverEjected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dl := &dropListener{Listener: ln}
	dl.left.Store(6)
	o := serveOrigin(t, dl, ok)
	var ejects atomic.Int64
	var all allFailingLog
	p := newTestPool(t, Config{
		Servers:      servers(o),
		FailWindow:   10 * time.Second,
		Cooldown:     10 * time.Second,
		OnEject:      func(string) { ejects.Add(1) },
		OnAllFailing: all.hook,
	})
	clock := useClock(p)
	failed := 0
	for i := 0; dl.dropped.Load() < 6; i++ {
		if i == 50 {
			t.Fatalf("50 requests and the origin dropped only %d connections", dl.dropped.Load())
		}
		if _, _, err := fetch(p, get("/")); err != nil {
			failed++
		}
	}
	if failed < 2 {
		t.Fatalf("%d requests failed while the origin dropped 6 connections: the test proves nothing", failed)
	}
	for i := range 20 {
		clock.Advance(200 * time.Millisecond)
		resp, body, err := fetch(p, get("/"))
		if err != nil || resp.Head.Status != 200 || string(body) != "ok" {
			t.Fatalf("request %d after the drops: %v", i, err)
		}
	}
	if n := ejects.Load(); n != 0 {
		t.Errorf("the only server was ejected %d times", n)
	}
	if s := p.Stats(); s.Ejected != 0 || s.AllFailing {
		t.Errorf("stats %+v", s)
	}
	if got := all.String(); got != "" {
		t.Errorf("OnAllFailing calls: %s", got)
	}
}

// When every server is ejected, requests go to all of them: the first
// request after one comes back reaches it, long before any cooldown ends.
func TestAllFailingReachesRecovered(t *testing.T) {
	var os []*origin
	for range 3 {
		os = append(os, startOrigin(t, "127.0.0.1:0", ok))
	}
	var all allFailingLog
	var ejects atomic.Int64
	p := newTestPool(t, Config{
		Servers:       servers(os...),
		FailThreshold: 2,
		Cooldown:      time.Hour,
		OnEject:       func(string) { ejects.Add(1) },
		OnAllFailing:  all.hook,
	})
	clock := useClock(p)
	for _, o := range os {
		o.kill()
	}
	for i := 0; !p.Stats().AllFailing; i++ {
		if i == 20 {
			t.Fatalf("20 failed requests and the pool is not failing: %+v", p.Stats())
		}
		if _, _, err := fetch(p, get("/")); Status(err) != http.StatusBadGateway {
			t.Fatalf("request %d to dead origins: %v, want 502", i, err)
		}
	}
	// More failures while failing say nothing more.
	for range 5 {
		clock.Advance(time.Second)
		if _, _, err := fetch(p, get("/")); Status(err) != http.StatusBadGateway {
			t.Fatalf("dead origins: %v", err)
		}
	}
	if got := all.String(); got != "failing" {
		t.Fatalf("OnAllFailing calls %q, want one \"failing\"", got)
	}
	if s := p.Stats(); s.Ejected != 3 || s.Open != 0 || s.Active != 0 {
		t.Fatalf("stats %+v", s)
	}

	back := startOrigin(t, os[1].addr, ok)
	resp, body, err := fetch(p, get("/"))
	if err != nil || resp.Server != back.addr || string(body) != "ok" {
		t.Fatalf("first request after one origin came back: %v", err)
	}
	if got := all.String(); got != "failing, recovered "+back.addr {
		t.Errorf("OnAllFailing calls %q", got)
	}
	if s := p.Stats(); s.Ejected != 2 || s.AllFailing {
		t.Errorf("stats after recovery %+v", s)
	}
	// The two still ejected get nothing until their cooldown ends.
	for range 10 {
		resp, _, err := fetch(p, get("/"))
		if err != nil || resp.Server != back.addr {
			t.Fatalf("after recovery: %v", err)
		}
	}
	if n := ejects.Load(); n != 3 {
		t.Errorf("%d ejections, want 3", n)
	}
}

// Requests to one URL that never answers time out without ejecting the
// servers that answer every other URL, so other requests keep being served.
func TestHangingURLDoesNotEject(t *testing.T) {
	hold := make(chan struct{})
	handler := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			return
		}
		ok(w, r)
	}
	a := startOrigin(t, "127.0.0.1:0", handler)
	b := startOrigin(t, "127.0.0.1:0", handler)
	defer close(hold)
	var ejects atomic.Int64
	p := newTestPool(t, Config{
		Servers:          servers(a, b),
		FirstByteTimeout: 300 * time.Millisecond,
		FailThreshold:    2,
		OnEject:          func(string) { ejects.Add(1) },
	})
	var hangs sync.WaitGroup
	var timeouts atomic.Int64
	for range 3 {
		hangs.Go(func() {
			if _, _, err := fetch(p, get("/hang")); Status(err) == http.StatusGatewayTimeout {
				timeouts.Add(1)
			}
		})
	}
	done := make(chan struct{})
	go func() { hangs.Wait(); close(done) }()
	served := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		if _, body, err := fetch(p, get("/other")); err != nil || string(body) != "ok" {
			t.Fatalf("other request %d while /hang hangs: %v", served, err)
		}
		served++
	}
	if timeouts.Load() != 3 {
		t.Errorf("%d of 3 /hang requests timed out (504)", timeouts.Load())
	}
	if n := ejects.Load(); n != 0 {
		t.Errorf("a hanging URL ejected %d servers", n)
	}
	t.Logf("%d other requests served while /hang timed out", served)
}

// A server that answers nothing at all is ejected on its timeouts: the rule
// that spares a slow URL does not spare a dead server.
func TestSilentServerEjected(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	silent := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	})
	good := startOrigin(t, "127.0.0.1:0", ok)
	var ejected atomic.Value
	p := newTestPool(t, Config{
		Servers:          servers(silent, good),
		FirstByteTimeout: 100 * time.Millisecond,
		FailThreshold:    2,
		Cooldown:         time.Hour,
		OnEject:          func(s string) { ejected.Store(s) },
	})
	for i := 0; ejected.Load() == nil; i++ {
		if i == 20 {
			t.Fatal("a server that never answers was not ejected after 20 requests")
		}
		if resp, _, err := fetch(p, get("/")); err != nil || resp.Server != good.addr {
			t.Fatalf("request %d: %v (a GET retries on the good server)", i, err)
		}
	}
	if got := ejected.Load(); got != silent.addr {
		t.Errorf("ejected %v, want the silent %s", got, silent.addr)
	}
	before := silent.requests.Load()
	for range 10 {
		if _, _, err := fetch(p, get("/")); err != nil {
			t.Fatal(err)
		}
	}
	if n := silent.requests.Load() - before; n != 0 {
		t.Errorf("the ejected server got %d requests", n)
	}
}

// A pool whose servers are all down by active checks still sends to them.
func TestAllCheckedDownStillServes(t *testing.T) {
	o := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(500)
			return
		}
		ok(w, r)
	})
	var all allFailingLog
	p := newTestPool(t, Config{Servers: servers(o), OnAllFailing: all.hook})
	p.setChecked(p.servers[0], false)
	if s := p.Stats(); s.Down != 1 || !s.AllFailing {
		t.Fatalf("stats %+v", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := p.Do(ctx, get("/"))
	if err != nil {
		t.Fatalf("only server down by checks: %v", err)
	}
	resp.Body.Close()
	p.setChecked(p.servers[0], true)
	if got := all.String(); got != "failing, recovered "+o.addr {
		t.Errorf("OnAllFailing calls %q", got)
	}
}

// An origin restarting on its port under load costs a delay, not errors:
// refused connections are dialled again within RedialWindow, and a request
// whose kept-alive connection died unanswered goes again on a new one. The
// bound asserted: no more failures than requests in flight at the cut (one
// per loop).
func TestRestartGapUnderLoad(t *testing.T) {
	o := startOrigin(t, "127.0.0.1:0", ok)
	p := newTestPool(t, Config{Servers: servers(o)})
	const loops = 4
	var okN, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range loops {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, body, err := fetch(p, get("/")); err == nil && string(body) == "ok" {
					okN.Add(1)
				} else {
					failed.Add(1)
					t.Logf("failed: %v", err)
				}
			}
		})
	}
	waitCount := func(what string, c *atomic.Int64, n int64) {
		for deadline := time.Now().Add(20 * time.Second); c.Load() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				close(stop)
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitCount("requests before the cut", &okN, 200)
	o.kill()
	cut := okN.Load()
	time.Sleep(300 * time.Millisecond) // the restart gap itself, not a wait for an event
	startOrigin(t, o.addr, ok)
	waitCount("requests after the restart", &okN, cut+200)
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > loops {
		t.Errorf("%d requests failed across a 300ms restart, want at most the %d in flight at the cut", n, loops)
	}
	t.Logf("%d served, %d failed", okN.Load(), failed.Load())
}
