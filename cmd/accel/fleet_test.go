package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	hrw "github.com/accel-proxy/accel/internal/rendezvous"
	"github.com/accel-proxy/accel/internal/testproc"
)

// The fleet tests run three real accel processes, A, B and C, on
// 127.0.0.1, .2 and .3 (one port number for all, as a fleet behind an L4
// balancer uses), each with its own config file and data directory, and
// a real redis-server.

const fleetToken = "fleet-admin-token"

// fleetSite is the one site name the fleet serves, whichever member a
// client reaches: the cache key does not depend on the member's address.
const fleetSite = "www.example.test"

// fleetConfig is one member. ROUTE is the route's extra settings, FLEET
// the fleet section's.
const fleetConfig = `
listen:
  - address: "IP:PORT"
pools:
  - name: app
    servers:
      - address: "ORIGIN"
routes:
  - pool: app
    cache: {enabled: true}
    purge_from: ["127.0.0.0/8"]
ROUTE
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "IP:ADMINPORT"
  token: "` + fleetToken + `"
fleet:
FLEET
`

// member is one accel process of the fleet.
type member struct {
	*testproc.Accel
	name, addr, admin, dir string
}

// startFleet starts one member per ip with route and fleet settings
// (indented for their sections) and waits until each listens.
func startFleet(t *testing.T, ips []string, origin, route, fleet string) []*member {
	t.Helper()
	bin := testproc.AccelBinary(t)
	port, adminPort := freePort(t), freePort(t)
	var members []string
	for _, ip := range ips {
		members = append(members, `"`+net.JoinHostPort(ip, port)+`"`)
	}
	var out []*member
	for i, ip := range ips {
		m := &member{
			name:  string(rune('A' + i)),
			addr:  net.JoinHostPort(ip, port),
			admin: net.JoinHostPort(ip, adminPort),
			dir:   t.TempDir(),
		}
		text := strings.NewReplacer("ROUTE", route, "FLEET", fleet).Replace(fleetConfig)
		text = strings.NewReplacer(
			"MEMBERS", "["+strings.Join(members, ", ")+"]", "SELF", m.addr,
			"IP", ip, "ADMINPORT", adminPort, "PORT", port,
			"ORIGIN", origin, "DATADIR", m.dir,
		).Replace(text)
		file := filepath.Join(m.dir, "accel.yaml")
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		m.Accel = testproc.StartAccel(t, bin, file)
		m.WaitLog(10*time.Second, `msg="admin API"`)
		out = append(out, m)
	}
	return out
}

// restart starts a stopped member again and waits for its admin API.
func (m *member) restart() {
	m.Start()
	m.WaitLog(10*time.Second, `msg="admin API"`)
}

// countingOrigin answers every path with a cacheable body naming the path
// and how many times it was asked for it.
type countingOrigin struct {
	addr  string
	mu    sync.Mutex
	count map[string]int
	// marked counts requests carrying the members' peer mark, which is
	// never to leave the fleet.
	marked int
}

func startCountingOrigin(t *testing.T) *countingOrigin {
	t.Helper()
	o := &countingOrigin{count: map[string]int{}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.count[r.URL.Path]++
		n := o.count[r.URL.Path]
		if r.Header.Get("Accel-Fleet-Fetch") != "" {
			o.marked++
		}
		o.mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprintf(w, "%s v%d", r.URL.Path, n)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return o
}

func (o *countingOrigin) hits(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count[path]
}

func (o *countingOrigin) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.count {
		n += c
	}
	return n
}

// fleetClient is a balancer's client: keep-alive connections to every
// member, a bound on each request.
var fleetClient = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true},
}

// get asks m for path on the fleet's site and returns the status, body
// and Cache-Status.
func (m *member) get(path string) (int, string, string, error) {
	req, _ := http.NewRequest("GET", "http://"+m.addr+path, nil)
	req.Host = fleetSite
	resp, err := fleetClient.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Cache-Status"), err
}

// hit reports whether m answers path from its cache: 200, and the origin
// not asked.
func (m *member) hit(t *testing.T, o *countingOrigin, path string) bool {
	t.Helper()
	before := o.hits(path)
	code, body, cs, err := m.get(path)
	if err != nil || code != 200 || !strings.HasPrefix(body, path+" v") {
		t.Fatalf("%s %s: %d %q %v", m.name, path, code, body, err)
	}
	hit := o.hits(path) == before
	if hit != strings.Contains(cs, "; hit") {
		t.Errorf("%s %s: origin asked %v, but Cache-Status %q", m.name, path, !hit, cs)
	}
	return hit
}

func (m *member) adminDo(t *testing.T, method, path string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+m.admin+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+fleetToken)
	resp, err := fleetClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// fleetFetches reads accel_fleet_fetches_total{result} from m's metrics.
func (m *member) fleetFetches(t *testing.T, result string) int {
	t.Helper()
	code, body := m.adminDo(t, "GET", "/metrics", nil)
	if code != 200 {
		t.Fatalf("%s /metrics: %d", m.name, code)
	}
	want := `accel_fleet_fetches_total{result="` + result + `"} `
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s: %q", m.name, sc.Text())
			}
			return n
		}
	}
	return 0
}

const purgeStream = "test:purges"

// waitApplied waits until m's saved last-applied id (in its data
// directory) is the stream's last entry.
func waitApplied(t *testing.T, rdb *redis.Client, ms ...*member) {
	t.Helper()
	msgs, err := rdb.XRevRangeN(context.Background(), purgeStream, "+", "-", 1).Result()
	if err != nil || len(msgs) == 0 {
		t.Fatalf("reading the stream: %v %v", msgs, err)
	}
	want := msgs[0].ID
	for _, m := range ms {
		var have string
		for i := 0; ; i++ {
			b, _ := os.ReadFile(filepath.Join(m.dir, "fleet-purges.id"))
			if have = strings.TrimSpace(string(b)); have == want {
				break
			}
			if i == 1000 {
				t.Fatalf("%s never applied %s (has %q)", m.name, want, have)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestFleetPurge: a purge sent to A through its admin API, then through
// `accel purge`, makes B and C miss on their next request. C stopped by
// SIGTERM during a purge (sent with the PURGE method to B), and C killed
// by SIGKILL during another, misses the purged object on its first request
// after its restart and still hits the rest (a replay from its data
// directory, not a dropped cache). C down while the stream (bounded by
// stream_max_len) is trimmed past its last applied entry drops its cache,
// logs why, and misses everything.
func TestFleetPurge(t *testing.T) {
	o := startCountingOrigin(t)
	rp := testproc.Redis(t)
	// One entry per stream node, so that MAXLEN ~ trims exactly.
	if r := rp.Command("CONFIG SET stream-node-max-entries 1"); r != "+OK" {
		t.Fatal(r)
	}
	rdb := redis.NewClient(&redis.Options{Addr: rp.Addr})
	defer rdb.Close()
	fleet := startFleet(t, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, o.addr, "",
		"  redis: \""+rp.Addr+"\"\n  stream: "+purgeStream+"\n  stream_max_len: 4\n")
	a, b, c := fleet[0], fleet[1], fleet[2]
	paths := []string{"/p", "/q", "/r", "/s", "/t"}
	for _, p := range paths {
		for _, m := range fleet {
			m.hit(t, o, p)
			if !m.hit(t, o, p) {
				t.Fatalf("%s: %s not cached", m.name, p)
			}
		}
	}
	missesOnly := func(purged string, ms ...*member) {
		t.Helper()
		for _, m := range ms {
			if m.hit(t, o, purged) {
				t.Errorf("%s: %s still a hit after its purge", m.name, purged)
			}
			for _, p := range paths {
				if p > purged && !m.hit(t, o, p) {
					t.Errorf("%s: %s lost by the purge of %s", m.name, p, purged)
				}
			}
		}
	}

	// Admin API on A.
	if code, body := a.adminDo(t, "POST", "/purge/url", url.Values{"url": {"http://" + fleetSite + "/p"}}); code != 200 || !strings.Contains(body, `"purged": 1`) {
		t.Fatalf("purge: %d %s", code, body)
	}
	waitApplied(t, rdb, b, c)
	missesOnly("/p", a, b, c)

	// accel purge, with A's config file for the admin address and token.
	out, err := exec.Command(testproc.AccelBinary(t), "purge", "-config", a.Config, "url", "http://"+fleetSite+"/q").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("accel purge: %v %q", err, out)
	}
	waitApplied(t, rdb, b, c)
	missesOnly("/q", a, b, c)

	// C stopped (SIGTERM) while B takes a PURGE.
	c.Stop()
	req, _ := http.NewRequest("PURGE", "http://"+b.addr+"/r", nil)
	req.Host = fleetSite
	resp, err := fleetClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PURGE: %d", resp.StatusCode)
	}
	waitApplied(t, rdb, a)
	c.restart()
	missesOnly("/r", c, a)

	// C killed (SIGKILL: nothing saved on the way out) while A purges.
	c.Kill()
	if code, body := a.adminDo(t, "POST", "/purge/url", url.Values{"url": {"http://" + fleetSite + "/s"}}); code != 200 {
		t.Fatalf("purge: %d %s", code, body)
	}
	waitApplied(t, rdb, b)
	c.restart()
	missesOnly("/s", c, b)

	// C down for more purges than the stream keeps: its last applied id
	// is trimmed away, so it cannot know what it missed.
	c.Stop()
	saved, _ := os.ReadFile(filepath.Join(c.dir, "fleet-purges.id"))
	for i := range 5 {
		if code, body := a.adminDo(t, "POST", "/purge/url", url.Values{"url": {"http://" + fleetSite + "/gone/" + strconv.Itoa(i)}}); code != 200 {
			t.Fatalf("purge: %d %s", code, body)
		}
	}
	last := strings.TrimSpace(string(saved))
	if kept, err := rdb.XRange(context.Background(), purgeStream, last, last).Result(); err != nil || len(kept) != 0 {
		t.Fatalf("the stream still holds C's last applied entry %s: %v %v", last, kept, err)
	}
	c.restart()
	c.WaitLog(time.Second, "level=WARN", "dropping the local cache")
	if c.hit(t, o, "/t") {
		t.Error("C: /t a hit after its cache was dropped")
	}
	if !a.hit(t, o, "/t") || !b.hit(t, o, "/t") {
		t.Error("A or B lost /t: the drop was C's alone")
	}
}

// fetchRoute opts the route in to one origin fetch per fleet.
const fetchRoute = "    fleet_fetch: true\n"

// fetchAll sends every (member, path) pair once, in random order, over a
// few concurrent clients as a balancer spreads them, and fails on any
// answer but the origin's 200 for the path.
func fetchAll(t *testing.T, jobs []fetchJob) {
	t.Helper()
	rand.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	ch := make(chan fetchJob)
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for j := range ch {
				code, body, _, err := j.m.get(j.path)
				if err != nil || code != 200 || !strings.HasPrefix(body, j.path+" v") {
					t.Errorf("%s %s: %d %q %v", j.m.name, j.path, code, body, err)
				}
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
}

type fetchJob struct {
	m    *member
	path string
}

// TestFleetFetchOnce: 300 cold requests for 100 URLs, each URL asked of
// A, B and C in a random order over concurrent clients, reach the origin
// exactly 100 times, and each member counts one peer fetch per URL it
// does not own; the same 300 again are local hits. With B killed
// (SIGKILL), A and C answer every request with 200: each URL B owns is
// fetched from the origin by A and by C (one fallback each), every other
// URL once, by its owner.
func TestFleetFetchOnce(t *testing.T) {
	o := startCountingOrigin(t)
	// A generous peer timeout: a fallback here would be the machine's
	// load, not the fleet's design (TestFleetFetchSlowOwner has the short
	// one).
	fleet := startFleet(t, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, o.addr, fetchRoute,
		"  members: MEMBERS\n  self: \"SELF\"\n  peer_timeout: 10s\n")
	var members []string
	for _, m := range fleet {
		members = append(members, m.addr)
	}
	owner := func(path string) int { return hrw.Pick(members, fleetSite+path) }

	var jobs []fetchJob
	owned := make([]int, len(fleet))
	for i := range 100 {
		p := fmt.Sprintf("/once/%d", i)
		owned[owner(p)]++
		for _, m := range fleet {
			jobs = append(jobs, fetchJob{m, p})
		}
	}
	fetchAll(t, jobs)
	if n := o.total(); n != 100 {
		t.Errorf("origin fetched %d times for 100 URLs over 3 members, want 100", n)
	}
	o.mu.Lock()
	marked := o.marked
	o.mu.Unlock()
	if marked != 0 {
		t.Errorf("the peer mark reached the origin %d times", marked)
	}
	for i, m := range fleet {
		if got, want := m.fleetFetches(t, "peer"), 100-owned[i]; got != want {
			t.Errorf("%s: %d peer fetches, want %d (the URLs it does not own)", m.name, got, want)
		}
		if got := m.fleetFetches(t, "fallback"); got != 0 {
			t.Errorf("%s: %d fallbacks with every owner up", m.name, got)
		}
	}
	if min(owned[0], owned[1], owned[2]) == 0 {
		t.Fatalf("ownership %v: the hashing does not spread", owned)
	}
	// Hits stay local: each member stored what it fetched from an owner,
	// so the same 300 requests again ask neither the origin nor a peer.
	fetchAll(t, jobs)
	if n := o.total(); n != 100 {
		t.Errorf("the second round reached the origin %d times", n-100)
	}
	for i, m := range fleet {
		if got, want := m.fleetFetches(t, "peer"), 100-owned[i]; got != want {
			t.Errorf("%s: %d peer fetches after the second round, want still %d", m.name, got, want)
		}
	}

	a, b, c := fleet[0], fleet[1], fleet[2]
	b.Kill()
	aPeer, cPeer := a.fleetFetches(t, "peer"), c.fleetFetches(t, "peer")
	jobs = jobs[:0]
	var down [3][]string
	for i := range 100 {
		p := fmt.Sprintf("/down/%d", i)
		down[owner(p)] = append(down[owner(p)], p)
		jobs = append(jobs, fetchJob{a, p}, fetchJob{c, p}, fetchJob{a, p})
	}
	fetchAll(t, jobs)
	for i, paths := range down {
		want := 1
		if i == 1 {
			want = 2 // by A and by C, each after its fallback
		}
		for _, p := range paths {
			if n := o.hits(p); n != want {
				t.Errorf("%s (owned by %s): origin fetched %d times, want %d", p, fleet[i].name, n, want)
			}
		}
	}
	if n := o.total() - 100; n != 100+len(down[1]) {
		t.Errorf("with B down: origin fetched %d times, want %d (100 + B's share %d)", n, 100+len(down[1]), len(down[1]))
	}
	for _, x := range []struct {
		m                    *member
		peer, fallback, from int
	}{
		{a, len(down[2]), len(down[1]), aPeer}, // A asks C for C's URLs
		{c, len(down[0]), len(down[1]), cPeer}, // C asks A for A's
	} {
		if got := x.m.fleetFetches(t, "peer") - x.from; got != x.peer {
			t.Errorf("%s: %d peer fetches with B down, want %d", x.m.name, got, x.peer)
		}
		if got := x.m.fleetFetches(t, "fallback"); got != x.fallback {
			t.Errorf("%s: %d fallbacks, want %d (B's URLs)", x.m.name, got, x.fallback)
		}
	}
}

// TestFleetFetchSlowOwner: B, stopped with SIGSTOP, still accepts
// connections (the kernel completes them) but never answers. A passes it
// over after the short peer_timeout and asks the origin: every request is
// answered 200 while B is still stopped, each URL reaches the origin
// once, and A counts one fallback per URL B owns.
func TestFleetFetchSlowOwner(t *testing.T) {
	o := startCountingOrigin(t)
	fleet := startFleet(t, []string{"127.0.0.1", "127.0.0.2"}, o.addr, fetchRoute,
		"  members: MEMBERS\n  self: \"SELF\"\n  peer_timeout: 300ms\n")
	a, b := fleet[0], fleet[1]
	b.Signal(syscall.SIGSTOP)
	members := []string{a.addr, b.addr}
	owned := 0
	for i := range 20 {
		p := fmt.Sprintf("/slow/%d", i)
		if hrw.Pick(members, fleetSite+p) == 1 {
			owned++
		}
		code, body, _, err := a.get(p)
		if err != nil || code != 200 || !strings.HasPrefix(body, p+" v") {
			t.Fatalf("%s: %d %q %v", p, code, body, err)
		}
		if n := o.hits(p); n != 1 {
			t.Errorf("%s: origin fetched %d times", p, n)
		}
	}
	if owned == 0 {
		t.Fatal("B owns none of the keys; the test shows nothing")
	}
	if got := a.fleetFetches(t, "fallback"); got != owned {
		t.Errorf("A: %d fallbacks, want %d (B's URLs)", got, owned)
	}
	if got := a.fleetFetches(t, "peer"); got != 0 {
		t.Errorf("A: %d peer fetches from a stopped B", got)
	}
}
