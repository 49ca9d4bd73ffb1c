package accel

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accel-proxy/accel/policy"
)

// TestReload swaps routes on reload, and a bad file is refused with a
// message naming it while the old config keeps serving, whether policy or
// the package owning the value refuses it.
func TestReload(t *testing.T) {
	a, b := startOrigin(t), startOrigin(t)
	b.handle = func(*http.Request, []byte) (int, http.Header, []byte) { return 200, http.Header{}, []byte("from b") }
	s := startAccel(t, baseConfig, a.addr())
	file := filepath.Join(t.TempDir(), "accel.yaml")
	s.SetConfigSource(func() (*policy.Config, error) { return policy.Load(file) })
	get := func() string {
		resp, err := client(t, "h1").Get(baseURL(s, "h1") + "/r")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if got := get(); got != "ok" {
		t.Fatalf("before reload: %q", got)
	}

	render := strings.NewReplacer("ORIGIN", b.addr(), "DATADIR", t.TempDir()).Replace
	bad := render(baseConfig) + "bogus: 1\n"
	os.WriteFile(file, []byte(bad), 0o600)
	err := s.Reload()
	if err == nil || !strings.Contains(err.Error(), "accel.yaml:") || !strings.Contains(err.Error(), "bogus: unknown field") {
		t.Fatalf("bad reload error = %v", err)
	}
	if got := get(); got != "ok" {
		t.Fatalf("after refused reload: %q", got)
	}

	// A value a package below policy refuses (upstream: a server listed
	// twice) is refused too, at its line, and the old config serves on.
	twice := strings.Replace(render(baseConfig), "      - address: \""+b.addr()+"\"\n", "      - address: \""+b.addr()+"\"\n      - address: \""+b.addr()+"\"\n", 1)
	os.WriteFile(file, []byte(twice), 0o600)
	err = s.Reload()
	if err == nil || !strings.Contains(err.Error(), "accel.yaml:10: pools[0].servers[1].address: \""+b.addr()+"\" is listed twice") {
		t.Fatalf("reload with a server listed twice: %v", err)
	}
	if got := get(); got != "ok" {
		t.Fatalf("after refused reload: %q", got)
	}

	good := render(baseConfig)
	os.WriteFile(file, []byte(good), 0o600)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "from b" {
		t.Fatalf("after reload: %q", got)
	}
}
