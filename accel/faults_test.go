package accel

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultConfig caches, with one origin server and a short first-byte timeout.
const faultConfig = `
listen:
  - address: "127.0.0.1:0"
pools:
  - name: app
    first_byte_timeout: 500ms
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

// faultBody is what the origin sends when it behaves: 64 KiB, cacheable.
var faultBody = bytes.Repeat([]byte("0123456789abcdef"), 4096)

// faultOrigin answers every GET with faultBody, or, while fault is set,
// with the fault's behaviour on that connection.
type faultOrigin struct {
	addr     string
	fault    atomic.Pointer[func(c net.Conn, br *bufio.Reader)]
	requests atomic.Int64
}

func startFaultOrigin(t *testing.T) *faultOrigin {
	o := &faultOrigin{}
	o.addr = rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, err := readReq(br); err != nil {
				return
			}
			o.requests.Add(1)
			if f := o.fault.Load(); f != nil {
				(*f)(c, br)
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: "+strconv.Itoa(len(faultBody))+"\r\n\r\n")
			c.Write(faultBody)
		}
	})
	return o
}

// hold keeps the connection open, unanswered, until accel closes it.
func hold(c net.Conn, br *bufio.Reader) { io.Copy(io.Discard, br) }

// TestOriginFaults: for each way an origin breaks, the client gets a
// prompt, honest answer, nothing broken is stored (the next request goes to
// the origin again), and the next request is served and then cached.
func TestOriginFaults(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  func(c net.Conn, br *bufio.Reader)
		status int  // what the client gets
		cut    bool // the head went out and the body was cut
	}{{
		name: "reset mid-body",
		fault: func(c net.Conn, br *bufio.Reader) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: "+strconv.Itoa(len(faultBody))+"\r\n\r\n")
			c.Write(faultBody[:30000])
			c.(*net.TCPConn).SetLinger(0) // RST, not FIN
		},
		status: 200, cut: true,
	}, {
		name:   "never answering",
		fault:  hold,
		status: 504,
	}, {
		name: "garbage head",
		fault: func(c net.Conn, br *bufio.Reader) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
		},
		status: 502,
	}, {
		name: "1xx storm",
		fault: func(c net.Conn, br *bufio.Reader) {
			io.WriteString(c, strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", 100))
			hold(c, br)
		},
		status: 502,
	}, {
		name: "unrequested 101",
		fault: func(c net.Conn, br *bufio.Reader) {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			hold(c, br)
		},
		status: 502,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			o := startFaultOrigin(t)
			s := startAccel(t, faultConfig, o.addr)
			c := client(t, "h1")
			url := baseURL(s, "h1") + "/f"

			o.fault.Store(&tc.fault)
			start := time.Now()
			resp, err := c.Get(url)
			if err != nil {
				t.Fatalf("faulty origin: %v (want a %d)", err, tc.status)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("client got %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.cut && (err == nil || len(body) >= len(faultBody)) {
				t.Fatalf("a body cut by the origin reached the client whole (%d bytes, %v)", len(body), err)
			}
			if !tc.cut && err != nil {
				t.Fatalf("error answer's body: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("answered after %v", d)
			}

			o.fault.Store(nil)
			before := o.requests.Load()
			for i, want := range []string{"miss", "hit"} {
				resp, err := c.Get(url)
				if err != nil {
					t.Fatalf("request %d after the fault: %v", i, err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, faultBody) {
					t.Fatalf("request %d after the fault: %d, %d bytes, %v", i, resp.StatusCode, len(body), err)
				}
				if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, want) {
					t.Errorf("request %d after the fault: Cache-Status %q, want %s (nothing broken stored)", i, cs, want)
				}
			}
			if n := o.requests.Load() - before; n != 1 {
				t.Errorf("origin saw %d requests after the fault, want 1", n)
			}
		})
	}
}

// TestOriginRestartUnderLoad: a one-server pool's origin closes its
// listener and every connection, and opens the port again 300ms later,
// while 4 clients keep asking for uncacheable pages. Refused connections
// are dialled again and requests on connections the origin closed are
// sent again, so at most the requests in flight at the cut (4) may fail.
func TestOriginRestartUnderLoad(t *testing.T) {
	handler := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "page "+r.URL.Query().Get("i"))
	}
	o := startHTTPOrigin(t, handler)
	s := startAccel(t, faultConfig, o.addr)

	const loops = 4
	var served, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for l := range loops {
		c := client(t, "h1")
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				want := "page " + strconv.Itoa(l*1_000_000+i)
				resp, err := c.Get(baseURL(s, "h1") + "/p?i=" + strconv.Itoa(l*1_000_000+i))
				if err != nil {
					failed.Add(1)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(body) != want {
					failed.Add(1)
					t.Logf("failed: %d %q %v", resp.StatusCode, body, err)
					continue
				}
				served.Add(1)
			}
		})
	}
	waitFor(t, "requests before the cut", func() bool { return served.Load() >= 200 })
	o.srv.Close()
	cut := served.Load()
	time.Sleep(300 * time.Millisecond) // the restart gap itself
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	back := &http.Server{Handler: http.HandlerFunc(handler)}
	go back.Serve(ln)
	t.Cleanup(func() { back.Close() })
	waitFor(t, "requests after the restart", func() bool { return served.Load() >= cut+200 })
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > loops {
		t.Errorf("%d requests failed across the restart, want at most the %d in flight at the cut", n, loops)
	}
	t.Logf("%d served, %d failed", served.Load(), failed.Load())
}

// syncBuffer is a log destination tests read while accel writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// lines returns the log lines that contain every one of subs.
func (b *syncBuffer) lines(subs ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.b.String(), "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			out = append(out, l)
		}
	}
	return out
}

// TestFailedTryLogsServer: the access line of a request whose origin
// failed names the server that failed it, and a pool whose every server
// fails says so once, until one answers again.
func TestFailedTryLogsServer(t *testing.T) {
	o := startFaultOrigin(t)
	dead := closedAddr(t)
	cfg := strings.Replace(faultConfig, `      - address: "ORIGIN"`, `      - address: "ORIGIN"
      - address: "`+dead+`"`, 1)
	cfg = strings.Replace(cfg, "    first_byte_timeout: 500ms\n", "    first_byte_timeout: 500ms\n    fail_threshold: 1\n    redial_window: 1ms\n", 1)
	var logs syncBuffer
	s := startAccelLog(t, cfg, o.addr, t.TempDir(), &logs)
	c := client(t, "h1")
	garbage := func(c net.Conn, br *bufio.Reader) { io.WriteString(c, "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n") }
	o.fault.Store(&garbage)
	for i := range 4 {
		resp, err := c.Get(baseURL(s, "h1") + "/x" + strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 502 {
			t.Fatalf("request %d: %d, want 502", i, resp.StatusCode)
		}
	}
	failed := logs.lines(`"msg":"access"`, `"status":502`)
	if len(failed) != 4 {
		t.Fatalf("%d access lines with 502, want 4:\n%s", len(failed), strings.Join(failed, "\n"))
	}
	for _, l := range failed {
		if !strings.Contains(l, `"upstream":"`+o.addr+`"`) && !strings.Contains(l, `"upstream":"`+dead+`"`) {
			t.Errorf("failed try logged without its server: %s", l)
		}
	}
	if n := len(logs.lines("every server of the pool is failing")); n != 1 {
		t.Errorf("%d all-failing lines, want 1", n)
	}
	o.fault.Store(nil)
	resp, err := c.Get(baseURL(s, "h1") + "/ok")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the origin recovered: %v", err)
	}
	resp.Body.Close()
	if n := len(logs.lines("origin server recovered", o.addr)); n != 1 {
		t.Errorf("%d recovery lines naming %s, want 1", n, o.addr)
	}
}

// closedAddr is a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
