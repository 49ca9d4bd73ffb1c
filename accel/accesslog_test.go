package accel

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accel-proxy/accel/policy"
)

// combinedRE is Logstash's COMBINEDAPACHELOG grok pattern written as a
// regular expression: what log pipelines parse nginx's and Apache's
// combined format with (the request may be "-", as for a refused one).
var combinedRE = regexp.MustCompile(`^(\S+) (\S+) (\S+) \[(\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "(?:(\S+) (\S+)(?: HTTP/(\d+\.\d+))?|([^"]*))" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"$`)

func accessConfig(format, extra string) string {
	return `
listen:
  - address: "127.0.0.1:0"
pools:
  - name: app
    servers:
      - address: "ORIGIN"
routes:
  - pool: app
    cache: {enabled: true}
  - path: /api/
    pool: app
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "off"
log:
  access_file: DATADIR/access.log
  access_format: ` + format + "\n" + extra
}

func readLines(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// accessTraffic sends a miss, a hit with user agent and referer, a
// request with X-Forwarded-For and X-Request-Id to /api/, and one the
// parser refuses.
func accessTraffic(t *testing.T, s *Server) {
	addr := s.Addrs()[0].String()
	for _, req := range []string{
		"GET /a?x=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
		"GET /a?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8 \"quoted\"\r\nReferer: http://ref.example/\r\nConnection: close\r\n\r\n",
		"GET /api/v HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 192.0.2.7\r\nX-Request-Id: abc-123\r\nConnection: close\r\n\r\n",
	} {
		if ans := rawExchange(t, addr, req); !strings.HasPrefix(ans, "HTTP/1.1 200") {
			t.Fatalf("answer %q", ans)
		}
	}
	if ans := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"); !strings.HasPrefix(ans, "HTTP/1.1 400") {
		t.Fatalf("duplicate Host answered %q", ans)
	}
}

// TestAccessLogCombined: every line, the refused request's too, parses
// with the standard combined-log pattern, with the fields in place.
func TestAccessLogCombined(t *testing.T) {
	o := startCountingOrigin(t)
	dir := t.TempDir()
	s := startAccelDir(t, accessConfig("combined", ""), o.addr(), dir)
	accessTraffic(t, s)
	lines := readLines(t, filepath.Join(dir, "access.log"))
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	var m [][]string
	for _, l := range lines {
		sub := combinedRE.FindStringSubmatch(l)
		if sub == nil {
			t.Fatalf("line does not parse as combined: %q", l)
		}
		m = append(m, sub)
	}
	if m[0][1] != "127.0.0.1" || m[0][5] != "GET" || m[0][6] != "/a?x=1" || m[0][7] != "1.1" || m[0][9] != "200" || m[0][12] != "-" {
		t.Errorf("miss line fields: %q", m[0][1:])
	}
	if m[1][12] != `curl/8 \x22quoted\x22` || m[1][11] != "http://ref.example/" {
		t.Errorf("user agent %q, referer %q", m[1][12], m[1][11])
	}
	if m[3][9] != "400" || m[3][8] != "-" {
		t.Errorf("refused line: %q", lines[3])
	}
}

// TestAccessLogJSON: one JSON object a line, durations in seconds,
// request id passed through (and sent to the origin) or generated, route,
// cache status, upstream time, and the refusal's reason.
func TestAccessLogJSON(t *testing.T) {
	o := startCountingOrigin(t)
	dir := t.TempDir()
	s := startAccelDir(t, accessConfig("json", ""), o.addr(), dir)
	accessTraffic(t, s)
	lines := readLines(t, filepath.Join(dir, "access.log"))
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	var recs []map[string]any
	for _, l := range lines {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	miss, hit, api, refused := recs[0], recs[1], recs[2], recs[3]
	if d, ok := miss["duration"].(float64); !ok || d <= 0 || d > 10 {
		t.Errorf("duration %v is not seconds", miss["duration"])
	}
	if u, ok := miss["upstream_time"].(float64); !ok || u <= 0 || u > miss["duration"].(float64) {
		t.Errorf("miss upstream_time %v (duration %v)", miss["upstream_time"], miss["duration"])
	}
	if hit["upstream_time"] != nil || hit["cache"] != "hit" || miss["cache"] != "miss" {
		t.Errorf("hit: cache %v upstream_time %v; miss cache %v", hit["cache"], hit["upstream_time"], miss["cache"])
	}
	if hit["user_agent"] != `curl/8 "quoted"` || hit["referer"] != "http://ref.example/" {
		t.Errorf("hit user_agent %v referer %v", hit["user_agent"], hit["referer"])
	}
	if api["route"] != "/api/" || miss["route"] != "/" || api["xff"] != "192.0.2.7" || api["request_id"] != "abc-123" {
		t.Errorf("api: route %v xff %v request_id %v; miss route %v", api["route"], api["xff"], api["request_id"], miss["route"])
	}
	id, _ := miss["request_id"].(string)
	if len(id) != 32 || id == hit["request_id"] {
		t.Errorf("generated ids %q and %v: want 32 hex characters, different per request", id, hit["request_id"])
	}
	heads, _ := o.received()
	if len(heads) != 2 || !strings.Contains(heads[0], "X-Request-Id: "+id+"\r\n") || !strings.Contains(heads[1], "X-Request-Id: abc-123\r\n") {
		t.Errorf("the origin did not get the logged ids (%s, abc-123):\n%q", id, heads)
	}
	if refused["refused"] != "dup_host" || refused["status"] != float64(400) {
		t.Errorf("refused line: %v", refused)
	}
}

func TestAccessLogTemplate(t *testing.T) {
	o := startCountingOrigin(t)
	dir := t.TempDir()
	s := startAccelDir(t, accessConfig("template", `  access_template: '$remote_addr "$request" $status $cache_status route=$route rid=$request_id ut=$upstream_response_time $refused'`+"\n"), o.addr(), dir)
	accessTraffic(t, s)
	lines := readLines(t, filepath.Join(dir, "access.log"))
	want := []string{
		`127.0.0.1 "GET /a?x=1 HTTP/1.1" 200 miss route=/ rid=`,
		`127.0.0.1 "GET /a?x=1 HTTP/1.1" 200 hit route=/ rid=`,
		`127.0.0.1 "GET /api/v HTTP/1.1" 200 bypass route=/api/ rid=abc-123 ut=0.`,
		`127.0.0.1 "-" 400 - route=- rid=- ut=- dup_host`,
	}
	if len(lines) != len(want) {
		t.Fatalf("lines:\n%s", strings.Join(lines, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want it to start %q", i, lines[i], w)
		}
	}
	if !strings.HasSuffix(lines[1], "ut=- -") {
		t.Errorf("a hit asked no origin: %q", lines[1])
	}
}

// TestAccessLogUnknownVariable: a template naming an unknown variable is
// refused with the file, line and path.
func TestAccessLogUnknownVariable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "accel.yaml")
	os.WriteFile(file, []byte(strings.NewReplacer("DATADIR", dir, "ORIGIN", "127.0.0.1:9").Replace(accessConfig("template", "  access_template: '$remote_adr'\n"))), 0o600)
	cfg, err := policy.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "accel.yaml:22: log.access_template: unknown variable $remote_adr") {
		t.Fatalf("err = %v", err)
	}
	if err := Check(cfg); err == nil || !strings.Contains(err.Error(), "unknown variable $remote_adr") {
		t.Errorf("Check: %v", err)
	}
}

// TestAccessLogH2Refused: streams the HTTP/2 front turns away before the
// pipeline are logged with their reason, as the HTTP/1 front's are: one
// reset for a malformed head (no :path), one answered 400 for a :path
// with a space.
func TestAccessLogH2Refused(t *testing.T) {
	o := startCountingOrigin(t)
	dir := t.TempDir()
	s := startAccelDir(t, accessConfig("json", ""), o.addr(), dir)
	h := dialH2(t, s.Addrs()[0].String())
	h.request(1, ":method", "GET", ":scheme", "http", ":authority", "a.example")
	h.expectRefused(1)
	h.request(3, ":method", "GET", ":scheme", "http", ":authority", "a.example", ":path", "/a b")
	h.expectRefused(3)
	lines := readLines(t, filepath.Join(dir, "access.log"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, want := range []struct {
		status  float64
		refused string
	}{{400, "malformed_request"}, {400, "bad_target"}} {
		var r map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatal(err)
		}
		if r["proto"] != "HTTP/2.0" || r["status"] != want.status || r["refused"] != want.refused || r["client"] != "127.0.0.1" {
			t.Errorf("line %d: %v, want proto HTTP/2.0, status %v, refused %s", i, r, want.status, want.refused)
		}
	}
	if heads, _ := o.received(); len(heads) != 0 {
		t.Errorf("the origin got %d requests", len(heads))
	}
}

// TestAccessLogReloadSwitchesFile: a reload that moves the access log to
// another file loses no line. A request in flight across the reload logs
// to the file of the config it ran under, which stays open until then;
// requests after the reload log to the new file; and under a stream of
// requests racing reloads back and forth, every request has its line in
// one of the two files.
func TestAccessLogReloadSwitchesFile(t *testing.T) {
	o := startOrigin(t)
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	o.handle = func(r *http.Request, _ []byte) (int, http.Header, []byte) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-gate
		}
		return 200, http.Header{"Cache-Control": {"no-store"}}, []byte("ok")
	}
	dir := t.TempDir()
	logA, logB := filepath.Join(dir, "access.log"), filepath.Join(dir, "other.log")
	s := startAccelDir(t, accessConfig("combined", ""), o.addr(), dir)
	file := filepath.Join(dir, "accel.yaml")
	s.SetConfigSource(func() (*policy.Config, error) { return policy.Load(file) })
	yamlA, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	yamlB := []byte(strings.Replace(string(yamlA), logA, logB, 1))
	reloadTo := func(y []byte) {
		t.Helper()
		os.WriteFile(file, y, 0o600)
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	url := "http://" + s.Addrs()[0].String()
	get := func(path string) error {
		resp, err := http.Get(url + path)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}

	slow := make(chan error, 1)
	go func() { slow <- get("/slow") }()
	<-entered
	reloadTo(yamlB)
	if err := get("/after"); err != nil {
		t.Fatal(err)
	}
	close(gate)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	// A line is written after its response went out: wait for both.
	var a, b string
	for try := 0; try < 400; try++ {
		a, _ = readFile(logA)
		b, _ = readFile(logB)
		if strings.Contains(a+b, "/slow") && strings.Contains(a+b, "/after") {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if !strings.Contains(a, `"GET /slow HTTP/1.1" 200`) || strings.Contains(a, "/after") {
		t.Errorf("%s: want the line of the request in flight at the reload, and only it:\n%s", logA, a)
	}
	if !strings.Contains(b, `"GET /after HTTP/1.1" 200`) || strings.Contains(b, "/slow") {
		t.Errorf("%s: want the line of the request after the reload:\n%s", logB, b)
	}

	// Requests racing reloads that switch the file back and forth.
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := get("/race"); err != nil {
					t.Error(err)
					return
				}
				sent.Add(1)
			}
		}()
	}
	for i := range 40 {
		if i%2 == 0 {
			reloadTo(yamlA)
		} else {
			reloadTo(yamlB)
		}
	}
	close(stop)
	wg.Wait()
	// The last lines may still be on their way.
	logged := 0
	for try := 0; try < 400; try++ {
		logged = 0
		for _, f := range []string{logA, logB} {
			for _, l := range readLines(t, f) {
				if strings.Contains(l, "/race") {
					logged++
				}
			}
		}
		if int64(logged) >= sent.Load() {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if int64(logged) != sent.Load() {
		t.Errorf("%d requests, %d access log lines", sent.Load(), logged)
	}
}

func readFile(name string) (string, error) {
	b, err := os.ReadFile(name)
	return string(b), err
}
