package upstream

import (
	"strings"
	"testing"
	"time"
)

func pickPool(t testing.TB, balance string, weights ...int) *Pool {
	var sc []ServerConfig
	for i, w := range weights {
		sc = append(sc, ServerConfig{Addr: "127.0.0.1:" + string(rune('1'+i)) + "000", Weight: w})
	}
	p, err := NewPool(Config{Servers: sc, Balance: balance})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSmoothRRSequence pins nginx's interleaving for 5:3:2.
func TestSmoothRRSequence(t *testing.T) {
	p := pickPool(t, RoundRobin, 5, 3, 2)
	defer p.Close()
	name := map[*server]string{p.servers[0]: "a", p.servers[1]: "b", p.servers[2]: "c"}
	var got strings.Builder
	f := p.filter(0)
	for range 10 {
		got.WriteString(name[p.pick.pick(p.servers, f)])
	}
	if want := "abcaabacba"; got.String() != want {
		t.Errorf("sequence %s, want %s", got.String(), want)
	}
}

func TestPickSkips(t *testing.T) {
	p := pickPool(t, RoundRobin, 1, 1, 1)
	defer p.Close()
	a, b, c := p.servers[0], p.servers[1], p.servers[2]
	a.ejected, a.downUntil = true, time.Now().Add(time.Hour)
	b.active = p.cfg.MaxConnsPerServer
	for range 5 {
		if s := p.pick.pick(p.servers, p.filter(0)); s != c {
			t.Fatalf("picked %s, want %s", s.addr, c.addr)
		}
	}
	if s := p.pick.pick(p.servers, p.filter(c.bit)); s != nil {
		t.Fatalf("picked %s with every server out", s.addr)
	}
}

func TestLeastConnPick(t *testing.T) {
	p := pickPool(t, LeastConn, 2, 1)
	defer p.Close()
	a, b := p.servers[0], p.servers[1]
	// Equal load: round-robin by weight.
	n := map[*server]int{}
	for range 30 {
		n[p.pick.pick(p.servers, p.filter(0))]++
	}
	if n[a] != 20 || n[b] != 10 {
		t.Errorf("idle picks a=%d b=%d, want 20/10", n[a], n[b])
	}
	// a carries 3 per 2 weight, b 1 per 1: b is less loaded.
	a.active, b.active = 3, 1
	if s := p.pick.pick(p.servers, p.filter(0)); s != b {
		t.Errorf("picked %s, want the less loaded %s", s.addr, b.addr)
	}
	a.active = 1 // 1/2 < 1/1
	if s := p.pick.pick(p.servers, p.filter(0)); s != a {
		t.Errorf("picked %s, want the less loaded %s", s.addr, a.addr)
	}
}

func TestPickAllocatesNothing(t *testing.T) {
	for _, bal := range []string{RoundRobin, LeastConn} {
		p := pickPool(t, bal, 5, 3, 2)
		p.servers[1].ejected = true
		p.servers[1].downUntil = time.Now().Add(time.Hour)
		allocs := testing.AllocsPerRun(1000, func() {
			p.mu.Lock()
			l, _ := p.tryLeaseLocked(p.filter(0))
			l.srv.active--
			p.mu.Unlock()
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per pick, want 0", bal, allocs)
		}
		p.Close()
	}
}
