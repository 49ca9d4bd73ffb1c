package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accel-proxy/accel/internal/testproc"
)

// TestPurgeWithConfig runs the real binary and purges as an operator
// would after reading its access log: the address and token come from the
// config file; the host as logged (with the port) purges the object; the
// host without its port matches nothing and says so with exit status 3.
func TestPurgeWithConfig(t *testing.T) {
	bin := testproc.AccelBinary(t)
	origin := startCacheableOrigin(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "accel.yaml")
	port, adminPort := freePort(t), freePort(t)
	os.WriteFile(file, []byte("listen:\n  - address: \"127.0.0.1:"+port+"\"\npools:\n  - name: app\n    servers:\n      - address: \""+origin+
		"\"\nroutes:\n  - pool: app\n    cache: {enabled: true}\nadmin:\n  listen: \"127.0.0.1:"+adminPort+"\"\n  token: \""+purgeTestToken+
		"\"\nlog:\n  access_file: access.log\n  access_format: json\n"), 0o600)
	cmd := exec.Command(bin, "-config", file)
	logs := testproc.NewLog()
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, logs, testproc.Listening)
	url := "http://127.0.0.1:" + port + "/p1"
	cacheStatus := func() string {
		getText(t, url)
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Cache-Status")
	}
	if cs := cacheStatus(); !strings.Contains(cs, "; hit") {
		t.Fatalf("second request not a hit: %q", cs)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "access.log"))
	var line struct{ Host string }
	json.Unmarshal([]byte(strings.SplitN(string(data), "\n", 2)[0]), &line)
	if line.Host != "127.0.0.1:"+port {
		t.Fatalf("access log host %q, want it as keyed, 127.0.0.1:%s", line.Host, port)
	}

	code, out, errs := purge("-config", file, "url", "http://127.0.0.1/p1")
	if code != 3 || strings.TrimSpace(out) != "0" || !strings.Contains(errs, "nothing matched") {
		t.Errorf("purge without the port: exit %d, %q, %q; want 3, 0 and why", code, out, errs)
	}
	code, out, errs = purge("-config", file, "url", "http://"+line.Host+"/p1")
	if code != 0 || strings.TrimSpace(out) != "1" {
		t.Fatalf("purge of the logged host: exit %d, %q, %q", code, out, errs)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=uri-miss") {
		t.Errorf("after the purge: %q, want a miss", cs)
	}
}

func TestAdminURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9090": "http://127.0.0.1:9090",
		":9090":          "http://127.0.0.1:9090",
		"0.0.0.0:9090":   "http://127.0.0.1:9090",
		"[::]:9090":      "http://[::1]:9090",
	} {
		if got := adminURL(in); got != want {
			t.Errorf("adminURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// startCacheableOrigin answers every path with a cacheable body.
func startCacheableOrigin(t *testing.T) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		w.Write([]byte("cacheable " + r.URL.Path))
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}
