package upstream

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

func TestNoHealthyFailsFast(t *testing.T) {
	p := newTestPool(t, Config{
		Servers:       []ServerConfig{{Addr: closedAddr(t)}},
		FailThreshold: 1,
		Cooldown:      time.Hour,
	})
	_, _, err := fetch(p, get("/"))
	var e *Error
	if !errors.As(err, &e) || e.Sent || Status(err) != http.StatusBadGateway {
		t.Fatalf("refused dial: %v, want an unsent *Error (502)", err)
	}
	_, _, err = fetch(p, get("/"))
	if !errors.Is(err, ErrNoHealthy) || Status(err) != http.StatusBadGateway {
		t.Fatalf("ejected pool: %v, want ErrNoHealthy (502)", err)
	}
}

// After a cooldown exactly one probe is let through; its outcome decides.
func TestProbeAfterCooldown(t *testing.T) {
	p := pickPool(t, RoundRobin, 1)
	defer p.Close()
	p.cfg.FailThreshold, p.cfg.Cooldown = 2, 50*time.Millisecond
	s := p.servers[0]
	s.fails = make([]time.Time, 2)
	ctx := context.Background()

	fail := func() {
		l, err := p.acquire(ctx, 0, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		p.report(l, failure)
		p.release(l.srv)
	}
	fail()
	if s.ejected {
		t.Fatal("ejected after one failure of two")
	}
	fail()
	if !s.ejected {
		t.Fatal("not ejected after two failures")
	}
	if _, err := p.acquire(ctx, 0, time.Second); !errors.Is(err, ErrNoHealthy) {
		t.Fatalf("during cooldown: %v", err)
	}
	time.Sleep(60 * time.Millisecond)
	probe, err := p.acquire(ctx, 0, time.Second)
	if err != nil || !probe.probe {
		t.Fatalf("after cooldown: %+v, %v; want a probe", probe, err)
	}
	if _, err := p.acquire(ctx, 0, time.Second); !errors.Is(err, ErrNoHealthy) {
		t.Fatalf("second request while probing: %v, want ErrNoHealthy", err)
	}
	p.report(probe, failure)
	p.release(probe.srv)
	if _, err := p.acquire(ctx, 0, time.Second); !errors.Is(err, ErrNoHealthy) {
		t.Fatalf("after failed probe: %v, want a new cooldown", err)
	}
	time.Sleep(60 * time.Millisecond)
	probe, err = p.acquire(ctx, 0, time.Second)
	if err != nil || !probe.probe {
		t.Fatalf("second probe: %+v, %v", probe, err)
	}
	p.report(probe, success)
	p.release(probe.srv)
	for range 3 {
		l, err := p.acquire(ctx, 0, time.Second)
		if err != nil || l.probe {
			t.Fatalf("after good probe: %+v, %v", l, err)
		}
		p.release(l.srv)
	}
}

func TestActiveChecks(t *testing.T) {
	var healthy atomic.Bool
	a := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && !healthy.Load() {
			w.WriteHeader(500)
			return
		}
		ok(w, r)
	})
	b := startOrigin(t, "127.0.0.1:0", ok)
	var downs atomic.Int64
	p := newTestPool(t, Config{
		Servers:        servers(a, b),
		HealthPath:     "/health",
		HealthInterval: 20 * time.Millisecond,
		OnEject:        func(string) { downs.Add(1) },
	})
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("a marked down", func() bool { return downs.Load() > 0 })
	for range 10 {
		resp, _, err := fetch(p, get("/"))
		if err != nil || resp.Server != b.addr {
			t.Fatalf("with a down: answered by %v, err %v", resp, err)
		}
	}
	healthy.Store(true)
	waitFor("a back", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return !p.servers[0].checkDown
	})
	seen := false
	for range 10 {
		resp, _, err := fetch(p, get("/"))
		if err != nil {
			t.Fatal(err)
		}
		seen = seen || resp.Server == a.addr
	}
	if !seen {
		t.Error("a got no request after its checks passed")
	}
}
