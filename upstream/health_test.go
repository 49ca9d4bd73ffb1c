package upstream

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// After a cooldown exactly one probe is let through; its outcome decides.
// The other server of the pool is kept out of the requests' way (excluded)
// so that only the ejected one is looked at.
func TestProbeAfterCooldown(t *testing.T) {
	p := pickPool(t, RoundRobin, 1, 1)
	defer p.Close()
	clock := useClock(p)
	p.cfg.FailThreshold, p.cfg.Cooldown = 2, 50*time.Millisecond
	s, other := p.servers[0], p.servers[1]
	s.fails = make([]time.Time, 2)
	ctx := context.Background()
	acquire := func() (lease, error) { return p.acquire(ctx, other.bit, time.Second) }

	fail := func() {
		l, err := acquire()
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
	if _, err := acquire(); !errors.Is(err, errNoServer) {
		t.Fatalf("during cooldown: %v", err)
	}
	clock.Advance(60 * time.Millisecond)
	probe, err := acquire()
	if err != nil || !probe.probe {
		t.Fatalf("after cooldown: %+v, %v; want a probe", probe, err)
	}
	if _, err := acquire(); !errors.Is(err, errNoServer) {
		t.Fatalf("second request while probing: %v, want errNoServer", err)
	}
	p.report(probe, failure)
	p.release(probe.srv)
	if _, err := acquire(); !errors.Is(err, errNoServer) {
		t.Fatalf("after failed probe: %v, want a new cooldown", err)
	}
	clock.Advance(60 * time.Millisecond)
	probe, err = acquire()
	if err != nil || !probe.probe {
		t.Fatalf("second probe: %+v, %v", probe, err)
	}
	p.report(probe, success)
	p.release(probe.srv)
	for range 3 {
		l, err := acquire()
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
