package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testToken = "test-token-0123456789abcdef"

// fakePurger records each call and answers with a fixed count; it stands in
// for the cache, whose own tests and accel's end-to-end tests cover the
// real purge.
type fakePurger struct {
	mu    sync.Mutex
	calls []string
	n     int
	err   error
}

func (f *fakePurger) record(call string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.n, f.err
}

func (f *fakePurger) PurgeURL(u string, soft bool) (int, error) {
	return f.record("url " + u + " soft=" + boolStr(soft))
}

func (f *fakePurger) PurgePrefix(p string, soft bool) (int, error) {
	return f.record("prefix " + p + " soft=" + boolStr(soft))
}

func (f *fakePurger) PurgeTags(tags []string, soft bool) (int, error) {
	return f.record("tags " + strings.Join(tags, "|") + " soft=" + boolStr(soft))
}

func (f *fakePurger) PurgeAll(soft bool) (int, error) {
	return f.record("all soft=" + boolStr(soft))
}

func (f *fakePurger) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

var _ Purger = (*fakePurger)(nil)

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// startServer runs an admin server on a loopback port for the test's
// duration and returns its base URL.
func startServer(t *testing.T, cfg Config, m *Metrics, opts Options) (*Server, string) {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	s, err := New(cfg, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s, "http://" + s.Addr().String()
}

var client = &http.Client{Timeout: 10 * time.Second}

// call sends one request and returns the status, the Allow header and the
// body.
func call(t *testing.T, method, rawURL, token, contentType, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

const form = "application/x-www-form-urlencoded"

func TestPurgeKinds(t *testing.T) {
	fp := &fakePurger{n: 7}
	m := NewMetrics()
	_, base := startServer(t, Config{Token: testToken}, m, Options{Purger: fp})
	tests := []struct {
		name, path, query, ctype, body string
		want                           string // the purger call
		wantSoft                       bool
	}{
		{name: "url query", path: "/purge/url", query: "url=" + url.QueryEscape("http://example.com/a?b=1"),
			want: "url http://example.com/a?b=1 soft=false"},
		{name: "url form soft", path: "/purge/url", ctype: form, body: "url=https%3A%2F%2Fexample.com%2Fa&soft=1",
			want: "url https://example.com/a soft=true", wantSoft: true},
		{name: "url json", path: "/purge/url", ctype: "application/json", body: `{"url":"http://example.com/x","soft":true}`,
			want: "url http://example.com/x soft=true", wantSoft: true},
		{name: "url without scheme", path: "/purge/url", query: "url=example.com/a",
			want: "url example.com/a soft=false"},
		{name: "prefix", path: "/purge/prefix", ctype: form, body: "prefix=example.com/static/",
			want: "prefix example.com/static/ soft=false"},
		{name: "prefix json soft string", path: "/purge/prefix", ctype: "application/json; charset=utf-8", body: `{"prefix":"https://example.com/s/","soft":"yes"}`,
			want: "prefix https://example.com/s/ soft=true", wantSoft: true},
		{name: "tags comma", path: "/purge/tags", query: "tags=a,b&soft=true",
			want: "tags a|b soft=true", wantSoft: true},
		{name: "tags repeated and spaced", path: "/purge/tags", ctype: form, body: "tag=a&tag=b+c&tags=a",
			want: "tags a|b|c soft=false"},
		{name: "tags json array", path: "/purge/tags", ctype: "application/json", body: `{"tags":["p1","p2 p3"]}`,
			want: "tags p1|p2|p3 soft=false"},
		{name: "all", path: "/purge/all",
			want: "all soft=false"},
		{name: "all json empty body", path: "/purge/all", ctype: "application/json",
			want: "all soft=false"},
		{name: "all soft", path: "/purge/all", query: "soft=on",
			want: "all soft=true", wantSoft: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(fp.Calls())
			u := base + tt.path
			if tt.query != "" {
				u += "?" + tt.query
			}
			status, _, body := call(t, http.MethodPost, u, testToken, tt.ctype, tt.body)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			calls := fp.Calls()[before:]
			if len(calls) != 1 || calls[0] != tt.want {
				t.Fatalf("purger calls %q, want [%q]", calls, tt.want)
			}
			var ans purgeAnswer
			if err := json.Unmarshal([]byte(body), &ans); err != nil {
				t.Fatalf("answer %q: %v", body, err)
			}
			kind := strings.TrimPrefix(tt.path, "/purge/")
			if want := (purgeAnswer{Kind: kind, Purged: 7, Soft: tt.wantSoft}); ans != want {
				t.Errorf("answer %+v, want %+v", ans, want)
			}
		})
	}
	st, err := m.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"url": 4, "prefix": 2, "tags": 3, "all": 3, "other": 0}
	if !reflect.DeepEqual(st.Purges, want) {
		t.Errorf("purges counted %v, want %v", st.Purges, want)
	}
}

// TestPurgeBadArguments checks that a purge the server cannot read
// precisely purges nothing: above all, that a misspelt soft never becomes
// a hard purge.
func TestPurgeBadArguments(t *testing.T) {
	fp := &fakePurger{}
	_, base := startServer(t, Config{Token: testToken}, nil, Options{Purger: fp})
	tests := []struct{ name, path, query, ctype, body string }{
		{"misspelt soft", "/purge/all", "sotf=1", "", ""},
		{"bad soft value", "/purge/all", "soft=maybe", "", ""},
		{"relative url", "/purge/url", "url=/a", "", ""},
		{"no url", "/purge/url", "", "", ""},
		{"scheme without host", "/purge/url", "url=http:///a", "", ""},
		{"bad host", "/purge/url", "url=exa%20mple.com/", "", ""},
		{"ftp url", "/purge/url", "url=ftp://example.com/a", "", ""},
		{"two urls", "/purge/url", "url=http://a/&url=http://b/", "", ""},
		{"prefix without host", "/purge/prefix", "prefix=/static/", "", ""},
		{"no tags", "/purge/tags", "tags=,,", "", ""},
		{"url on prefix", "/purge/prefix", "prefix=a.com/&url=http://a.com/", "", ""},
		{"tags on all", "/purge/all", "tags=a", "", ""},
		{"json unknown field", "/purge/url", "", "application/json", `{"url":"http://a/","sof":true}`},
		{"json bad", "/purge/url", "", "application/json", `{"url":`},
		{"json and query", "/purge/url", "soft=1", "application/json", `{"url":"http://a/"}`},
		{"json tags wrong type", "/purge/tags", "", "application/json", `{"tags":3}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := base + tt.path
			if tt.query != "" {
				u += "?" + tt.query
			}
			status, _, body := call(t, http.MethodPost, u, testToken, tt.ctype, tt.body)
			if status != http.StatusBadRequest || !strings.Contains(body, `"error"`) {
				t.Errorf("status %d body %s, want 400 with an error", status, body)
			}
		})
	}
	if calls := fp.Calls(); len(calls) != 0 {
		t.Errorf("purger called: %q", calls)
	}

	big := "url=http://a/" + strings.Repeat("x", maxBody)
	if status, _, _ := call(t, http.MethodPost, base+"/purge/url", testToken, form, big); status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: status %d, want 413", status)
	}
}

func TestPurgeErrorsAndNoCache(t *testing.T) {
	fp := &fakePurger{err: errors.New("disk on fire")}
	_, base := startServer(t, Config{Token: testToken}, nil, Options{Purger: fp})
	status, _, body := call(t, http.MethodPost, base+"/purge/all", testToken, "", "")
	if status != http.StatusInternalServerError || !strings.Contains(body, "disk on fire") {
		t.Errorf("purger error: status %d body %s", status, body)
	}

	_, base = startServer(t, Config{Token: testToken}, nil, Options{})
	status, _, body = call(t, http.MethodPost, base+"/purge/all", testToken, "", "")
	if status != http.StatusNotImplemented {
		t.Errorf("no purger: status %d body %s, want 501", status, body)
	}
}

func TestAuth(t *testing.T) {
	fp := &fakePurger{}
	var reloads atomic.Int32
	_, base := startServer(t, Config{Token: testToken}, nil, Options{
		Purger: fp,
		Reload: func() (Reloaded, error) { reloads.Add(1); return Reloaded{}, nil },
	})
	endpoints := []struct{ method, path string }{
		{"POST", "/purge/url?url=http://a/"}, {"POST", "/purge/prefix?prefix=a/"},
		{"POST", "/purge/tags?tags=a"}, {"POST", "/purge/all"},
		{"POST", "/reload"}, {"GET", "/stats"}, {"GET", "/metrics"},
		// A wrong method is still 401 first: no token, no information.
		{"GET", "/purge/all"},
	}
	headers := map[string]string{
		"missing":       "",
		"wrong":         "Bearer " + testToken[:len(testToken)-1] + "x",
		"prefix only":   "Bearer " + testToken[:4],
		"longer":        "Bearer " + testToken + "x",
		"basic scheme":  "Basic " + testToken,
		"empty bearer":  "Bearer ",
		"token no type": testToken,
	}
	for _, ep := range endpoints {
		for name, h := range headers {
			req, _ := http.NewRequest(ep.method, base+ep.path, nil)
			if h != "" {
				req.Header.Set("Authorization", h)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with %s token: status %d, want 401", ep.method, ep.path, name, resp.StatusCode)
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s: no WWW-Authenticate: Bearer", ep.method, ep.path)
			}
		}
	}
	if calls := fp.Calls(); len(calls) != 0 || reloads.Load() != 0 {
		t.Errorf("unauthorised requests acted: purges %q, reloads %d", calls, reloads.Load())
	}

	// The scheme is case-insensitive (RFC 9110 §11.1).
	if status, _, body := call(t, "POST", base+"/purge/all", "", "", ""); status != 401 {
		t.Errorf("no token: %d %s", status, body)
	}
	req, _ := http.NewRequest("POST", base+"/purge/all", nil)
	req.Header.Set("Authorization", "bearer "+testToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("lower-case bearer: status %d", resp.StatusCode)
	}
}

// TestNoToken checks the choice for a server without a token: it starts,
// answers /healthz, and refuses everything else.
func TestNoToken(t *testing.T) {
	t.Setenv("ACCEL_TEST_EMPTY_TOKEN", "")
	fp := &fakePurger{}
	_, base := startServer(t, Config{TokenEnv: "ACCEL_TEST_EMPTY_TOKEN"}, nil, Options{Purger: fp})
	if status, _, body := call(t, "GET", base+"/healthz", "", "", ""); status != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("healthz: %d %s", status, body)
	}
	for _, tok := range []string{"", "anything"} {
		if status, _, _ := call(t, "POST", base+"/purge/all", tok, "", ""); status != 401 {
			t.Errorf("purge with token %q on a tokenless server: status %d, want 401", tok, status)
		}
		if status, _, _ := call(t, "GET", base+"/metrics", tok, "", ""); status != 401 {
			t.Errorf("metrics with token %q on a tokenless server: status %d, want 401", tok, status)
		}
	}
	if calls := fp.Calls(); len(calls) != 0 {
		t.Errorf("purger called: %q", calls)
	}
}

func TestTokenFromEnv(t *testing.T) {
	t.Setenv("ACCEL_TEST_TOKEN", " "+testToken+"\n")
	fp := &fakePurger{n: 1}
	_, base := startServer(t, Config{TokenEnv: "ACCEL_TEST_TOKEN"}, nil, Options{Purger: fp})
	if status, _, body := call(t, "POST", base+"/purge/all", testToken, "", ""); status != 200 {
		t.Errorf("token from env: %d %s", status, body)
	}
	// The config's token wins over the environment.
	_, base = startServer(t, Config{Token: "other-token-0123456789", TokenEnv: "ACCEL_TEST_TOKEN"}, nil, Options{Purger: fp})
	if status, _, _ := call(t, "POST", base+"/purge/all", testToken, "", ""); status != 401 {
		t.Errorf("env token accepted although config sets one: %d", status)
	}
}

func TestNewRejects(t *testing.T) {
	for name, cfg := range map[string]Config{
		"token with space": {Token: "two words", Listen: "127.0.0.1:0"},
		"token of =":       {Token: "==", Listen: "127.0.0.1:0"},
		"listen no port":   {Token: testToken, Listen: "127.0.0.1"},
	} {
		s, err := New(cfg, nil, Options{})
		if err == nil {
			t.Errorf("%s: New accepted it", name)
			continue
		}
		if s != nil {
			t.Errorf("%s: New returned a server with an error", name)
		}
		if strings.Contains(err.Error(), "two words") {
			t.Errorf("%s: error shows the token: %v", name, err)
		}
	}
}

func TestMethodNotAllowed(t *testing.T) {
	_, base := startServer(t, Config{Token: testToken}, nil, Options{Purger: &fakePurger{}, Reload: func() (Reloaded, error) { return Reloaded{}, nil }})
	tests := []struct{ method, path, allow string }{
		{"GET", "/purge/url", "POST"},
		{"PUT", "/purge/all", "POST"},
		{"GET", "/reload", "POST"},
		{"POST", "/stats", "GET, HEAD"},
		{"DELETE", "/metrics", "GET, HEAD"},
		{"POST", "/healthz", "GET, HEAD"},
	}
	for _, tt := range tests {
		status, h, _ := call(t, tt.method, base+tt.path, testToken, "", "")
		if status != http.StatusMethodNotAllowed || h.Get("Allow") != tt.allow {
			t.Errorf("%s %s: status %d Allow %q, want 405 %q", tt.method, tt.path, status, h.Get("Allow"), tt.allow)
		}
	}
	if status, _, _ := call(t, "HEAD", base+"/stats", testToken, "", ""); status != 200 {
		t.Errorf("HEAD /stats: %d", status)
	}
	if status, _, _ := call(t, "GET", base+"/nope", testToken, "", ""); status != 404 {
		t.Errorf("unknown path: %d", status)
	}
}

func TestReload(t *testing.T) {
	// The handler runs on the server's goroutine: atomics keep the race
	// detector's view of the test exact.
	var fail atomic.Pointer[error]
	var n atomic.Int32
	reload := func() (Reloaded, error) {
		n.Add(1)
		if p := fail.Load(); p != nil {
			return Reloaded{}, *p
		}
		return Reloaded{}, nil
	}
	_, base := startServer(t, Config{Token: testToken}, nil, Options{Reload: reload})
	status, _, body := call(t, "POST", base+"/reload", testToken, "", "")
	if status != 200 || n.Load() != 1 || !strings.Contains(body, `"reloaded": true`) {
		t.Errorf("reload: status %d calls %d body %s", status, n.Load(), body)
	}
	bad := errors.New("accel.yaml: routes[0].pool: unknown pool \"web\"")
	fail.Store(&bad)
	status, _, body = call(t, "POST", base+"/reload", testToken, "", "")
	var ans struct {
		Reloaded bool
		Error    string
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil {
		t.Fatal(err)
	}
	if status != 500 || n.Load() != 2 || ans.Reloaded || ans.Error != bad.Error() {
		t.Errorf("failing reload: status %d calls %d answer %+v", status, n.Load(), ans)
	}

	_, base = startServer(t, Config{Token: testToken}, nil, Options{})
	if status, _, _ := call(t, "POST", base+"/reload", testToken, "", ""); status != 501 {
		t.Errorf("no reload func: %d, want 501", status)
	}
}

func TestStartTwiceAndAddr(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0", Token: testToken}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() != nil {
		t.Errorf("Addr before Start: %v", s.Addr())
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if err := s.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	if s.Handler() == nil {
		t.Error("no handler")
	}
}
