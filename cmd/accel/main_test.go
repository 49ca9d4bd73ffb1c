package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/accel-proxy/accel/internal/testproc"
)

func TestBadConfigRefusedAtStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "accel.yaml")
	os.WriteFile(file, []byte("listen:\n  - address: \"127.0.0.1:0\"\npools: []\nroutes:\n  - pool: web\n"), 0o600)
	var stderr bytes.Buffer
	if code := run([]string{"-config", file}, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if msg := stderr.String(); !strings.Contains(msg, "accel.yaml:5: routes[0].pool: pool \"web\" is not defined") {
		t.Errorf("message %q does not name file, line and field", msg)
	}
}

// TestBadSessionNamespaceRefusedAtStart: a value a package below policy
// owns (the session store's namespace) is refused at load with file:line,
// before anything opens.
func TestBadSessionNamespaceRefusedAtStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "accel.yaml")
	os.WriteFile(file, []byte("listen:\n  - address: \"127.0.0.1:0\"\npools:\n  - name: web\n    servers:\n      - address: \"127.0.0.1:9\"\n"+
		"routes:\n  - pool: web\ntls_sessions:\n  namespace: \"two words\"\nadmin:\n  listen: \"off\"\n"), 0o600)
	var stderr bytes.Buffer
	if code := run([]string{"-config", file}, &stderr); code == 0 {
		t.Fatal("started with a bad namespace")
	}
	if msg := stderr.String(); !strings.Contains(msg, "accel.yaml:10: tls_sessions.namespace: \"two words\" is not") {
		t.Errorf("message %q does not name file, line and field", msg)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no origin"},
		{[]string{"-origin", "https://127.0.0.1:9000"}, "cleartext HTTP/1.1"},
		{[]string{"-origin", "http://127.0.0.1:9000", "-tls-cert", "c.pem"}, "-tls-cert and -tls-key go together"},
		{[]string{"-origin", "http://127.0.0.1:9000", "-listen", "127.0.0.1"}, "\"127.0.0.1\" is not host:port"},
		{[]string{"-config", "x.yaml", "-origin", "http://127.0.0.1:9000"}, "-origin cannot be combined with -config"},
	} {
		var stderr bytes.Buffer
		if code := run(tc.args, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("run(%q) = %d, %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// TestBinarySignals builds the real binary and drives it as an operator
// would: serve through it, SIGHUP with a bad file (refused, still serving),
// SIGHUP with a good one (applied), SIGTERM (drains and exits 0).
func TestBinarySignals(t *testing.T) {
	bin := testproc.AccelBinary(t)
	originA := startTextOrigin(t, "from a")
	originB := startTextOrigin(t, "from b")
	dir := t.TempDir()
	file := filepath.Join(dir, "accel.yaml")
	port := freePort(t)
	config := func(origin string) string {
		return "listen:\n  - address: \"127.0.0.1:" + port + "\"\npools:\n  - name: app\n    servers:\n      - address: \"" + origin +
			"\"\nroutes:\n  - pool: app\ncache:\n  dir: " + dir + "/cache\nadmin:\n  listen: \"off\"\n"
	}
	os.WriteFile(file, []byte(config(originA)), 0o600)

	cmd := exec.Command(bin, "-config", file)
	logs := testproc.NewLog()
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, logs, testproc.Listening)
	url := "http://127.0.0.1:" + port + "/x"
	if got := getText(t, url); got != "from a" {
		t.Fatalf("got %q", got)
	}

	os.WriteFile(file, []byte(config(originB)+"bogus: true\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, logs, "reload refused")
	if !strings.Contains(logs.String(), "bogus: unknown field") {
		t.Errorf("refused reload does not name the field:\n%s", logs)
	}
	if got := getText(t, url); got != "from a" {
		t.Fatalf("after a bad reload: %q", got)
	}

	os.WriteFile(file, []byte(config(originB)), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, logs, "config reloaded")
	if got := getText(t, url); got != "from b" {
		t.Fatalf("after reload: %q", got)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20s after SIGTERM")
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	testproc.RemoveBuilt()
	os.Exit(code)
}

func startTextOrigin(t *testing.T, text string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, text)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func freePort(t *testing.T) string { return strconv.Itoa(testproc.FreePort(t)) }

// waitFor waits until the child's log has a line holding text.
func waitFor(t *testing.T, logs *testproc.Log, text string) {
	t.Helper()
	if _, err := logs.Wait(30*time.Second, nil, text); err != nil {
		t.Fatalf("%v:\n%s", err, logs)
	}
}

// TestBinaryOutOfDescriptors runs the binary under a low descriptor limit
// and opens more connections than it may hold: accel logs why accept
// fails, keeps going, and serves again once the connections are gone.
func TestBinaryOutOfDescriptors(t *testing.T) {
	bin := testproc.AccelBinary(t)
	origin := startTextOrigin(t, "still serving")
	port := freePort(t)
	file := filepath.Join(t.TempDir(), "accel.yaml")
	os.WriteFile(file, []byte("listen:\n  - address: \"127.0.0.1:"+port+"\"\npools:\n  - name: app\n    servers:\n      - address: \""+origin+
		"\"\nroutes:\n  - pool: app\ncache:\n  dir: \"off\"\nadmin:\n  listen: \"off\"\n"), 0o600)
	// ulimit -n sets the hard limit too, so accel cannot raise it away.
	cmd := exec.Command("sh", "-c", "ulimit -n 48 && exec "+bin+" -config "+file)
	logs := testproc.NewLog()
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	waitFor(t, logs, testproc.Listening)
	if !strings.Contains(logs.String(), "nofile=48") {
		t.Errorf("the descriptor limit is not logged:\n%s", logs)
	}
	var conns []net.Conn
	for i := 0; i < 80; i++ {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	waitFor(t, logs, "out of file descriptors")
	for _, c := range conns {
		c.Close()
	}
	url := "http://127.0.0.1:" + port + "/x"
	for i := 0; ; i++ {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// A 502 says accel answered but could not yet open a connection
			// to the origin: the closed clients' descriptors are freed only
			// once accel reads their EOF.
			if resp.StatusCode == http.StatusBadGateway {
				err = errors.New("502 while descriptors are still taken")
			} else if string(b) != "still serving" {
				t.Fatalf("got %d %q", resp.StatusCode, b)
			} else {
				return
			}
		}
		if i == 100 {
			t.Fatalf("accel did not serve again after the descriptors were freed: %v\n%s", err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBinarySignalsWhileStarting: a SIGHUP and a SIGUSR1 (logrotate's
// postrotate) that reach accel while it still opens its cache neither end
// it (their default action) nor get lost: once it serves, it reloads and
// reopens its logs, and it serves.
func TestBinarySignalsWhileStarting(t *testing.T) {
	bin := testproc.AccelBinary(t)
	origin := startTextOrigin(t, "served")
	dir := t.TempDir()
	port := freePort(t)
	file := filepath.Join(dir, "accel.yaml")
	config := "listen:\n  - address: \"127.0.0.1:" + port + "\"\npools:\n  - name: app\n    servers:\n      - address: \"" + origin +
		"\"\nroutes:\n  - pool: app\ncache:\n  dir: " + dir + "/cache\nadmin:\n  listen: \"off\"\n"
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	a := testproc.StartAccelUntil(t, bin, file, "file descriptor limit")
	a.Signal(syscall.SIGHUP)
	a.Signal(syscall.SIGUSR1)
	a.WaitLog(30*time.Second, testproc.Listening)
	a.WaitLog(30*time.Second, "config reloaded")
	a.WaitLog(30*time.Second, "access log reopened")
	resp, err := http.Get("http://127.0.0.1:" + port + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "served" {
		t.Errorf("answered %q", b)
	}
	a.Stop()
}
