package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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
	bin := filepath.Join(t.TempDir(), "accel")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
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
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	url := "http://127.0.0.1:" + port + "/x"
	get := func() string {
		for i := 0; i < 100; i++ {
			resp, err := http.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return string(b)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("accel did not answer; log:\n%s", logs)
		return ""
	}
	if got := get(); got != "from a" {
		t.Fatalf("got %q", got)
	}

	os.WriteFile(file, []byte(config(originB)+"bogus: true\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, logs, "reload refused")
	if !strings.Contains(logs.String(), "unknown field bogus") {
		t.Errorf("refused reload does not name the field:\n%s", logs)
	}
	if got := get(); got != "from a" {
		t.Fatalf("after a bad reload: %q", got)
	}

	os.WriteFile(file, []byte(config(originB)), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, logs, "config reloaded")
	if got := get(); got != "from b" {
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

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func waitFor(t *testing.T, logs *syncBuffer, text string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if strings.Contains(logs.String(), text) {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("log never said %q:\n%s", text, logs)
}

// syncBuffer collects the child's stderr while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
