package accel

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/accel-proxy/accel/accesslog"
	"github.com/accel-proxy/accel/admin"
	"github.com/accel-proxy/accel/cache"
	"github.com/accel-proxy/accel/fleet"
	"github.com/accel-proxy/accel/h1"
	"github.com/accel-proxy/accel/h2"
	"github.com/accel-proxy/accel/internal/cfgerr"
	"github.com/accel-proxy/accel/policy"
	"github.com/accel-proxy/accel/tlsstore"
	"github.com/accel-proxy/accel/upstream"
)

// wiringBase is the smallest config; each case adds a section to it.
const wiringBase = `pools:
  - name: app
    servers:
      - address: "127.0.0.1:9000"
routes:
  - pool: app
`

// TestWiringErrors: a bad value of each package's section is refused by
// the package that owns the rule, and the error puts the package's own
// message (the one its Validate gives for the same value) at the value's
// file:line and YAML path. The line is the one marked "# here".
func TestWiringErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, path string
		// own is the owning package's verdict on the same value.
		own func() error
	}{
		{"h1", "limits:\n  max_head_bytes: 4KiB\n  max_target_bytes: 8KiB # here\n", "limits.max_target_bytes",
			func() error { c := h1.Config{MaxHeadBytes: 4 << 10, MaxTargetBytes: 8 << 10}; return c.Validate() }},
		{"h2 frame size", "    http2:\n      max_frame_size: 1KiB # here\n", "listen[0].http2.max_frame_size",
			func() error { c := h2.Config{MaxFrameSize: 1 << 10}; return c.Validate() }},
		{"h2 resets", "    http2:\n      max_resets: -1 # here\n", "listen[0].http2.max_resets",
			func() error { c := h2.Config{MaxResets: -1}; return c.Validate() }},
		{"upstream server twice", "  - name: two\n    servers:\n      - address: \"127.0.0.1:9001\"\n      - address: \"127.0.0.1:9001\" # here\n", "pools[1].servers[1].address",
			func() error {
				c := upstream.Config{Servers: []upstream.ServerConfig{{Addr: "127.0.0.1:9001"}, {Addr: "127.0.0.1:9001"}}}
				return c.Validate()
			}},
		{"upstream address", "  - name: two\n    servers:\n      - address: localhost # here\n", "pools[1].servers[0].address",
			func() error {
				c := upstream.Config{Servers: []upstream.ServerConfig{{Addr: "localhost"}}}
				return c.Validate()
			}},
		{"upstream balance", "  - name: two\n    balance: random # here\n    servers: [{address: \"127.0.0.1:9001\"}]\n", "pools[1].balance",
			func() error {
				c := upstream.Config{Balance: "random", Servers: []upstream.ServerConfig{{Addr: "127.0.0.1:9001"}}}
				return c.Validate()
			}},
		{"upstream queue", "  - name: two\n    queue_size: -1 # here\n    servers: [{address: \"127.0.0.1:9001\"}]\n", "pools[1].queue_size",
			func() error {
				c := upstream.Config{QueueSize: -1, Servers: []upstream.ServerConfig{{Addr: "127.0.0.1:9001"}}}
				return c.Validate()
			}},
		{"upstream health", "  - name: two\n    servers: [{address: \"127.0.0.1:9001\"}]\n    health:\n      path: healthz # here\n", "pools[1].health.path",
			func() error {
				c := upstream.Config{HealthPath: "healthz", Servers: []upstream.ServerConfig{{Addr: "127.0.0.1:9001"}}}
				return c.Validate()
			}},
		{"upstream buffer", "  - name: two\n    servers: [{address: \"127.0.0.1:9001\"}]\n    buffer:\n      memory: 1GiB # here\n", "pools[1].buffer.memory",
			func() error {
				c := upstream.Config{BufferMemory: 1 << 30, Servers: []upstream.ServerConfig{{Addr: "127.0.0.1:9001"}}}
				return c.Validate()
			}},
		{"tlsstore mode", "tls_sessions:\n  mode: sticky # here\n", "tls_sessions.mode",
			func() error { c := tlsstore.Config{Mode: "sticky"}; return c.Validate() }},
		{"tlsstore addrs", "tls_sessions:\n  backend: redis\n  addrs:\n    - \"10.0.0.1:6379\"\n    - \"10.0.0.1:6379\" # here\n", "tls_sessions.addrs[1]",
			func() error {
				c := tlsstore.Config{Backend: "redis", Addrs: []string{"10.0.0.1:6379", "10.0.0.1:6379"}}
				return c.Validate()
			}},
		{"admin", "admin:\n  listen: nohost # here\n", "admin.listen",
			func() error { c := admin.Config{Listen: "nohost"}; return c.Validate() }},
		{"accesslog format", "log:\n  access_format: apache # here\n", "log.access_format",
			func() error { c := accesslog.Config{Format: "apache"}; return c.Validate() }},
		{"accesslog template", "log:\n  access_format: template\n  access_template: \"$remote_adr\" # here\n", "log.access_template",
			func() error { c := accesslog.Config{Format: "template", Template: "$remote_adr"}; return c.Validate() }},
		{"fleet", "fleet:\n  redis: \"127.0.0.1:6379\"\n  stream_max_len: -1 # here\n", "fleet.stream_max_len",
			func() error { c := fleet.Config{Addr: "127.0.0.1:6379", MaxLen: -1}; return c.Validate() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var doc string
			switch {
			case strings.HasPrefix(tc.yaml, "    http2:"):
				doc = "listen:\n  - address: \"127.0.0.1:8080\"\n" + tc.yaml + wiringBase
			case strings.HasPrefix(tc.yaml, "  - name:"):
				doc = "listen:\n  - address: \"127.0.0.1:8080\"\n" + wiringBase[:strings.Index(wiringBase, "routes:")] + tc.yaml + "routes:\n  - pool: app\n"
			default:
				doc = "listen:\n  - address: \"127.0.0.1:8080\"\n" + wiringBase + tc.yaml
			}
			line := 0
			for i, l := range strings.Split(doc, "\n") {
				if strings.HasSuffix(l, "# here") {
					line = i + 1
				}
			}
			cfg, err := policy.Parse([]byte(doc), "accel.yaml")
			if err != nil {
				t.Fatalf("policy refused what its owner should: %v\n%s", err, doc)
			}
			var own *cfgerr.Error
			if !errors.As(tc.own(), &own) {
				t.Fatalf("the package accepts the value, or names no field: %v", tc.own())
			}
			want := fmt.Sprintf("accel.yaml:%d: %s: %s", line, tc.path, own.Msg)
			err = Check(cfg)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Check = %v\nwant %q", err, want)
			}
			// A running server refuses a reload to it the same way.
			if _, err := wire(cfg); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("wire = %v\nwant %q", err, want)
			}
		})
	}
}

// TestWiringAddsNoDefaults: with every key unset, each package receives
// its zero Config (but for what the file decides: the data directories)
// and fills its own defaults, so a default is written once, in the
// package that uses it.
func TestWiringAddsNoDefaults(t *testing.T) {
	cfg, err := policy.Parse([]byte("listen:\n  - address: \"127.0.0.1:8080\"\n"+wiringBase+"admin: {listen: \"127.0.0.1:9090\"}\nfleet: {redis: \"127.0.0.1:6379\"}\n"), "accel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := wire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var h1c h1.Config
	h1c.Validate()
	var h2c h2.Config
	h2c.Validate()
	pool := upstream.Config{Name: "app", Servers: []upstream.ServerConfig{{Addr: "127.0.0.1:9000"}}}
	pool.Validate()
	cc := cache.Config{Dir: dirOrOff(cfg.Cache.Dir)}
	cc.EnsureDefaults()
	sc := tlsstore.Config{Dir: dirOrOff(cfg.TLSSessions.Dir)}
	sc.Validate()
	ac := admin.Config{Listen: "127.0.0.1:9090"}
	ac.Validate()
	fc := fleet.Config{Addr: "127.0.0.1:6379", StateFile: set.fleet.StateFile}
	fc.Validate()
	var lc accesslog.Config
	lc.Validate()
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"h1", set.h1, h1c},
		{"h2", set.h2[0], h2c},
		{"upstream", set.pools[0], pool},
		{"cache", set.cache, cc},
		{"tlsstore", set.sessions, sc},
		{"admin", *set.admin, ac},
		{"fleet", *set.fleet, fc},
		{"accesslog", set.access, lc},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: wired %+v\nthe package's own defaults %+v", c.name, c.got, c.want)
		}
	}
	// The data directories are the file's: beside it, as policy says.
	if set.cache.Dir != "accel-data/cache" || set.sessions.Dir != "accel-data/sessions" {
		t.Errorf("data directories %q, %q", set.cache.Dir, set.sessions.Dir)
	}
	if set.peerTimeout != defaultPeerTimeout {
		t.Errorf("peer timeout %v", set.peerTimeout)
	}
}
