package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accel-proxy/accel/internal/testproc"
)

// TestSoak runs the soak mix for a minute against the real binary in front
// of a real loopback origin: HTTP/1.1 and h2c hits and misses, passes,
// purges and reloads through the admin API. Every response must be whole
// and right (0 errors). From start to end RSS may grow by at most 128 MiB:
// the Go memory limit accel derives from its 32 MiB memory tier (104 MiB:
// the heap fills the tier and the index of what the 256 MiB disk holds,
// then stays flat; a 4-minute run ended where a 1-minute one did) plus
// 24 MiB for the runtime and pebble. Goroutines may grow by 25 and open
// descriptors by 24 (pebble's files, origin connections) and the cache's
// body segments (at most 32, each a thirty-second of the disk bound). It
// prints the process's numbers at start and end.
func TestSoak(t *testing.T) {
	bin := testproc.AccelBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := &http.Server{Handler: soakOrigin()}
	go origin.Serve(ln)
	defer origin.Close()
	port, adminPort := freePort(t), freePort(t)
	token := strings.Repeat("s", 32)
	dir := t.TempDir()
	file := filepath.Join(dir, "accel.yaml")
	os.WriteFile(file, []byte("listen:\n  - address: \"127.0.0.1:"+port+"\"\npools:\n  - name: app\n    servers:\n      - address: \""+
		ln.Addr().String()+"\"\n    idle_timeout: 2s\nroutes:\n  - pool: app\n    cache: {enabled: true}\ncache:\n  memory: 32MiB\n  dir: "+dir+
		"/cache\n  disk: 256MiB\nadmin:\n  listen: \"127.0.0.1:"+adminPort+"\"\n  token: "+token+"\n"), 0o600)
	cmd := exec.Command(bin, "-config", file)
	logs := testproc.NewLog()
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	waitFor(t, logs, "admin API")

	out := testproc.NewLog()
	err = soak(context.Background(), soakConfig{
		target: "http://127.0.0.1:" + port, admin: "http://127.0.0.1:" + adminPort, token: token,
		duration: time.Minute, workers: 4, purgeEvery: 250 * time.Millisecond, reloadEvery: 2 * time.Second,
		maxRSS: 128 << 20, maxGoroutines: 25, maxFDs: 24 + 32, out: out,
	})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatalf("%v\naccel's errors:\n%s", err, grepLines(logs.String(), "level=ERROR"))
	}
	for _, part := range []string{"start: rss", "end:   rss", " 0 errors"} {
		if !strings.Contains(out.String(), part) {
			t.Errorf("soak report lacks %q", part)
		}
	}
}
