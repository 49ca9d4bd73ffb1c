package upstream

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
)

func TestWeightedDistribution(t *testing.T) {
	a := startOrigin(t, "127.0.0.1:0", ok)
	b := startOrigin(t, "127.0.0.1:0", ok)
	c := startOrigin(t, "127.0.0.1:0", ok)
	sc := servers(a, b, c)
	sc[0].Weight, sc[1].Weight, sc[2].Weight = 5, 3, 2
	p := newTestPool(t, Config{Servers: sc})

	run, maxRun := 0, 0
	for range 1000 {
		resp, _, err := fetch(p, get("/"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Server == c.addr {
			run++
			maxRun = max(maxRun, run)
		} else {
			run = 0
		}
	}
	for _, x := range []struct {
		o    *origin
		want int64
	}{{a, 500}, {b, 300}, {c, 200}} {
		if got := x.o.requests.Load(); got < x.want-20 || got > x.want+20 {
			t.Errorf("%s got %d requests, want %d ±20", x.o.addr, got, x.want)
		}
	}
	if maxRun > 2 {
		t.Errorf("weight-2 server picked %d times in a row", maxRun)
	}
}

func TestKeepAlive(t *testing.T) {
	o := startOrigin(t, "127.0.0.1:0", ok)
	p := newTestPool(t, Config{Servers: servers(o)})
	for range 1000 {
		if _, body, err := fetch(p, get("/")); err != nil || string(body) != "ok" {
			t.Fatalf("body %q, err %v", body, err)
		}
	}
	if n := o.accepts.Load(); n > 3 {
		t.Errorf("1000 sequential requests opened %d connections", n)
	}
}

func TestQueueBounds(t *testing.T) {
	var inFlight, peak atomic.Int64
	o := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			m := peak.Load()
			if n <= m || peak.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(300 * time.Millisecond)
		inFlight.Add(-1)
		ok(w, r)
	})
	p := newTestPool(t, Config{
		Servers:           servers(o),
		MaxConnsPerServer: 2,
		QueueSize:         4,
		QueueTimeout:      200 * time.Millisecond,
	})
	var okN, full, timeout, other atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_, _, err := fetch(p, get("/slow"))
			switch {
			case err == nil:
				okN.Add(1)
			case errors.Is(err, ErrQueueFull):
				full.Add(1)
			case errors.Is(err, ErrQueueTimeout):
				timeout.Add(1)
			default:
				other.Add(1)
				t.Error(err)
			}
			if err != nil && Status(err) != http.StatusServiceUnavailable {
				t.Errorf("Status(%v) = %d, want 503", err, Status(err))
			}
		})
	}
	wg.Wait()
	t.Logf("ok %d, queue full %d, queue timeout %d", okN.Load(), full.Load(), timeout.Load())
	if okN.Load()+full.Load()+timeout.Load() != 50 {
		t.Errorf("results do not add up to 50")
	}
	if okN.Load() < 2 || full.Load() == 0 || timeout.Load() == 0 {
		t.Errorf("want some of each: at least 2 served, some refused, some timed out")
	}
	if got := o.requests.Load(); got != okN.Load() {
		t.Errorf("origin saw %d requests, %d succeeded", got, okN.Load())
	}
	if peak.Load() > 2 {
		t.Errorf("origin saw %d concurrent requests, max is 2", peak.Load())
	}
	if d := p.Stats().Queued; d != 0 {
		t.Errorf("queue depth %d after all returned", d)
	}
}

func TestQueueHandsOver(t *testing.T) {
	o := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		ok(w, r)
	})
	p := newTestPool(t, Config{
		Servers:           servers(o),
		MaxConnsPerServer: 1,
		QueueSize:         8,
		QueueTimeout:      10 * time.Second,
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, _, err := fetch(p, get("/")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := o.accepts.Load(); n != 1 {
		t.Errorf("one connection per server allowed, origin accepted %d", n)
	}
}

// The time a request waited in the queue is not taken from its
// first_byte_timeout: its try starts when it got the connection (the
// first try of a request leased at once starts when Do did).
func TestQueuedRequestFirstByteTimeoutFromItsTry(t *testing.T) {
	o := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/long" {
			// A live answer that holds the only connection for 600ms,
			// never silent for longer than 200ms.
			w.(http.Flusher).Flush()
			for range 3 {
				time.Sleep(200 * time.Millisecond)
				io.WriteString(w, "x")
				w.(http.Flusher).Flush()
			}
			return
		}
		ok(w, r)
	})
	p := newTestPool(t, Config{
		Servers:           servers(o),
		MaxConnsPerServer: 1,
		QueueTimeout:      10 * time.Second,
		FirstByteTimeout:  400 * time.Millisecond,
	})
	resp, err := p.Do(context.Background(), get("/long"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// Queued behind /long for about 600ms, then answered at once on
		// the connection /long gives back.
		_, body, err := fetch(p, get("/next"))
		if err == nil && string(body) != "ok" {
			err = errors.New("body " + string(body))
		}
		done <- err
	}()
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "xxx" {
		t.Fatalf("/long: %q, %v", b, err)
	}
	resp.Body.Close()
	if err := <-done; err != nil {
		t.Fatalf("a request queued for longer than first_byte_timeout failed on its connection: %v", err)
	}
	if n := o.accepts.Load(); n != 1 {
		t.Errorf("origin accepted %d connections, want 1 (the queued request reuses it)", n)
	}
}

func TestQueueWaitCanceled(t *testing.T) {
	release := make(chan struct{})
	o := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		<-release
		ok(w, r)
	})
	p := newTestPool(t, Config{Servers: servers(o), MaxConnsPerServer: 1, QueueTimeout: 10 * time.Second})
	first := make(chan error, 1)
	go func() { _, _, err := fetch(p, get("/")); first <- err }()
	for p.servers[0].activeNow(p) == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() { _, err := p.Do(ctx, get("/")); second <- err }()
	for p.Stats().Queued == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Errorf("queued request after cancel: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Error(err)
	}
	if d := p.Stats().Queued; d != 0 {
		t.Errorf("queue depth %d", d)
	}
}

func (s *server) activeNow(p *Pool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return s.active
}

func TestValidate(t *testing.T) {
	c := Config{Name: "web", Servers: []ServerConfig{{Addr: "127.0.0.1:80"}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Servers[0].Weight != 1 || c.Balance != RoundRobin || c.MaxConnsPerServer != 256 ||
		c.QueueSize != 1024 || c.QueueTimeout != time.Second || c.ConnectTimeout != 3*time.Second ||
		c.FirstByteTimeout != time.Minute || c.IdleTimeout != time.Minute || c.Retries != 2 ||
		c.RetryBudget != 10*time.Second || c.FailThreshold != 3 || c.FailWindow != 10*time.Second ||
		c.Cooldown != 10*time.Second {
		t.Errorf("defaults not filled: %+v", c)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "web"}, "servers: at least one"},
		{Config{Servers: []ServerConfig{{Addr: "nohost"}}}, "servers[0].address"},
		{Config{Servers: []ServerConfig{{Addr: "a:1"}, {Addr: "a:1"}}}, "servers[1].address: \"a:1\" is listed twice"},
		{Config{Servers: []ServerConfig{{Addr: "a:1", Weight: -1}}}, "servers[0].weight"},
		{Config{Servers: []ServerConfig{{Addr: "a:1"}}, Balance: "random"}, "balance"},
		{Config{Servers: []ServerConfig{{Addr: "a:1"}}, QueueSize: -1}, "queue_size"},
		{Config{Servers: []ServerConfig{{Addr: "a:1"}}, Cooldown: -1}, "cooldown"},
		{Config{Servers: []ServerConfig{{Addr: "a:1"}}, HealthPath: "health"}, "health.path"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, tc.want)
		}
	}
}

func TestClose(t *testing.T) {
	release := make(chan struct{})
	o := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		<-release
		ok(w, r)
	})
	p := newTestPool(t, Config{Servers: servers(o), MaxConnsPerServer: 1, QueueTimeout: 10 * time.Second})
	first := make(chan error, 1)
	go func() { _, _, err := fetch(p, get("/")); first <- err }()
	for o.requests.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	queued := make(chan error, 1)
	go func() { _, err := p.Do(context.Background(), get("/")); queued <- err }()
	for p.Stats().Queued == 0 {
		time.Sleep(time.Millisecond)
	}
	p.Close()
	if err := <-queued; !errors.Is(err, ErrClosed) {
		t.Errorf("queued request at Close: %v", err)
	}
	if _, err := p.Do(context.Background(), get("/")); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("request in flight at Close: %v", err)
	}
	if n := p.servers[0].hc.ConnsCount(); n != 0 {
		t.Errorf("%d connections left after Close", n)
	}
}
