package accel

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const compressConfig = `
listen:
  - address: "127.0.0.1:0"
    tls:
      self_signed: true
pools:
  - name: app
    servers:
      - address: "ORIGIN"
routes:
  - pool: app
    cache: {enabled: true, compress: {enabled: true}}
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "off"
`

// Compressed answers decoded by real clients equal the origin's bytes:
// curl --compressed over HTTP/1.1 and HTTP/2, Go's client, and Debian's
// brotli -d and zstd -d; the origin is asked once, without
// Accept-Encoding, for every coding.
func TestCompressE2E(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is needed: apt-get install curl")
	}
	body := []byte(strings.Repeat("<li>accel stores each coding once</li>\n", 500))
	var mu sync.Mutex
	var sawAE []string
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sawAE = append(sawAE, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write(body)
	})
	s := startAccel(t, compressConfig, o.addr)
	addr := s.Addrs()[0].String()
	url := "http://" + addr + "/doc"
	run := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(curl, append([]string{"-sS", "--max-time", "10"}, args...)...).Output()
		if err != nil {
			t.Fatalf("curl %q: %v", args, err)
		}
		return out
	}
	run(url) // the miss stores the identity body
	for _, proto := range []string{"--http1.1", "--http2-prior-knowledge"} {
		if got := run(proto, "--compressed", url); !bytes.Equal(got, body) {
			t.Errorf("curl %s --compressed: %d bytes, not the origin's", proto, len(got))
		}
	}
	dir := t.TempDir()
	for _, tc := range []struct{ enc, tool string }{{"br", "brotli"}, {"zstd", "zstd"}, {"gzip", "gzip"}} {
		tool, err := exec.LookPath(tc.tool)
		if err != nil {
			t.Fatalf("%s is needed: apt-get install %s", tc.tool, tc.tool)
		}
		for _, proto := range []string{"--http1.1", "--http2-prior-knowledge"} {
			file := filepath.Join(dir, tc.enc+proto)
			head := run(proto, "-H", "Accept-Encoding: "+tc.enc, "-D", "-", "-o", file, url)
			if !strings.Contains(strings.ToLower(string(head)), "content-encoding: "+tc.enc) {
				t.Fatalf("%s %s: head\n%s", tc.enc, proto, head)
			}
			out, err := exec.Command(tool, "-d", "-c", file).Output()
			if err != nil || !bytes.Equal(out, body) {
				t.Errorf("%s -d of the %s answer (%s): %v, %d bytes", tc.tool, tc.enc, proto, err, len(out))
			}
		}
	}
	// Go's client asks for gzip itself and decodes it.
	for _, mode := range []string{"h1", "h2c"} {
		resp, err := client(t, mode).Get(baseURL(s, mode) + "/doc")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !resp.Uncompressed || !bytes.Equal(got, body) {
			t.Errorf("Go %s: uncompressed %v, %d bytes", mode, resp.Uncompressed, len(got))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := o.requests.Load(); n != 1 || sawAE[0] != "" {
		t.Errorf("origin asked %d times, Accept-Encoding %q", n, sawAE)
	}
}
