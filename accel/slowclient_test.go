package accel

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// slowClientConfig caches, has a small pool, and keeps temp files in the
// test's directory. The queue waits long: 128 fetches of 256 KiB share 16
// connections, and on a loaded machine (with -race) they take more than
// the default second to be buffered, which would answer some 503 before
// they reach the origin.
const slowClientConfig = `
listen:
  - address: "127.0.0.1:0"
limits:
  origin_fetches_per_client: 128
pools:
  - name: app
    max_conns_per_server: 16
    queue_timeout: 30s
    buffer: {temp_dir: DATADIR}
    servers:
      - address: "ORIGIN"
routes:
  - pool: app
    cache: {enabled: true}
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "off"
`

// waitFor polls cond, bounded: for counters that have no event to wait on.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// Generous: the attack moves 32 MiB through accel, and CI's two cores
	// are busy with other packages' tests.
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// clientFrom is an HTTP/1.1 client whose connections come from a loopback
// address of its own, so that accel sees another client.
func clientFrom(t *testing.T, ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestSlowH2ReaderCannotStarve: one client opens 4 HTTP/2 connections ×
// 100 streams of uncacheable 256 KiB responses and never opens a window.
// Its fetches are bounded per address (the rest answered 503), the origin
// sends every admitted response at its own pace into accel's buffers, and
// the pool's connections are all free again while the attacker's streams
// still wait: another client's misses are all answered. Without buffering,
// 16 streams would hold the pool's 16 connections for write_timeout (30s).
func TestSlowH2ReaderCannotStarve(t *testing.T) {
	const size = 256 << 10
	var started, finished atomic.Int64
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path != "/big" {
			io.WriteString(w, "small "+r.URL.Query().Get("i"))
			return
		}
		started.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(make([]byte, size))
		finished.Add(1)
	})
	s := startAccel(t, slowClientConfig, o.addr)
	pool := s.state.Load().pools["app"]

	const conns, streams = 4, 100
	var attackers []*h2conn
	for range conns {
		h := dialH2(t, s.Addrs()[0].String())
		h.c.SetDeadline(time.Now().Add(60 * time.Second))
		for i := range streams {
			h.request(uint32(2*i+1), ":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/big")
		}
		attackers = append(attackers, h)
	}
	admitted := int64(128) // limits.origin_fetches_per_client
	waitFor(t, "the admitted attacker fetches to reach the origin", func() bool { return started.Load() >= admitted })
	waitFor(t, "the origin to finish them", func() bool { return finished.Load() == admitted })
	waitFor(t, "the pool's connections to be free", func() bool { return pool.Stats().Active == 0 })

	victim := clientFrom(t, "127.0.0.2")
	for i := range 20 {
		resp, err := victim.Get(baseURL(s, "h1") + "/small?i=" + strconv.Itoa(i))
		if err != nil {
			t.Fatalf("victim miss %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(body) != "small "+strconv.Itoa(i) {
			t.Fatalf("victim miss %d: %d %q %v", i, resp.StatusCode, body, err)
		}
	}
	if st := pool.Stats(); st.Active != 0 {
		t.Errorf("attacker streams hold %d origin connections", st.Active)
	}
	if n := started.Load(); n != admitted {
		t.Errorf("origin saw %d attacker fetches, want the %d admitted", n, admitted)
	}

	// The attacker's streams are still open: every one has its answer
	// head, 200 for the admitted ones and 503 for the rest.
	statuses := map[string]int{}
	for _, h := range attackers {
		h.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for seen := 0; seen < streams; {
			f, err := h.fr.ReadFrame()
			if err != nil {
				t.Fatalf("attacker connection: %v after %d heads", err, seen)
			}
			if hf, ok := f.(*http2.MetaHeadersFrame); ok {
				statuses[hf.PseudoValue("status")]++
				seen++
			}
		}
	}
	if statuses["200"] != int(admitted) || statuses["503"] != conns*streams-int(admitted) {
		t.Errorf("attacker's answers %v, want %d × 200 and the rest 503", statuses, admitted)
	}
}
