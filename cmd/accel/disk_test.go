package main

import (
	"io"
	"math/rand/v2"
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

	"github.com/accel-proxy/accel/internal/testfs"
	"github.com/accel-proxy/accel/internal/testproc"
)

// TestBinaryFullDisk runs the real binary with its persistent tier on a
// small filesystem that another writer fills: no crash, no hang, misses
// answered whole, hits served, one ERROR line and the metric; SIGTERM
// stops it within the drain timeout; a restart on the full directory
// serves, the stored objects included.
func TestBinaryFullDisk(t *testing.T) {
	bin := testproc.AccelBinary(t)
	mnt := testfs.Mount(t, 8<<20)
	const size = 64 << 10
	origin := startBodyOrigin(t, size)
	port, adminPort := freePort(t), freePort(t)
	file := filepath.Join(t.TempDir(), "accel.yaml")
	os.WriteFile(file, []byte("listen:\n  - address: \"127.0.0.1:"+port+"\"\npools:\n  - name: app\n    servers:\n      - address: \""+origin+
		"\"\nroutes:\n  - pool: app\n    cache: {enabled: true}\ncache:\n  dir: "+mnt+"/cache\nadmin:\n  listen: \"127.0.0.1:"+adminPort+"\"\n  token: "+
		strings.Repeat("t", 32)+"\n"), 0o600)
	const drain = 3 * time.Second
	start := func() (*exec.Cmd, *syncBuffer) {
		cmd := exec.Command(bin, "-config", file, "-drain-timeout", drain.String())
		logs := &syncBuffer{}
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		waitFor(t, logs, "listening")
		return cmd, logs
	}
	base := "http://127.0.0.1:" + port
	get := func(path string, logs *syncBuffer) string {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, logs)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != string(originBody(path, size)) {
			t.Fatalf("GET %s: %d bytes (%v), want the whole %d\n%s", path, len(b), err, size, logs)
		}
		return resp.Header.Get("Cache-Status")
	}

	cmd, logs := start()
	for i := range 10 {
		get("/before/"+strconv.Itoa(i), logs)
	}
	testfs.Fill(t, mnt, 0)
	for i := range 30 {
		get("/after/"+strconv.Itoa(i), logs)
	}
	for i := range 10 {
		if cs := get("/before/"+strconv.Itoa(i), logs); !strings.Contains(cs, "hit") {
			t.Errorf("stored object not a hit on a full disk: %q", cs)
		}
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 || !strings.Contains(logs.String(), "persistent tier read-only") {
		t.Errorf("want one ERROR line saying the tier is read-only, got %d:\n%s", n, logs)
	}
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+adminPort+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("t", 32))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `accel_cache_disk_state{state="read-only"} 1`) {
		t.Errorf("metrics do not show the read-only tier:\n%s", grepLines(string(metrics), "accel_cache_disk"))
	}

	cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(drain + 2*time.Second):
		t.Fatalf("still running %v after SIGTERM (drain timeout %v)\n%s", drain+2*time.Second, drain, logs)
	}

	// A restart on the full directory serves: the stored objects from
	// the read-only disk, the rest from the origin.
	_, logs = start()
	for i := range 10 {
		if cs := get("/before/"+strconv.Itoa(i), logs); !strings.Contains(cs, "hit") {
			t.Errorf("after a restart on the full disk, stored object not a hit: %q", cs)
		}
	}
	get("/new", logs)
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("restart on a full disk: want one ERROR line, got %d:\n%s", n, logs)
	}
}

// startBodyOrigin serves, for any path, a cacheable body of size bytes
// that differs per path and does not compress.
func startBodyOrigin(t *testing.T, size int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(originBody(r.URL.Path, size))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func originBody(path string, n int) []byte {
	var seed [32]byte
	copy(seed[:], path)
	b := make([]byte, n)
	rand.NewChaCha8(seed).Read(b)
	return b
}

func grepLines(s, part string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, part) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
