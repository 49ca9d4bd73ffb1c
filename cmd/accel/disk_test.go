package main

import (
	"fmt"
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
	start := func() (*exec.Cmd, *testproc.Log) {
		cmd := exec.Command(bin, "-config", file, "-drain-timeout", drain.String())
		logs := testproc.NewLog()
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		waitFor(t, logs, testproc.Listening)
		return cmd, logs
	}
	base := "http://127.0.0.1:" + port
	get := func(path string, logs *testproc.Log) string {
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

// TestBinaryKilledKeepsDisk stores objects through the real binary, kills
// it (SIGKILL) while more stores are in flight, and starts it again on the
// same directory: every response is whole, the objects stored well before
// the kill are hits from the disk (their bodies in the segment files, their
// records in pebble), nothing read back fails its checksum, and new
// objects are stored and served after the restart.
func TestBinaryKilledKeepsDisk(t *testing.T) {
	bin := testproc.AccelBinary(t)
	const size = 4 << 10
	origin := startBodyOrigin(t, size)
	port, adminPort := freePort(t), freePort(t)
	token := strings.Repeat("k", 32)
	dir := t.TempDir()
	file := filepath.Join(dir, "accel.yaml")
	os.WriteFile(file, []byte("listen:\n  - address: \"127.0.0.1:"+port+"\"\npools:\n  - name: app\n    servers:\n      - address: \""+origin+
		"\"\nroutes:\n  - pool: app\n    cache: {enabled: true}\ncache:\n  dir: "+dir+"/cache\nadmin:\n  listen: \"127.0.0.1:"+adminPort+
		"\"\n  token: "+token+"\n"), 0o600)
	base := "http://127.0.0.1:" + port
	// get reports the Cache-Status of a whole response, or an error.
	get := func(path string) (string, error) {
		resp, err := http.Get(base + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && string(b) != string(originBody(path, size)) {
			err = fmt.Errorf("%d bytes, not the body", len(b))
		}
		return resp.Header.Get("Cache-Status"), err
	}

	a := testproc.StartAccel(t, bin, file)
	a.WaitLog(30*time.Second, "admin API")
	const stored = 1000
	for i := range stored {
		if _, err := get("/o/" + strconv.Itoa(i)); err != nil {
			t.Fatalf("GET /o/%d: %v\n%s", i, err, a.Log)
		}
	}
	// More stores in flight when the process dies.
	inflight := make(chan struct{})
	go func() {
		defer close(inflight)
		for i := 0; ; i++ {
			if _, err := get("/late/" + strconv.Itoa(i)); err != nil {
				return
			}
		}
	}()
	for i := range 50 {
		get("/o/" + strconv.Itoa(i)) // hits meanwhile
	}
	a.Kill()
	<-inflight

	a.Start()
	a.WaitLog(30*time.Second, "admin API")
	hits := 0
	for i := range stored {
		cs, err := get("/o/" + strconv.Itoa(i))
		if err != nil {
			t.Fatalf("after the kill, GET /o/%d: %v\n%s", i, err, a.Log)
		}
		if strings.Contains(cs, "hit") {
			hits++
		}
	}
	// What pebble had not handed to its log (its last block, some 100
	// records) is lost with the process; the bodies written before are
	// not.
	if hits < stored/2 {
		t.Errorf("%d of %d objects stored before the kill are hits after it", hits, stored)
	}
	if cs, err := get("/after/new"); err != nil || strings.Contains(cs, "hit") {
		t.Fatalf("new object: %q %v", cs, err)
	}
	if cs, err := get("/after/new"); err != nil || !strings.Contains(cs, "hit") {
		t.Errorf("object stored after the restart: %q %v", cs, err)
	}
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+adminPort+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "accel_cache_disk_corrupt_total 0") {
		t.Errorf("bodies failed their checksum after the kill:\n%s", grepLines(string(metrics), "accel_cache_disk"))
	}
	if n := strings.Count(a.Log.String(), "level=ERROR"); n != 0 {
		t.Errorf("restart after a kill logged errors:\n%s", grepLines(a.Log.String(), "level=ERROR"))
	}
	t.Logf("%d of %d objects hits after the kill", hits, stored)
}
