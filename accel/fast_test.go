package accel

import (
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// hitConfig is cacheConfig without the access log, whose slog line is the
// operator's choice and costs what the handler costs.
var hitConfig = strings.Replace(cacheConfig, "admin:\n", "log:\n  access: false\nadmin:\n", 1)

// rawClient sends one fixed request on a keep-alive connection and reads
// the whole response into a buffer it keeps, so that it allocates nothing
// of its own and a measurement counts accel's allocations alone.
type rawClient struct {
	c   net.Conn
	req []byte
	buf []byte
	// bodiless: the answers carry no body whatever their Content-Length
	// (HEAD, 304).
	bodiless bool
}

func dialRaw(t testing.TB, s *Server, req string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	return &rawClient{c: c, req: []byte(req), buf: make([]byte, 64<<10)}
}

// do sends the request and returns the response head and body; they alias
// the client's buffer until the next call.
func (rc *rawClient) do(t testing.TB) (head, body []byte) {
	if _, err := rc.c.Write(rc.req); err != nil {
		t.Fatal(err)
	}
	n, end, length := 0, -1, -1
	for end < 0 || n < end+length {
		m, err := rc.c.Read(rc.buf[n:])
		if err != nil {
			t.Fatal(err)
		}
		n += m
		if end < 0 {
			if i := bytes.Index(rc.buf[:n], []byte("\r\n\r\n")); i >= 0 {
				end = i + 4
				length = contentLength(rc.buf[:end])
				if rc.bodiless {
					length = 0
				}
				if length < 0 {
					t.Fatalf("response without Content-Length:\n%s", rc.buf[:end])
				}
			}
		}
	}
	return rc.buf[:end], rc.buf[end:n]
}

func contentLength(head []byte) int {
	_, v, ok := bytes.Cut(head, []byte("\r\nContent-Length: "))
	if !ok {
		return -1
	}
	v, _, _ = bytes.Cut(v, []byte("\r\n"))
	n := 0
	for _, c := range v {
		n = n*10 + int(c-'0')
	}
	return n
}

func startHitOrigin(t testing.TB, size int) *httpOrigin {
	return startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", `"v1"`)
		w.Write(bytes.Repeat([]byte("a"), size))
	})
}

// TestH1HitAllocatesNothing checks the promise of the hit path: a 1 KiB
// response served from memory through the HTTP/1 connection loop costs no
// allocation, and neither does a 304 from its stored ETag.
func TestH1HitAllocatesNothing(t *testing.T) {
	o := startHitOrigin(t, 1024)
	s := startAccel(t, hitConfig, o.addr)
	for _, tc := range []struct {
		name, req, status string
		body              int
		bodiless          bool
	}{
		{"hit", "GET /hit HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n", "200", 1024, false},
		{"not-modified", "GET /hit HTTP/1.1\r\nHost: bench.example\r\nIf-None-Match: \"v0\", \"v1\"\r\n\r\n", "304", 0, true},
		{"head", "HEAD /hit HTTP/1.1\r\nHost: bench.example\r\n\r\n", "200", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, s, tc.req)
			rc.bodiless = tc.bodiless
			// The first request stores the object (or finds it stored); the
			// next ones warm the pools.
			for range 3 {
				rc.do(t)
			}
			head, body := rc.do(t)
			if !bytes.HasPrefix(head, []byte("HTTP/1.1 "+tc.status+" ")) || len(body) != tc.body {
				t.Fatalf("got %d body bytes after\n%s", len(body), head)
			}
			for _, want := range []string{"\r\nCache-Status: accel; hit; ttl=", "\r\nAge: ", "\r\nVia: 1.1 accel\r\n", "\r\nDate: ", "\r\nEtag: \"v1\"\r\n"} {
				if !bytes.Contains(head, []byte(want)) {
					t.Errorf("head lacks %q:\n%s", want, head)
				}
			}
			if n := testing.AllocsPerRun(200, func() { rc.do(t) }); !raceEnabled && n != 0 {
				t.Errorf("%s allocates %v times per request, want 0", tc.name, n)
			}
			if got := o.requests.Load(); got != 1 {
				t.Errorf("origin saw %d requests, want 1", got)
			}
		})
	}
	if st := s.cache.Stats(); st.Hits < 3*200 {
		t.Errorf("cache counted %d hits", st.Hits)
	}
}

// TestH1FastRefusal checks that a request no route takes is refused on the
// fast path, without allocation, and the connection stays usable.
func TestH1FastRefusal(t *testing.T) {
	o := startHitOrigin(t, 16)
	cfg := strings.Replace(hitConfig, "  - pool: app\n", "  - pool: app\n    host: only.example\n", 1)
	s := startAccel(t, cfg, o.addr)
	rc := dialRaw(t, s, "GET /x HTTP/1.1\r\nHost: other.example\r\n\r\n")
	for range 3 {
		rc.do(t)
	}
	head, body := rc.do(t)
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 404 ")) || !bytes.Contains(body, []byte("no route")) {
		t.Fatalf("got\n%s%s", head, body)
	}
	if n := testing.AllocsPerRun(100, func() { rc.do(t) }); !raceEnabled && n != 0 {
		t.Errorf("refusal allocates %v times per request, want 0", n)
	}
	if got := o.requests.Load(); got != 0 {
		t.Errorf("origin saw %d requests", got)
	}
}
