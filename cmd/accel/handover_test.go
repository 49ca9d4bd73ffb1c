//go:build unix

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/accel-proxy/accel/internal/testproc"
)

// restartOrigin answers /cached with a cacheable body, /live/... with its
// own path (not stored, so every request reaches it), and /big with a
// large body that stops after its first part until gate closes. It counts
// the requests of every path.
type restartOrigin struct {
	addr string
	gate chan struct{}
	mu   sync.Mutex
	seen map[string]int
}

const bigSize, bigFirst = 4 << 20, 64 << 10

func startRestartOrigin(t *testing.T) *restartOrigin {
	t.Helper()
	o := &restartOrigin{gate: make(chan struct{}), seen: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.seen[r.URL.Path]++
		o.mu.Unlock()
		switch {
		case r.URL.Path == "/cached":
			w.Header().Set("Cache-Control", "max-age=600")
			io.WriteString(w, "cached body")
		case r.URL.Path == "/big":
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Length", fmt.Sprint(bigSize))
			body := originBody("/big", bigSize)
			w.Write(body[:bigFirst])
			w.(http.Flusher).Flush()
			select {
			case <-o.gate:
			case <-r.Context().Done():
				return
			}
			w.Write(body[bigFirst:])
		default:
			w.Header().Set("Cache-Control", "no-store")
			io.WriteString(w, r.URL.Path)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	o.addr = ln.Addr().String()
	return o
}

func (o *restartOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen[path]
}

// live returns how many /live/ paths the origin saw, and those it saw
// more than once.
func (o *restartOrigin) live() (n int, twice []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for p, c := range o.seen {
		if strings.HasPrefix(p, "/live/") {
			n += c
			if c > 1 {
				twice = append(twice, p)
			}
		}
	}
	return n, twice
}

// restartEnv is a config with a cleartext listener (HTTP/1 and h2c), a
// TLS one and an admin listener, all on fixed ports a restart keeps.
type restartEnv struct {
	bin, file, dir string
	plain, tlsAddr string
	admin          string
	roots          *x509.CertPool
	origin         *restartOrigin
}

func newRestartEnv(t *testing.T) *restartEnv {
	e := &restartEnv{bin: testproc.AccelBinary(t), dir: t.TempDir(), origin: startRestartOrigin(t)}
	e.file = filepath.Join(e.dir, "accel.yaml")
	certFile, keyFile := writeCert(t, e.dir, "localhost")
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	e.roots = x509.NewCertPool()
	e.roots.AppendCertsFromPEM(pem)
	e.plain, e.tlsAddr, e.admin = "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	os.WriteFile(e.file, []byte(fmt.Sprintf(`listen:
  - address: "%s"
  - address: "%s"
    tls:
      certificates:
        - cert: %s
          key: %s
pools:
  - name: app
    servers:
      - address: "%s"
routes:
  - pool: app
    cache:
      enabled: true
cache:
  dir: %s/data/cache
tls_sessions:
  dir: %s/data/sessions
admin:
  listen: "%s"
`, e.plain, e.tlsAddr, certFile, keyFile, e.origin.addr, e.dir, e.dir, e.admin)), 0o600)
	return e
}

func (e *restartEnv) socket() string { return filepath.Join(e.dir, "data", "accel.sock") }

// proc is a running accel binary.
type proc struct {
	cmd  *exec.Cmd
	logs *testproc.Log
	done chan struct{}
	err  error // the exit, once done is closed
}

// start runs the binary with args and waits until it serves (its log says
// so), bounded.
func (e *restartEnv) start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(e.bin, append([]string{"-config", e.file}, args...)...), logs: testproc.NewLog(), done: make(chan struct{})}
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	waitFor(t, p.logs, `msg="admin API" addr=`)
	return p
}

// exited waits, bounded, for p to exit and returns its exit error.
func (p *proc) exited(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(within):
		t.Fatalf("process %d still running after %v:\n%s", p.cmd.Process.Pid, within, p.logs)
		return nil
	}
}

// loop is one client running requests back to back through a restart.
// Every request has a path of its own, so the origin's counts show any
// request that reached it twice (a retry after a failure). Nothing is
// retried by the client: each failure and each refused dial is counted.
type loop struct {
	name                string
	ok, failed, refused atomic.Int64
	dials               atomic.Int64
	mu                  sync.Mutex
	errs                []string
}

func (l *loop) fail(refused bool, err error) {
	if refused {
		l.refused.Add(1)
	} else {
		l.failed.Add(1)
	}
	l.mu.Lock()
	if len(l.errs) < 5 {
		l.errs = append(l.errs, err.Error())
	}
	l.mu.Unlock()
}

// runH1 sends HTTP/1.1 requests over connections from dial, one at a time,
// with its own client: a keep-alive one reuses its connection until a
// response says Connection: close; otherwise every request has its own
// connection.
func (l *loop) runH1(stop <-chan struct{}, dial func() (net.Conn, error), keepAlive bool) {
	var c net.Conn
	var br *bufio.Reader
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		if c == nil {
			l.dials.Add(1)
			var err error
			if c, err = dial(); err != nil {
				c = nil
				l.fail(true, err)
				continue
			}
			br = bufio.NewReader(c)
		}
		path := fmt.Sprintf("/live/%s/%d", l.name, seq)
		conn := ""
		if !keepAlive {
			conn = "Connection: close\r\n"
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		_, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: restart.test\r\n%s\r\n", path, conn)
		var resp *http.Response
		if err == nil {
			resp, err = http.ReadResponse(br, nil)
		}
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			if err == nil && (resp.StatusCode != 200 || string(body) != path) {
				err = fmt.Errorf("%s: %d %q", path, resp.StatusCode, body)
			}
		}
		if err != nil {
			l.fail(false, fmt.Errorf("%s: %w", path, err))
			c.Close()
			c = nil
			continue
		}
		l.ok.Add(1)
		if resp.Close || !keepAlive {
			c.Close()
			c = nil
		}
	}
}

// runH2C sends requests over h2c prior knowledge with x/net's client,
// which moves to a new connection on GOAWAY. Its dials are counted; a
// stream GOAWAY refused (unprocessed, RFC 9113 §6.8) it sends again, which
// the origin's counts show never reached the origin twice.
func (l *loop) runH2C(stop <-chan struct{}, addr string) {
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, a string, _ *tls.Config) (net.Conn, error) {
		l.dials.Add(1)
		c, err := (&net.Dialer{}).DialContext(ctx, network, a)
		if err != nil {
			l.fail(true, err)
		}
		return c, err
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		path := fmt.Sprintf("/live/%s/%d", l.name, seq)
		resp, err := client.Get("http://" + addr + path)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && (resp.StatusCode != 200 || string(body) != path) {
				err = fmt.Errorf("%d %q", resp.StatusCode, body)
			}
		}
		if err != nil {
			var op *net.OpError
			if !errors.As(err, &op) || op.Op != "dial" {
				l.fail(false, fmt.Errorf("%s: %w", path, err))
			}
			continue
		}
		l.ok.Add(1)
	}
}

// waitRequests waits, bounded, until every loop has answered n more
// requests than it had at from.
func waitRequests(t *testing.T, loops []*loop, n int64) {
	t.Helper()
	from := make([]int64, len(loops))
	for i, l := range loops {
		from[i] = l.ok.Load()
	}
	deadline := time.Now().Add(30 * time.Second)
	for i, l := range loops {
		for l.ok.Load() < from[i]+n {
			if time.Now().After(deadline) {
				t.Fatalf("loop %s answered %d requests in 30s, want %d (failed %d, refused %d: %q)", l.name, l.ok.Load()-from[i], n, l.failed.Load(), l.refused.Load(), l.errs)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// get sends one request on a connection of its own.
func get(t *testing.T, addr, path string) *http.Response {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestBinarySeamlessRestart restarts the real binary under load: four
// clients (HTTP/1.1 keep-alive, HTTP/1.1 a connection per request, h2c,
// HTTP/1.1 over TLS with keep-alive) run requests back to back while a
// second binary takes over with -takeover. No request fails, no dial is
// refused, no request reaches the origin twice; the old process exits;
// the new one serves from the data dir it took over (a hit stored by the
// old one, the origin not asked again) and its admin API answers on the
// handed-over admin socket.
func TestBinarySeamlessRestart(t *testing.T) {
	e := newRestartEnv(t)
	old := e.start(t)

	// Stored by the old process: on disk once a request hits it.
	for i := 0; ; i++ {
		if strings.Contains(get(t, e.plain, "/cached").Header.Get("Cache-Status"), "hit") {
			break
		}
		if i == 100 {
			t.Fatal("/cached never became a hit")
		}
	}

	tlsConf := &tls.Config{RootCAs: e.roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	loops := []*loop{{name: "keepalive"}, {name: "perconn"}, {name: "h2c"}, {name: "tls"}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch l.name {
			case "keepalive":
				l.runH1(stop, func() (net.Conn, error) { return net.Dial("tcp", e.plain) }, true)
			case "perconn":
				l.runH1(stop, func() (net.Conn, error) { return net.Dial("tcp", e.plain) }, false)
			case "h2c":
				l.runH2C(stop, e.plain)
			case "tls":
				l.runH1(stop, func() (net.Conn, error) { return tls.Dial("tcp", e.tlsAddr, tlsConf) }, true)
			}
		}()
	}
	stopped := false
	stopLoops := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopLoops()
	waitRequests(t, loops, 50)

	next := e.start(t, "-takeover")
	if err := old.exited(t, 30*time.Second); err != nil {
		t.Fatalf("old process: %v\n%s", err, old.logs)
	}
	for _, want := range []string{"handed over to the new process", "msg=stopped"} {
		if !strings.Contains(old.logs.String(), want) {
			t.Errorf("old process never logged %q:\n%s", want, old.logs)
		}
	}
	if !strings.Contains(next.logs.String(), "took over the listening sockets and the data dir") {
		t.Errorf("new process log:\n%s", next.logs)
	}
	// Only the new process is left: every loop goes on through it.
	waitRequests(t, loops, 50)
	stopLoops()

	var total int64
	for _, l := range loops {
		t.Logf("%s: %d requests, %d dials", l.name, l.ok.Load(), l.dials.Load())
		if l.failed.Load() != 0 || l.refused.Load() != 0 {
			t.Errorf("%s: %d failed requests, %d refused connections: %q", l.name, l.failed.Load(), l.refused.Load(), l.errs)
		}
		total += l.ok.Load()
	}
	if n, twice := e.origin.live(); n != int(total) || len(twice) > 0 {
		t.Errorf("origin saw %d requests for %d answered; sent twice: %q", n, total, twice)
	}

	resp := get(t, e.plain, "/cached")
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
		t.Errorf("new process: /cached Cache-Status %q, want the old process's stored object as a hit", cs)
	}
	if n := e.origin.count("/cached"); n != 1 {
		t.Errorf("origin saw /cached %d times, want 1", n)
	}
	if resp := get(t, e.admin, "/healthz"); resp.StatusCode != 200 {
		t.Errorf("admin API after the takeover: %d", resp.StatusCode)
	}
	next.cmd.Process.Signal(syscall.SIGTERM)
	if err := next.exited(t, 30*time.Second); err != nil {
		t.Errorf("new process: %v\n%s", err, next.logs)
	}
	for _, p := range []*proc{old, next} {
		if strings.Contains(p.logs.String(), "level=ERROR") {
			t.Errorf("errors logged:\n%s", p.logs)
		}
	}
}

// TestBinaryTakeoverNoAnswer: a -takeover whose old process does not
// answer (stopped) fails within -takeover-timeout with an error naming
// the socket, and the old process, once it runs again, serves as before.
// So does a -takeover with no accel running, one whose config adds a
// port it cannot bind (refused before the old process lets go), and a
// second start without -takeover, which never disturbs the first.
func TestBinaryTakeoverNoAnswer(t *testing.T) {
	e := newRestartEnv(t)
	out, err := exec.Command(e.bin, "-config", e.file, "-takeover", "-takeover-timeout", "2s").CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "no accel answers on "+e.socket()) {
		t.Errorf("-takeover with nothing running: exit %d\n%s", code, out)
	}

	old := e.start(t)
	if err := old.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(e.bin, "-config", e.file, "-takeover", "-takeover-timeout", "500ms").CombinedOutput()
	old.cmd.Process.Signal(syscall.SIGCONT)
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "the accel on "+e.socket()+" did not answer within 500ms") {
		t.Errorf("-takeover of a stopped process: exit %d\n%s", code, out)
	}
	waitFor(t, old.logs, "takeover did not complete; still serving")
	if resp := get(t, e.plain, "/live/after-failed-takeover"); resp.StatusCode != 200 {
		t.Errorf("old process after a failed takeover: %d", resp.StatusCode)
	}

	out, err = exec.Command(e.bin, "-config", e.file).CombinedOutput()
	if code := exitCode(err); code == 0 || !strings.Contains(string(out), filepath.Join(e.dir, "data", "cache")) {
		t.Errorf("second start without -takeover: exit %d\n%s", code, out)
	}
	if resp := get(t, e.plain, "/live/after-second-start"); resp.StatusCode != 200 {
		t.Errorf("old process after a second start: %d", resp.StatusCode)
	}
	if _, err := os.Stat(e.socket()); err != nil {
		t.Errorf("the hand-over socket is gone: %v", err)
	}

	// A new config adding a listener on a port another socket holds: the
	// takeover fails while the old process still holds everything.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	yaml, err := os.ReadFile(e.file)
	if err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(e.dir, "extra.yaml")
	os.WriteFile(extra, []byte(strings.Replace(string(yaml), "listen:\n", "listen:\n  - address: \""+busy.Addr().String()+"\"\n", 1)), 0o600)
	out, err = exec.Command(e.bin, "-config", extra, "-takeover").CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "listen "+busy.Addr().String()) || !strings.Contains(string(out), "address already in use") {
		t.Errorf("-takeover with a port that cannot be bound: exit %d\n%s", code, out)
	}
	waitFor(t, old.logs, "went away before release")
	if resp := get(t, e.plain, "/live/after-bind-failure"); resp.StatusCode != 200 {
		t.Errorf("old process after a takeover that could not bind: %d", resp.StatusCode)
	}
	// The old process still hands over.
	t.Cleanup(func() {
		if t.Failed() {
			old.cmd.Process.Signal(syscall.SIGQUIT)
			<-old.done
			t.Logf("old process:\n%s", old.logs)
		}
	})
	next := e.start(t, "-takeover")
	if err := old.exited(t, 30*time.Second); err != nil {
		t.Errorf("old process: %v", err)
	}
	if resp := get(t, e.plain, "/live/after-takeover"); resp.StatusCode != 200 {
		t.Errorf("new process: %d\n%s", resp.StatusCode, next.logs)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestBinaryTakeoverDuringDownload: a download in flight when a new
// process takes over completes from the old process, byte for byte,
// while the new one already answers new connections; the old one exits
// when it is done.
func TestBinaryTakeoverDuringDownload(t *testing.T) {
	e := newRestartEnv(t)
	old := e.start(t)
	c, err := net.Dial("tcp", e.plain)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: restart.test\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, bigFirst)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}

	next := e.start(t, "-takeover")
	waitFor(t, old.logs, "handed over to the new process")
	if resp := get(t, e.plain, "/live/during-download"); resp.StatusCode != 200 {
		t.Errorf("new process during the download: %d", resp.StatusCode)
	}
	select {
	case <-old.done:
		t.Fatalf("old process exited with a download in flight:\n%s", old.logs)
	default:
	}
	close(e.origin.gate)
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("download after %d bytes: %v", bigFirst+len(rest), err)
	}
	if got := append(first, rest...); string(got) != string(originBody("/big", bigSize)) {
		t.Errorf("download: %d bytes, not the origin's %d", len(got), bigSize)
	}
	if err := old.exited(t, 30*time.Second); err != nil {
		t.Errorf("old process: %v\n%s", err, old.logs)
	}
	if n := e.origin.count("/big"); n != 1 {
		t.Errorf("origin saw /big %d times", n)
	}
	if strings.Contains(next.logs.String(), "/big") {
		t.Errorf("the new process served /big:\n%s", next.logs)
	}
}

// TestBinaryUpgradeSignal: SIGUSR2 makes the running accel start its own
// binary with -takeover; the old one exits, the new one serves. Both tell
// systemd (a Type=notify unit's $NOTIFY_SOCKET) they are ready, each with
// its own MAINPID, so that systemd follows the new process.
func TestBinaryUpgradeSignal(t *testing.T) {
	e := newRestartEnv(t)
	sock := filepath.Join(e.dir, "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	notified := func() string {
		t.Helper()
		notify.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 512)
		n, err := notify.Read(buf)
		if err != nil {
			b, _ := os.ReadFile(filepath.Join(e.dir, "stderr.log"))
			t.Fatalf("%v; log:\n%s", err, b)
		}
		return string(buf[:n])
	}
	// The new process inherits the old one's stderr: a file, since a pipe
	// would keep the old one's Wait until the new one exits.
	logFile, err := os.Create(filepath.Join(e.dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	old := &proc{cmd: exec.Command(e.bin, "-config", e.file), logs: testproc.NewLog(), done: make(chan struct{})}
	old.cmd.Stderr = logFile
	if err := old.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		old.err = old.cmd.Wait()
		b, _ := os.ReadFile(logFile.Name())
		old.logs.Write(b)
		close(old.done)
	}()
	t.Cleanup(func() {
		old.cmd.Process.Kill()
		<-old.done
	})
	if got, want := notified(), fmt.Sprintf("READY=1\nMAINPID=%d\n", old.cmd.Process.Pid); got != want {
		t.Errorf("notified %q, want %q", got, want)
	}
	old.cmd.Process.Signal(syscall.SIGUSR2)
	got := notified()
	var pid int
	if _, err := fmt.Sscanf(got, "READY=1\nMAINPID=%d\n", &pid); err != nil || pid == old.cmd.Process.Pid {
		t.Fatalf("after SIGUSR2 notified %q (old pid %d)", got, old.cmd.Process.Pid)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if err := old.exited(t, 30*time.Second); err != nil {
		t.Errorf("old process: %v\n%s", err, old.logs)
	}
	if !strings.Contains(old.logs.String(), fmt.Sprintf("upgrade: started the binary with -takeover\" pid=%d", pid)) {
		t.Errorf("old process log:\n%s", old.logs)
	}
	if resp := get(t, e.plain, "/live/after-upgrade"); resp.StatusCode != 200 {
		t.Errorf("after the upgrade: %d", resp.StatusCode)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Errorf("new process %d: %v", pid, err)
	}
}
