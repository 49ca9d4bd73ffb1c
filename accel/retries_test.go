package accel

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// resettingOrigin reads each request head and closes the connection without
// answering; it counts the requests it saw.
func resettingOrigin(t *testing.T) (addr string, seen *atomic.Int64) {
	t.Helper()
	seen = new(atomic.Int64)
	addr = rawOrigin(t, func(_ net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err == nil {
			seen.Add(1)
		}
	})
	return addr, seen
}

const twoServerConfig = `
listen:
  - address: "127.0.0.1:0"
pools:
  - name: app
    fail_threshold: 100
RETRIES
    servers:
      - address: "BAD"
      - address: "ORIGIN"
routes:
  - pool: app
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "off"
`

func getStatus(t *testing.T, s *Server) int {
	t.Helper()
	resp, err := client(t, "h1").Get(baseURL(s, "h1") + "/r")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// With retries unset (2, as documented), a GET whose server fails before
// the head is answered by another server.
func TestRetriesUnsetMeansTwo(t *testing.T) {
	good := startOrigin(t)
	bad, seen := resettingOrigin(t)
	cfg := strings.NewReplacer("BAD", bad, "RETRIES\n", "").Replace(twoServerConfig)
	s := startAccel(t, cfg, good.addr())
	for i := range 4 {
		if st := getStatus(t, s); st != 200 {
			t.Fatalf("GET %d: status %d (failing server saw %d), want 200 from the other server", i, st, seen.Load())
		}
	}
}

// retries: 0 means no retry (upstream's own zero means its default).
func TestRetriesZeroMeansNone(t *testing.T) {
	good := startOrigin(t)
	bad, seen := resettingOrigin(t)
	cfg := strings.NewReplacer("BAD", bad, "RETRIES", "    retries: 0").Replace(twoServerConfig)
	s := startAccel(t, cfg, good.addr())
	for range 4 {
		getStatus(t, s)
	}
	// Smooth round-robin over two equal servers: two of the four requests
	// go to the failing one first; with no retries they end there.
	if n := good.requests.Load(); n != 2 {
		t.Fatalf("with retries: 0 the good server answered %d of 4 requests (failing server saw %d): failed requests were retried", n, seen.Load())
	}
}
