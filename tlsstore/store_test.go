package tlsstore

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accel-proxy/accel/internal/testproc"
)

func TestStatefulRedisFleet(t *testing.T) {
	r := testproc.Redis(t)
	f := openFleet(t, func(int) Config { return Config{Backend: BackendRedis, Addrs: []string{r.Addr}} })
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) { f.resumesAcross(t, v.v, 100) })
	}
	if st := f.total(); st.StoreErrors != 0 || st.Resumed < 200 {
		t.Fatalf("stats %+v: want no store errors and at least 200 resumptions", st)
	}
}

func TestStatefulMemcachedFleet(t *testing.T) {
	m := testproc.Memcached(t)
	f := openFleet(t, func(int) Config { return Config{Backend: BackendMemcached, Addrs: []string{m.Addr}} })
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) { f.resumesAcross(t, v.v, 100) })
	}
	if st := f.total(); st.StoreErrors != 0 || st.Resumed < 200 {
		t.Fatalf("stats %+v: want no store errors and at least 200 resumptions", st)
	}
}

// Two Redis servers: every instance must pick the same server for a
// session whatever the order it lists them in, and both must get a share.
func TestStatefulRedisRendezvous(t *testing.T) {
	r1, r2 := testproc.Redis(t), testproc.Redis(t)
	f := openFleet(t, func(i int) Config {
		addrs := []string{r1.Addr, r2.Addr}
		if i == 2 {
			addrs = []string{r2.Addr, r1.Addr}
		}
		return Config{Backend: BackendRedis, Addrs: addrs}
	})
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) { f.resumesAcross(t, v.v, 100) })
	}
	for _, r := range []*testproc.Proc{r1, r2} {
		reply := r.Command("DBSIZE")
		n, err := strconv.Atoi(strings.TrimPrefix(reply, ":"))
		if err != nil || n < 10 {
			t.Errorf("redis %s holds %q keys; want a share of about 200 sessions", r.Addr, reply)
		}
	}
}

func TestStatelessMemcachedFleet(t *testing.T) {
	m := testproc.Memcached(t)
	f := openFleet(t, func(int) Config {
		return Config{Mode: ModeStateless, Backend: BackendMemcached, Addrs: []string{m.Addr}}
	})
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) { f.resumesAcross(t, v.v, 30) })
	}
}

// The memory backend persisted in a directory keeps sessions (stateful) or
// ticket keys (stateless) across a restart of the Store.
func TestMemoryPersistedAcrossRestart(t *testing.T) {
	for _, mode := range []string{ModeStateful, ModeStateless} {
		dir := t.TempDir()
		for _, v := range versions {
			t.Run(mode+"/"+v.name, func(t *testing.T) { testRestart(t, Config{Mode: mode, Dir: dir}, v.v) })
		}
	}
}

func testRestart(t *testing.T, cfg Config, v uint16) {
	c := newClient(v)
	s1, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, "127.0.0.1", s1)
	if c.mustDial(t, addr) {
		t.Fatal("first handshake resumed")
	}
	if !c.mustDial(t, addr) {
		t.Fatal("no resumption before the restart")
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, cfg)
	if !c.mustDial(t, serve(t, "127.0.0.2", s2)) {
		t.Fatalf("no resumption after the restart; stats %+v", s2.Stats())
	}
}

// Three instances rotate ticket keys every 2s while two clients (TLS 1.2
// and 1.3) reconnect round robin for 10s: every reconnect resumes.
func TestStatelessRotationAcrossFleet(t *testing.T) {
	r := testproc.Redis(t)
	f := openFleet(t, func(int) Config {
		return Config{Mode: ModeStateless, Backend: BackendRedis, Addrs: []string{r.Addr}, RotationPeriod: 2 * time.Second}
	})
	clients := []*client{newClient(versions[0].v), newClient(versions[1].v)}
	for _, c := range clients {
		if c.mustDial(t, f.addrs[0]) {
			t.Fatal("first handshake resumed")
		}
	}
	reconnects, resumed := 0, 0
	for i, end := 1, time.Now().Add(10*time.Second); time.Now().Before(end); i++ {
		for _, c := range clients {
			reconnects++
			if c.mustDial(t, f.addrs[i%3]) {
				resumed++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resumed != reconnects {
		t.Fatalf("%d of %d reconnects resumed; stats %+v", resumed, reconnects, f.total())
	}
	for i, s := range f.stores {
		if st := s.Stats(); st.KeyRotations < 3 || st.StoreErrors != 0 {
			t.Errorf("instance %d: stats %+v: want at least 3 key rotations in 10s and no store errors", i, st)
		}
	}
}

// Redis stops mid-test: handshakes stay successful but full and errors are
// counted; once Redis is back on the same port, resumption returns.
func TestRedisOutage(t *testing.T) {
	r := testproc.Redis(t)
	f := openFleet(t, func(int) Config { return Config{Backend: BackendRedis, Addrs: []string{r.Addr}} })
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			c := newClient(v.v)
			c.mustDial(t, f.addrs[0])
			if !c.mustDial(t, f.addrs[1]) {
				t.Fatal("no resumption while Redis is up")
			}

			before := f.total().StoreErrors
			r.Stop()
			for i := range 9 {
				if c.mustDial(t, f.addrs[(i+2)%3]) {
					t.Fatalf("reconnect %d resumed on another instance while Redis is down", i)
				}
			}
			if after := f.total().StoreErrors; after <= before {
				t.Fatalf("StoreErrors stayed at %d while Redis was down", after)
			}

			r.Start()
			for try := 0; ; try++ {
				if c.mustDial(t, f.addrs[try%3]) {
					t.Logf("resumed again after %d handshakes", try+1)
					break
				}
				if try == 100 {
					t.Fatalf("no resumption in 100 handshakes after Redis came back; stats %+v", f.total())
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// A stateless fleet keeps resuming through an outage with the ring it has.
func TestStatelessKeepsRingDuringOutage(t *testing.T) {
	r := testproc.Redis(t)
	f := openFleet(t, func(int) Config {
		return Config{Mode: ModeStateless, Backend: BackendRedis, Addrs: []string{r.Addr}, RotationPeriod: time.Second}
	})
	c := newClient(versions[1].v)
	c.mustDial(t, f.addrs[0])
	r.Stop()
	// Let several refreshes, and an epoch boundary, pass against the
	// stopped store; the installed ring must stay.
	time.Sleep(1200 * time.Millisecond)
	for i := range 6 {
		if !c.mustDial(t, f.addrs[(i+1)%3]) {
			t.Fatalf("reconnect %d not resumed with Redis down", i)
		}
	}
	if f.total().StoreErrors == 0 {
		t.Fatal("refreshes against a stopped Redis counted no error")
	}
}

// Tickets that are not ours, altered, or from another fleet never resume
// and never fail the handshake, in either mode.
func TestForgedTickets(t *testing.T) {
	for _, mode := range []string{ModeStateful, ModeStateless} {
		for _, v := range versions {
			t.Run(mode+"/"+v.name, func(t *testing.T) {
				s := openStore(t, Config{Mode: mode})
				addr := serve(t, "127.0.0.1", s)
				other := serve(t, "127.0.0.2", openStore(t, Config{Mode: mode}))
				c := newClient(v.v)
				c.mustDial(t, addr)
				real := c.currentTicket(t)

				flipped := append([]byte(nil), real...)
				flipped[len(flipped)-1] ^= 1
				forgeries := map[string][]byte{
					"random identity": append([]byte{identityVersion}, random(32)...),
					"random long":     random(200),
					"short":           random(5),
					"altered":         flipped,
				}
				for name, ticket := range forgeries {
					misses := s.Stats().Misses
					c.replaceTicket(t, ticket)
					if c.mustDial(t, addr) {
						t.Fatalf("%s ticket resumed", name)
					}
					if s.Stats().Misses == misses {
						t.Fatalf("%s ticket did not reach UnwrapSession", name)
					}
				}

				// A ticket issued by another fleet.
				c.mustDial(t, other)
				misses := s.Stats().Misses
				if c.mustDial(t, addr) {
					t.Fatal("another fleet's ticket resumed")
				}
				if s.Stats().Misses == misses {
					t.Fatal("another fleet's ticket did not reach UnwrapSession")
				}
				if !c.mustDial(t, addr) {
					t.Fatal("a genuine ticket did not resume after the forgeries")
				}
			})
		}
	}
}

// A ticket presented after the session lifetime gives a full handshake.
func TestExpiredTicket(t *testing.T) {
	for _, mode := range []string{ModeStateful, ModeStateless} {
		for _, v := range versions {
			t.Run(mode+"/"+v.name, func(t *testing.T) {
				t.Parallel()
				s := openStore(t, Config{Mode: mode, Lifetime: time.Second})
				addr := serve(t, "127.0.0.1", s)
				c := newClient(v.v)
				c.mustDial(t, addr)
				if !c.mustDial(t, addr) {
					t.Fatal("no resumption within the lifetime")
				}
				time.Sleep(1500 * time.Millisecond)
				misses := s.Stats().Misses
				if c.mustDial(t, addr) {
					t.Fatal("expired ticket resumed")
				}
				if s.Stats().Misses == misses {
					t.Fatal("expired ticket did not reach UnwrapSession")
				}
			})
		}
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // substring of the error; empty for valid
	}{
		{Config{}, ""},
		{Config{Mode: ModeStateless, Backend: BackendRedis, Addrs: []string{"10.0.0.1:6379", "[::1]:6380"}}, ""},
		{Config{Backend: BackendMemcached, Addrs: []string{"cache:11211"}, Timeout: time.Second}, ""},
		{Config{Mode: "sticky"}, "mode"},
		{Config{Backend: "etcd"}, "backend"},
		{Config{Backend: BackendRedis}, "addrs"},
		{Config{Addrs: []string{"127.0.0.1:6379"}}, "addrs"},
		{Config{Backend: BackendRedis, Addrs: []string{"localhost"}}, "addrs[0]"},
		{Config{Backend: BackendRedis, Addrs: []string{"a:1", "a:1"}}, "addrs[1]"},
		{Config{Backend: BackendRedis, Addrs: []string{"a:1"}, Dir: "/tmp/x"}, "dir"},
		{Config{Lifetime: -time.Second}, "lifetime"},
		{Config{Lifetime: time.Millisecond}, "lifetime"},
		{Config{Lifetime: 8 * 24 * time.Hour}, "lifetime"},
		{Config{Timeout: -1}, "timeout"},
		{Config{RotationPeriod: 10 * time.Millisecond}, "rotation_period"},
		{Config{KeyWindow: -1}, "key_window"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := Open(Config{Mode: "sticky"}, nil); err == nil {
		t.Error("Open accepted an invalid Config")
	}
}

// TestRedisLogsThroughSlog: go-redis's own messages (here, dials to a
// Redis that is down) reach the store's slog logger as JSON, not stderr.
func TestRedisLogsThroughSlog(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	s, err := Open(Config{Backend: BackendRedis, Addrs: []string{dead}, Timeout: time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := newClient(tls.VersionTLS13)
	addr := serve(t, "127.0.0.1", s)
	for range 3 {
		c.mustDial(t, addr)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var fromRedis int
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		if msg, _ := rec["msg"].(string); strings.HasPrefix(msg, "redis: ") {
			fromRedis++
		}
	}
	if fromRedis == 0 {
		t.Errorf("no go-redis message in the store's log:\n%s", buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
