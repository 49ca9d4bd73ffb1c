package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodConfig = `
listen:
  - address: "127.0.0.1:8080"
  - address: "127.0.0.1:8443"
    tls:
      self_signed: true
pools:
  - name: app
    servers:
      - address: "127.0.0.1:9000"
        weight: 5
      - address: "127.0.0.1:9001"
    queue_timeout: 200ms
routes:
  - pool: app
  - host: "*.example.com"
    path: /static/
    pool: app
    cache:
      enabled: true
      default_ttl: 10m
      max_object_size: 10MiB
  - host: api.example.com
    pool: app
    purge_from: ["127.0.0.0/8"]
`

func TestParseGood(t *testing.T) {
	cfg, err := Parse([]byte(goodConfig), "accel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Unset keys stay zero: their defaults are the packages' own,
	// filled by accel's wiring (accel/wiring_test.go).
	if got := cfg.Pools[0].Servers[1].Weight; got != 0 {
		t.Errorf("unset weight = %d, want 0", got)
	}
	if got := cfg.Pools[0].QueueTimeout.D(); got != 200*time.Millisecond {
		t.Errorf("queue_timeout = %v", got)
	}
	if got := cfg.Routes[1].Cache.MaxObjectSize; got != 10<<20 {
		t.Errorf("max_object_size = %d", got)
	}
	if got := cfg.Routes[0].Path; got != "/" {
		t.Errorf("default route path = %q", got)
	}
}

func TestMatch(t *testing.T) {
	cfg, err := Parse([]byte(goodConfig), "accel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host, path string
		want       int
	}{
		{"other.org", "/static/a.css", 0},
		{"www.example.com", "/static/a.css", 1},
		{"www.example.com", "/index.html", 0},
		{"example.com", "/static/a.css", 0}, // the wildcard needs a subdomain
		{"api.example.com", "/static/a.css", 2},
	} {
		r := cfg.Match(tc.host, tc.path)
		if r != &cfg.Routes[tc.want] {
			t.Errorf("Match(%q, %q) = %+v, want route %d", tc.host, tc.path, r, tc.want)
		}
	}
}

// TestParseErrors reads the bad configs in testdata/bad: each file's first
// line is a comment holding the text the error must contain (file, line and
// field).
func TestParseErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad configs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want := strings.TrimSpace(strings.TrimPrefix(first, "#"))
			_, err = Load(f)
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", want)
			}
			for _, w := range strings.Split(want, " && ") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"512": 512, "64KiB": 64 << 10, "1mb": 1 << 20, "2 GiB": 2 << 30} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "12XB", "1.5MiB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
}

// A checked route's cache rules carry their defaults filled, made once:
// each request takes them without a copy. Rules that were never checked
// get a filled copy.
func TestCacheRulesFull(t *testing.T) {
	cfg, err := Parse([]byte(goodConfig), "accel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := &cfg.Routes[1].Cache
	full := r.Full()
	if full.MaxObjectSize != 10<<20 || full.Coalesce.MaxWaiters != DefaultMaxWaiters ||
		full.Coalesce.WaitTimeout != DefaultWaitTimeout || full.Coalesce.HitForPass != DefaultHitForPass {
		t.Errorf("full rules %+v", *full)
	}
	if n := testing.AllocsPerRun(100, func() { full = r.Full() }); n != 0 {
		t.Errorf("Full allocates %v times for checked rules", n)
	}
	var raw CacheRules
	if got := raw.Full(); got.MaxObjectSize != DefaultMaxObjectSize || got.Coalesce.HitForPass != DefaultHitForPass {
		t.Errorf("unchecked rules: %+v", *got)
	}
}
