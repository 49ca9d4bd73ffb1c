package accel

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	hrw "github.com/accel-proxy/accel/internal/rendezvous"
	"github.com/accel-proxy/accel/internal/testproc"
	"github.com/accel-proxy/accel/policy"
)

const peerConfig = `
listen:
  - address: "SELF"
pools:
  - name: app
    servers:
      - address: "ORIGIN"
routes:
  - pool: app
    cache: {enabled: true}
    fleet_fetch: true
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "off"
fleet:
  members: [MEMBERS]
  self: "SELF"
  peer_timeout: TIMEOUT
`

func startPeer(t *testing.T, self string, members []string, originAddr, timeout string) *Server {
	t.Helper()
	dir := t.TempDir()
	text := strings.NewReplacer("SELF", self, "MEMBERS", `"`+strings.Join(members, `", "`)+`"`, "ORIGIN", originAddr, "DATADIR", dir, "TIMEOUT", timeout).Replace(peerConfig)
	file := filepath.Join(dir, "accel.yaml")
	os.WriteFile(file, []byte(text), 0o600)
	cfg, err := policy.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

// TestFleetFetchOnce: 300 cold requests for 100 URLs spread over A, B and
// C reach the origin 100 times; with B gone, every request is still
// answered and the origin count rises by B's share only (A and C each
// fetch B's keys themselves).
func TestFleetFetchOnce(t *testing.T) {
	o := startCountingOrigin(t)
	port := strconv.Itoa(testproc.FreePort(t))
	var members []string
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		members = append(members, net.JoinHostPort(ip, port))
	}
	var s []*Server
	for _, m := range members {
		s = append(s, startPeer(t, m, members, o.addr(), "5s"))
	}
	get := func(x *Server, path string) {
		t.Helper()
		req, _ := http.NewRequest("GET", baseURL(x, "h1")+path, nil)
		req.Host = "www.example.test"
		resp, err := client(t, "h1").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), path+" v") {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, b)
		}
	}
	total := func() int {
		o.mu.Lock()
		defer o.mu.Unlock()
		n := 0
		for _, c := range o.count {
			n += c
		}
		return n
	}
	for i := range 100 {
		p := fmt.Sprintf("/once/%d", i)
		for _, x := range s {
			get(x, p)
		}
	}
	if n := total(); n != 100 {
		t.Fatalf("origin fetched %d times for 100 URLs over 3 members, want 100", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	s[1].Shutdown(ctx)
	cancel()
	bShare := 0
	for i := range 100 {
		p := fmt.Sprintf("/down/%d", i)
		if hrw.Pick(members, "www.example.test"+p) == 1 {
			bShare++
		}
		for _, x := range []*Server{s[0], s[2], s[0]} {
			get(x, p)
		}
	}
	if n := total() - 100; n != 100+bShare {
		t.Errorf("with B down: origin fetched %d times, want %d (100 + B's share %d)", n, 100+bShare, bShare)
	}
	if bShare == 0 || bShare == 100 {
		t.Errorf("B owns %d of 100 keys: the hashing does not spread", bShare)
	}
}

// TestFleetFetchSlowOwner: an owner that accepts connections and never
// answers is passed over after peer_timeout, and the member asks the
// origin itself: every request answered, each URL fetched once.
func TestFleetFetchSlowOwner(t *testing.T) {
	o := startCountingOrigin(t)
	hung := make(chan struct{})
	t.Cleanup(func() { close(hung) })
	slow := rawOrigin(t, func(c net.Conn, _ *bufio.Reader) { <-hung })
	self := net.JoinHostPort("127.0.0.1", strconv.Itoa(testproc.FreePort(t)))
	members := []string{self, slow}
	s := startPeer(t, self, members, o.addr(), "300ms")
	owned := 0
	for i := range 20 {
		p := fmt.Sprintf("/slow/%d", i)
		if hrw.Pick(members, "www.example.test"+p) == 1 {
			owned++
		}
		req, _ := http.NewRequest("GET", baseURL(s, "h1")+p, nil)
		req.Host = "www.example.test"
		resp, err := client(t, "h1").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
		if n := o.hits(p); n != 1 {
			t.Errorf("%s: origin fetched %d times", p, n)
		}
	}
	if owned == 0 {
		t.Fatal("the hung member owns none of the keys; the test shows nothing")
	}
}
