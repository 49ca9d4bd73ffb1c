package accel

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

const headerRulesConfig = `
listen:
  - address: "127.0.0.1:0"
pools:
  - name: app
    servers:
      - address: "ORIGIN"
routes:
  - pool: app
    cache: {enabled: true}
  - path: /rules/
    pool: app
    cache: {enabled: true}
    headers:
      request:
        set: {X-Env: prod, X-Client: "${client_addr} via ${scheme}"}
        add: {X-Trace: "rid=${request_id}"}
        remove: [Cookie]
      response:
        set: {Server: accel-edge}
        add: {X-Served-By: "${host}"}
        remove: [X-Internal]
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "off"
`

// TestHeaderRules: set, add and remove on both sides, checked in what the
// origin received and what the client received, on a miss and on the
// cache hit that follows; a route without rules passes fields unchanged.
func TestHeaderRules(t *testing.T) {
	o := startOrigin(t)
	o.handle = func(r *http.Request, _ []byte) (int, http.Header, []byte) {
		return 200, http.Header{"Server": {"origin"}, "X-Internal": {"secret"}, "X-Served-By": {"origin-1"}, "Cache-Control": {"max-age=60"}}, []byte("ok")
	}
	s := startAccel(t, headerRulesConfig, o.addr())
	host := s.Addrs()[0].String()
	do := func(path string) *http.Response {
		req, _ := http.NewRequest("GET", "http://"+host+path, nil)
		req.Header["X-Env"] = []string{"dev"}
		req.Header["X-Trace"] = []string{"client-one"}
		req.Header["X-Request-Id"] = []string{"req-42"}
		req.Header["Cookie"] = []string{"a=b"}
		resp, err := client(t, "h1").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for i, want := range []string{"miss", "hit"} {
		resp := do("/rules/a")
		if !strings.Contains(resp.Header.Get("Cache-Status"), want) {
			t.Fatalf("request %d: Cache-Status %q, want %s", i, resp.Header.Get("Cache-Status"), want)
		}
		if got := resp.Header.Values("Server"); len(got) != 1 || got[0] != "accel-edge" {
			t.Errorf("%s: client got Server %q", want, got)
		}
		// add keeps the origin's field and adds one, once, on the hit too.
		if got := resp.Header.Values("X-Served-By"); len(got) != 2 || got[0] != "origin-1" || got[1] != host {
			t.Errorf("%s: client got X-Served-By %q, want [origin-1 %s]", want, got, host)
		}
		if got := resp.Header.Values("X-Internal"); got != nil {
			t.Errorf("%s: client got X-Internal %q", want, got)
		}
	}
	h := headFor(o, "/rules/a")
	for _, want := range []string{
		"\r\nX-Env: prod\r\n",
		"\r\nX-Client: 127.0.0.1 via http\r\n",
		"\r\nX-Trace: client-one\r\n",
		"\r\nX-Trace: rid=req-42\r\n",
	} {
		if !strings.Contains(h, want) {
			t.Errorf("origin head lacks %q:\n%s", want, h)
		}
	}
	for _, unwanted := range []string{"X-Env: dev", "Cookie:"} {
		if strings.Contains(h, unwanted) {
			t.Errorf("origin head has %q:\n%s", unwanted, h)
		}
	}
	if n := o.requests.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1 (then a hit)", n)
	}

	// No rules: everything passes as before.
	resp := do("/plain")
	if resp.Header.Get("Server") != "origin" || resp.Header.Get("X-Internal") != "secret" || len(resp.Header.Values("X-Served-By")) != 1 {
		t.Errorf("route without rules changed the response: %v", resp.Header)
	}
	if h := headFor(o, "/plain"); !strings.Contains(h, "X-Env: dev\r\n") || !strings.Contains(h, "Cookie: a=b\r\n") {
		t.Errorf("route without rules changed the request:\n%s", h)
	}
}
