package accel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestProtocolMatrix sends one request in every protocol mode to the same
// port and checks what the origin received.
func TestProtocolMatrix(t *testing.T) {
	o := startOrigin(t)
	s := startAccel(t, baseConfig, o.addr())
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			req, _ := http.NewRequest("GET", baseURL(s, mode)+"/p/"+mode+"?q=1", nil)
			req.Header.Set("X-Test", "v1")
			req.Header.Add("Cookie", "a=1")
			req.Header.Add("Cookie", "b=2")
			resp, err := client(t, mode).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			wantProto := map[string]int{"h1": 1, "h1tls": 1, "h2": 2, "h2c": 2}[mode]
			if resp.ProtoMajor != wantProto {
				t.Errorf("client spoke HTTP/%d, want %d", resp.ProtoMajor, wantProto)
			}
			if via := resp.Header.Get("Via"); !strings.Contains(via, "accel") {
				t.Errorf("response Via = %q", via)
			}
			heads, _ := o.received()
			head := heads[len(heads)-1]
			if !strings.HasPrefix(head, "GET /p/"+mode+"?q=1 HTTP/1.1\r\n") {
				t.Errorf("origin got request line %q", strings.SplitN(head, "\r\n", 2)[0])
			}
			proto := "http"
			if mode == "h1tls" || mode == "h2" {
				proto = "https"
			}
			for _, want := range []string{
				"\r\nHost: " + s.Addrs()[0].String() + "\r\n",
				"\r\nX-Test: v1\r\n",
				"\r\nX-Forwarded-For: 127.0.0.1\r\n",
				"\r\nX-Forwarded-Proto: " + proto + "\r\n",
			} {
				if !strings.Contains(head, want) {
					t.Errorf("origin head lacks %q:\n%s", want, head)
				}
			}
			if wantProto == 2 {
				if !strings.Contains(head, "\r\nCookie: a=1; b=2\r\n") {
					t.Errorf("cookie crumbs not joined:\n%s", head)
				}
				if !strings.Contains(head, "\r\nVia: 2 accel\r\n") {
					t.Errorf("origin head lacks Via 2 accel:\n%s", head)
				}
			} else if !strings.Contains(head, "\r\nVia: 1.1 accel\r\n") {
				t.Errorf("origin head lacks Via 1.1 accel:\n%s", head)
			}
		})
	}
}

// TestCurl drives the real curl in its three modes against one port.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is needed: apt-get install curl")
	}
	o := startOrigin(t)
	s := startAccel(t, baseConfig, o.addr())
	addr := s.Addrs()[0].String()
	for _, tc := range []struct {
		name  string
		args  []string
		proto string
	}{
		{"http1.1", []string{"--http1.1", "http://" + addr + "/c/1"}, "HTTP/1.1"},
		{"http2-tls", []string{"--http2", "-k", "https://" + addr + "/c/2"}, "HTTP/2"},
		{"http2-prior-knowledge", []string{"--http2-prior-knowledge", "http://" + addr + "/c/3"}, "HTTP/2"},
		{"http1.1-tls", []string{"--http1.1", "-k", "https://" + addr + "/c/4"}, "HTTP/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := o.requests.Load()
			args := append([]string{"-sS", "-i", "--max-time", "10", "-H", "X-Curl: yes"}, tc.args...)
			out, err := exec.Command(curl, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			if !strings.HasPrefix(string(out), tc.proto+" 200") {
				t.Errorf("curl got:\n%s", out)
			}
			if !strings.HasSuffix(string(out), "\r\n\r\nok") {
				t.Errorf("curl body:\n%s", out)
			}
			if got := o.requests.Load() - before; got != 1 {
				t.Fatalf("origin received %d requests, want 1", got)
			}
			heads, _ := o.received()
			path := tc.args[len(tc.args)-1]
			path = path[strings.Index(path, "/c/"):]
			if h := heads[len(heads)-1]; !strings.HasPrefix(h, "GET "+path+" HTTP/1.1\r\n") || !strings.Contains(h, "\r\nX-Curl: yes\r\n") {
				t.Errorf("origin received:\n%s", h)
			}
		})
	}
}

// TestH2Load runs nghttp2's h2load: 10 000 requests over 10 connections.
func TestH2Load(t *testing.T) {
	h2load, err := exec.LookPath("h2load")
	if err != nil {
		t.Fatal("h2load is needed: apt-get install nghttp2-client")
	}
	o := startOrigin(t)
	s := startAccel(t, baseConfig, o.addr())
	for _, url := range []string{"http://" + s.Addrs()[0].String() + "/load", "https://" + s.Addrs()[0].String() + "/load"} {
		out, err := exec.Command(h2load, "-n", "10000", "-c", "10", "-m", "10", "-T", "30", url).CombinedOutput()
		if err != nil {
			t.Fatalf("h2load %s: %v\n%s", url, err, out)
		}
		m := regexp.MustCompile(`requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored`).FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("h2load output not understood:\n%s", out)
		}
		if m[1] != "10000" || m[3] != "10000" || m[4] != "0" || m[5] != "0" {
			t.Errorf("h2load %s: %s", url, m[0])
		}
		if !regexp.MustCompile(`status codes: 10000 2xx`).Match(out) {
			t.Errorf("h2load %s: not all 2xx:\n%s", url, out)
		}
	}
}

// TestRejections sends each ambiguous or malformed head over TCP: the
// client gets the status and a close, the origin gets nothing.
func TestRejections(t *testing.T) {
	o := startOrigin(t)
	s := startAccel(t, baseConfig, o.addr())
	addr := s.Addrs()[0].String()
	long := strings.Repeat("a", 9000)
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"cl-te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"te-cl", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
		{"two-cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
		{"cl-list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!", 400},
		{"te-not-chunked-last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400},
		{"te-identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400},
		{"bare-cr", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400},
		{"nul", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", 400},
		{"ctl", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n", 400},
		{"space-before-colon", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400},
		{"bad-method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"bad-field-name", "GET / HTTP/1.1\r\nHost: a\r\nX@A: b\r\n\r\n", 400},
		{"no-host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400},
		{"two-hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad-chunk-size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
		{"chunk-overflow", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n", 400},
		{"head-too-large", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 70) + "\r\n", 431},
		{"target-too-long", "GET /" + long + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := o.requests.Load()
			out := rawExchange(t, addr, tc.req)
			want := fmt.Sprintf("HTTP/1.1 %d ", tc.status)
			if !strings.HasPrefix(out, want) {
				t.Fatalf("got %q, want %q...", firstLine(out), want)
			}
			if !strings.Contains(out, "\r\nConnection: close\r\n") {
				t.Errorf("no Connection: close in %q", out)
			}
			if n := strings.Count(out, "HTTP/1.1 4"); n != 1 {
				t.Errorf("%d responses, want 1:\n%s", n, out)
			}
			// The deadline in rawExchange bounds this; reaching here means
			// accel closed the connection.
			if got := o.requests.Load() - before; got != 0 {
				t.Errorf("origin received %d requests", got)
			}
		})
	}
}

func firstLine(s string) string { return strings.SplitN(s, "\r\n", 2)[0] }

// TestPipelined sends two requests in one write: two responses, in order.
func TestPipelined(t *testing.T) {
	o := startOrigin(t)
	o.handle = func(r *http.Request, body []byte) (int, http.Header, []byte) {
		return 200, http.Header{}, []byte("path=" + r.URL.Path + " body=" + string(body))
	}
	s := startAccel(t, baseConfig, o.addr())
	out := rawExchange(t, s.Addrs()[0].String(),
		"POST /first HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"+
			"GET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	i, j := strings.Index(out, "path=/first body=abc"), strings.Index(out, "path=/second body=")
	if i < 0 || j < 0 || j < i {
		t.Fatalf("responses out of order or missing:\n%s", out)
	}
	if n := strings.Count(out, "HTTP/1.1 200 OK\r\n"); n != 2 {
		t.Errorf("%d responses:\n%s", n, out)
	}
}

// TestOneByteWrites sends a request whose head and body arrive one byte per
// write, with Content-Length and chunked: the origin gets the body intact.
func TestOneByteWrites(t *testing.T) {
	o := startOrigin(t)
	s := startAccel(t, baseConfig, o.addr())
	for _, req := range []string{
		"POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world",
		"POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
	} {
		c, err := net.Dial("tcp", s.Addrs()[0].String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		for i := 0; i < len(req); i++ {
			if _, err := c.Write([]byte{req[i]}); err != nil {
				t.Fatal(err)
			}
		}
		out, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(out), "HTTP/1.1 200 ") {
			t.Fatalf("got %q", out)
		}
		_, bodies := o.received()
		if got := string(bodies[len(bodies)-1]); got != "hello world" {
			t.Errorf("origin body %q", got)
		}
	}
}

// TestKeepAliveAndHTTP10 checks connection reuse rules.
func TestKeepAliveAndHTTP10(t *testing.T) {
	o := startOrigin(t)
	s := startAccel(t, baseConfig, o.addr())
	addr := s.Addrs()[0].String()
	for _, tc := range []struct {
		name, req string
		responses int
		want      []string
	}{
		{"http10-close", "GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n", 1, []string{"Connection: close"}},
		{"http10-keepalive", "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n", 2, []string{"Connection: keep-alive"}},
		{"http11-close", "GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n", 1, []string{"Connection: close"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := rawExchange(t, addr, tc.req)
			if n := strings.Count(out, "HTTP/1.1 200 OK"); n != tc.responses {
				t.Errorf("%d responses, want %d:\n%s", n, tc.responses, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in:\n%s", w, out)
				}
			}
		})
	}
}

// TestExpectContinue: the client gets 100 Continue before it sends the body.
func TestExpectContinue(t *testing.T) {
	o := startOrigin(t)
	s := startAccel(t, baseConfig, o.addr())
	c := dialAccel(t, s)
	io.WriteString(c, "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	buf := make([]byte, 25)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "HTTP/1.1 100 Continue\r\n\r\n" {
		t.Fatalf("got %q, %v", buf, err)
	}
	io.WriteString(c, "hello")
	rest := make([]byte, 12)
	if _, err := io.ReadFull(c, rest); err != nil || string(rest) != "HTTP/1.1 200" {
		t.Fatalf("got %q, %v", rest, err)
	}
	_, bodies := o.received()
	if string(bodies[0]) != "hello" {
		t.Errorf("origin body %q", bodies[0])
	}
}

// TestSlowloris: a head that never completes is cut at header_timeout.
func TestSlowloris(t *testing.T) {
	o := startOrigin(t)
	s := startAccel(t, baseConfig+"limits:\n  header_timeout: 300ms\n", o.addr())
	c := dialAccel(t, s)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n")
	// Keep trickling bytes: each arrives well inside the timeout, but the
	// head as a whole does not.
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(c); done <- b }()
	for i := 0; i < 50; i++ {
		if _, err := io.WriteString(c, "X"); err != nil {
			break
		}
		select {
		case out := <-done:
			if !strings.HasPrefix(string(out), "HTTP/1.1 408 ") {
				t.Fatalf("got %q", out)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("connection still open after 5s of trickling")
}

// TestLargeUploadStreams forwards a 64 MiB body while the heap stays far
// below it.
func TestLargeUploadStreams(t *testing.T) {
	const size = 64 << 20
	o := startOrigin(t)
	o.hashBodies = true
	s := startAccel(t, baseConfig, o.addr())
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	h := sha256.New()
	req, _ := http.NewRequest("POST", baseURL(s, "h1")+"/upload", io.TeeReader(&patternReader{left: size}, h))
	req.ContentLength = size
	resp, err := client(t, "h1").Do(req)
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_, bodies := o.received()
	if want := fmt.Appendf(h.Sum(nil), " %d", size); len(bodies) != 1 || !bytes.Equal(bodies[0], want) {
		t.Fatalf("origin did not receive the body intact")
	}
	t.Logf("heap in use: base %d MiB, peak %d MiB", base.HeapInuse>>20, peak.Load()>>20)
	if peak.Load() > base.HeapInuse+16<<20 {
		t.Errorf("heap peaked at %d MiB over a base of %d MiB for a %d MiB body", peak.Load()>>20, base.HeapInuse>>20, size>>20)
	}
}

// patternReader yields left bytes of a fixed pattern without holding them.
type patternReader struct{ left int }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	n := min(len(b), p.left)
	for i := range b[:n] {
		b[i] = byte(p.left - i)
	}
	p.left -= n
	return n, nil
}

// TestQueueOverflow: a pool whose connections and queue are full answers
// 503 with Retry-After at once, and the requests it admitted succeed.
func TestQueueOverflow(t *testing.T) {
	o := startOrigin(t)
	release := make(chan struct{})
	o.handle = func(*http.Request, []byte) (int, http.Header, []byte) {
		<-release
		return 200, http.Header{}, []byte("slow")
	}
	s := startAccel(t, strings.Replace(baseConfig, "    servers:", "    max_conns_per_server: 2\n    queue_size: 2\n    queue_timeout: 5s\n    servers:", 1), o.addr())
	type result struct {
		status     int
		retryAfter string
	}
	results := make(chan result, 10)
	for i := 0; i < 10; i++ {
		go func() {
			resp, err := client(t, "h1").Get(baseURL(s, "h1") + "/slow")
			if err != nil {
				results <- result{}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- result{resp.StatusCode, resp.Header.Get("Retry-After")}
		}()
	}
	// Six requests can never be admitted (2 connections + 2 queued): their
	// 503s arrive while the origin still holds the others.
	for i := 0; i < 6; i++ {
		r := <-results
		if r.status != 503 || r.retryAfter == "" {
			t.Fatalf("overflow answer %d (Retry-After %q), want 503 with Retry-After", r.status, r.retryAfter)
		}
	}
	close(release)
	for i := 0; i < 4; i++ {
		if r := <-results; r.status != 200 {
			t.Errorf("admitted request got %d", r.status)
		}
	}
}

// TestGracefulDrain: Shutdown lets a request in flight finish.
func TestGracefulDrain(t *testing.T) {
	o := startOrigin(t)
	started := make(chan struct{})
	o.handle = func(*http.Request, []byte) (int, http.Header, []byte) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		return 200, http.Header{}, []byte("finished")
	}
	s := startAccel(t, baseConfig, o.addr())
	done := make(chan string, 1)
	go func() {
		resp, err := client(t, "h1").Get(baseURL(s, "h1") + "/drain")
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if got := <-done; got != "finished" {
		t.Errorf("in-flight request got %q", got)
	}
	if _, err := net.DialTimeout("tcp", s.Addrs()[0].String(), time.Second); err == nil {
		t.Error("listener still accepts after shutdown")
	}
}

// TestHopByHopRequest: fields meant for one hop never reach the origin.
func TestHopByHopRequest(t *testing.T) {
	o := startOrigin(t)
	s := startAccel(t, baseConfig, o.addr())
	out := rawExchange(t, s.Addrs()[0].String(), "GET /hop HTTP/1.1\r\nHost: a\r\nConnection: X-Hop, close\r\nX-Hop: secret\r\n"+
		"Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\nX-End: kept\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200 ") {
		t.Fatalf("got %q", out)
	}
	heads, _ := o.received()
	head := strings.ToLower(heads[0])
	for _, gone := range []string{"\r\nconnection:", "\r\nx-hop:", "\r\nkeep-alive:", "\r\nte:", "\r\nupgrade:", "\r\nproxy-connection:"} {
		if strings.Contains(head, gone) {
			t.Errorf("origin received %q:\n%s", gone, heads[0])
		}
	}
	if !strings.Contains(head, "\r\nx-end: kept\r\n") {
		t.Errorf("end-to-end field lost:\n%s", heads[0])
	}
}
