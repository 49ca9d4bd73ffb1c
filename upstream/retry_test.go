package upstream

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hangUp reads the whole request, then closes the connection unanswered.
func hangUp(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	c, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		c.Close()
	}
}

func TestPostNeverSentTwice(t *testing.T) {
	bad := startOrigin(t, "127.0.0.1:0", hangUp)
	good := startOrigin(t, "127.0.0.1:0", ok)
	p := newTestPool(t, Config{Servers: servers(bad, good)})
	// Round-robin with equal weights starts with the first server.
	_, _, err := fetch(p, post("/form", strings.NewReader("a=1"), 3))
	var e *Error
	if !errors.As(err, &e) || !e.Sent || e.Server != bad.addr {
		t.Fatalf("err %v, want a sent *Error from %s", err, bad.addr)
	}
	if Status(err) != http.StatusBadGateway {
		t.Errorf("Status %d, want 502", Status(err))
	}
	if n := bad.requests.Load(); n != 1 {
		t.Errorf("POST arrived %d times", n)
	}
	if n := good.requests.Load(); n != 0 {
		t.Errorf("POST was retried on the other server")
	}
}

func TestGetRetriedElsewhere(t *testing.T) {
	bad := startOrigin(t, "127.0.0.1:0", hangUp)
	good := startOrigin(t, "127.0.0.1:0", ok)
	var retried []string
	p := newTestPool(t, Config{
		Servers: servers(bad, good),
		OnRetry: func(s string) { retried = append(retried, s) },
	})
	resp, body, err := fetch(p, get("/"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Server != good.addr || string(body) != "ok" {
		t.Errorf("answered by %s with %q", resp.Server, body)
	}
	if n := bad.requests.Load() + good.requests.Load(); n > 2 {
		t.Errorf("GET arrived %d times", n)
	}
	if len(retried) != 1 || retried[0] != bad.addr {
		t.Errorf("OnRetry calls %v", retried)
	}
}

// A POST may go elsewhere when its connection was never made.
func TestPostRetriedAfterRefusedDial(t *testing.T) {
	good := startOrigin(t, "127.0.0.1:0", ok)
	p := newTestPool(t, Config{Servers: []ServerConfig{{Addr: closedAddr(t)}, {Addr: good.addr}}})
	resp, _, err := fetch(p, post("/form", strings.NewReader("a=1"), 3))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Server != good.addr || good.requests.Load() != 1 {
		t.Errorf("answered by %s; good origin saw %d", resp.Server, good.requests.Load())
	}
}

// A body that was read in part cannot be sent again, even when Retryable.
func TestPartlySentBodyNotRetried(t *testing.T) {
	bad := startOrigin(t, "127.0.0.1:0", hangUp)
	good := startOrigin(t, "127.0.0.1:0", ok)
	p := newTestPool(t, Config{Servers: servers(bad, good)})
	req := post("/put", strings.NewReader("data"), 4)
	req.Head.Method, req.Retryable = []byte("PUT"), true
	if _, _, err := fetch(p, req); Status(err) != http.StatusBadGateway {
		t.Fatalf("err %v, want 502", err)
	}
	if good.requests.Load() != 0 {
		t.Error("a consumed body was sent again")
	}
}

func TestRetriesBounded(t *testing.T) {
	var os []*origin
	for range 5 {
		os = append(os, startOrigin(t, "127.0.0.1:0", hangUp))
	}
	p := newTestPool(t, Config{Servers: servers(os...), Retries: 2})
	if _, _, err := fetch(p, get("/")); Status(err) != http.StatusBadGateway {
		t.Fatalf("err %v, want 502", err)
	}
	var n int64
	for _, o := range os {
		n += o.requests.Load()
	}
	if n != 3 {
		t.Errorf("%d tries, want 1 + 2 retries", n)
	}
}

func TestKilledOriginEjectedAndRejoins(t *testing.T) {
	a := startOrigin(t, "127.0.0.1:0", ok)
	b := startOrigin(t, "127.0.0.1:0", ok)
	c := startOrigin(t, "127.0.0.1:0", ok)
	var ejects atomic.Int64
	p := newTestPool(t, Config{
		Servers:  servers(a, b, c),
		Cooldown: 300 * time.Millisecond,
		OnEject:  func(string) { ejects.Add(1) },
	})
	for i := range 200 {
		if i == 50 {
			c.kill()
		}
		if _, _, err := fetch(p, get("/")); err != nil {
			t.Fatalf("request %d failed: %v", i, err)
		}
	}
	if ejects.Load() == 0 {
		t.Fatal("the killed origin was never ejected")
	}
	back := startOrigin(t, c.addr, ok)
	deadline := time.Now().Add(10 * time.Second)
	for back.requests.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the origin did not rejoin after its cooldown")
		}
		if _, _, err := fetch(p, get("/")); err != nil {
			t.Fatalf("request failed while the origin came back: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := back.requests.Load()
	for range 30 {
		if _, _, err := fetch(p, get("/")); err != nil {
			t.Fatal(err)
		}
	}
	if back.requests.Load()-before < 5 {
		t.Errorf("rejoined origin got %d of 30 requests", back.requests.Load()-before)
	}
}
