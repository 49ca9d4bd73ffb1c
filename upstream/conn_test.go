package upstream

import (
	"bufio"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accel-proxy/accel/parser"
)

// rawOrigin accepts one connection, hands the bytes of the first request
// head (through the blank line) to heads, drains a body as framed, and
// writes reply.
func rawOrigin(t *testing.T, reply string) (addr string, heads <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			head.WriteString(line)
			if err != nil || line == "\r\n" {
				break
			}
		}
		ch <- head.String()
		if req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head.String()))); err == nil {
			switch {
			case req.ContentLength > 0:
				io.CopyN(io.Discard, br, req.ContentLength)
			case len(req.TransferEncoding) > 0:
				io.Copy(io.Discard, httputil.NewChunkedReader(br))
				br.ReadString('\n') // the CRLF after the last chunk
			}
		}
		io.WriteString(c, reply)
	}()
	return ln.Addr().String(), ch
}

func fields(kv ...string) parser.Fields {
	var fs parser.Fields
	for i := 0; i < len(kv); i += 2 {
		fs = fs.Add(kv[i], kv[i+1])
	}
	return fs
}

// The origin receives exactly our fields, in order, spelled as given; only
// the framing is ours.
func TestRequestFieldsExact(t *testing.T) {
	const reply = "HTTP/1.1 204 No Content\r\n\r\n"
	for _, tc := range []struct {
		name string
		req  *Request
		want string
	}{{
		name: "get",
		req: &Request{Head: &parser.Request{
			Method: []byte("GET"), Target: []byte("/a//b/../c?x=%zz&y"),
			Fields: fields("host", "example.test", "x-lower", "1", "X-Forwarded-For", "10.0.0.1",
				"Cookie", "a=b", "User-Agent", "ua/1", "Content-Type", "text/x", "cookie", "c=d",
				"Accept", "*/*", "X-Dup", "1", "x-dup", "2"),
		}},
		want: "GET /a//b/../c?x=%zz&y HTTP/1.1\r\nHost: example.test\r\nx-lower: 1\r\n" +
			"X-Forwarded-For: 10.0.0.1\r\nCookie: a=b\r\nUser-Agent: ua/1\r\nContent-Type: text/x\r\n" +
			"cookie: c=d\r\nAccept: */*\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n",
	}, {
		name: "no host field",
		req: &Request{Head: &parser.Request{
			Method: []byte("GET"), Target: []byte("/"), Host: []byte("h2.example"),
			Fields: fields("accept", "*/*"),
		}},
		want: "GET / HTTP/1.1\r\nHost: h2.example\r\naccept: */*\r\n\r\n",
	}, {
		name: "length kept in place",
		req: &Request{
			Head: &parser.Request{
				Method: []byte("POST"), Target: []byte("/p"), ContentLength: 5,
				Fields: fields("Host", "h", "content-length", "5", "Transfer-Encoding", "chunked", "X-A", "1"),
			},
			Body: strings.NewReader("hello"),
		},
		want: "POST /p HTTP/1.1\r\nHost: h\r\ncontent-length: 5\r\nX-A: 1\r\n\r\n",
	}, {
		name: "chunked",
		req: &Request{
			Head: &parser.Request{
				Method: []byte("POST"), Target: []byte("/p"), ContentLength: -1,
				Fields: fields("Host", "h", "Content-Length", "9", "X-A", "1"),
			},
			Body: strings.NewReader("hello"),
		},
		want: "POST /p HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			addr, heads := rawOrigin(t, reply)
			p := newTestPool(t, Config{Servers: []ServerConfig{{Addr: addr}}})
			resp, _, err := fetch(p, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := <-heads; got != tc.want {
				t.Errorf("origin got\n%q\nwant\n%q", got, tc.want)
			}
			if resp.Head.Status != 204 {
				t.Errorf("status %d", resp.Head.Status)
			}
		})
	}
}

func TestResponseHead(t *testing.T) {
	addr, _ := rawOrigin(t, "HTTP/1.1 201 Made It\r\nx-a: 1\r\nContent-Length: 5\r\n"+
		"set-cookie: a=1\r\nX-B: 2\r\nSet-Cookie: b=2\r\nConnection: keep-alive\r\n\r\nhello")
	p := newTestPool(t, Config{Servers: []ServerConfig{{Addr: addr}}})
	resp, body, err := fetch(p, get("/"))
	if err != nil {
		t.Fatal(err)
	}
	h := resp.Head
	if h.Status != 201 || string(h.Reason) != "Made It" || h.ContentLength != 5 || string(body) != "hello" {
		t.Errorf("status %d %q, length %d, body %q", h.Status, h.Reason, h.ContentLength, body)
	}
	if !resp.Buffered {
		t.Error("a body that came with its head is not marked Buffered")
	}
	var got []string
	for _, f := range h.Fields {
		got = append(got, string(f.Name)+": "+string(f.Value))
	}
	// The origin's order and spelling.
	want := "x-a: 1|set-cookie: a=1|X-B: 2|Set-Cookie: b=2|Connection: keep-alive"
	if strings.Join(got, "|") != want {
		t.Errorf("fields %q, want %q", strings.Join(got, "|"), want)
	}
	if h.Fields.Has("Content-Length") {
		t.Error("framing fields passed on")
	}
	if v := string(h.Fields.Get("Connection")); v != "keep-alive" {
		t.Errorf("Connection = %q: the caller needs it to find hop-by-hop fields", v)
	}
}

func TestHeadResponseKeepsLength(t *testing.T) {
	addr, _ := rawOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
	p := newTestPool(t, Config{Servers: []ServerConfig{{Addr: addr}}})
	req := get("/")
	req.Head.Method = []byte("HEAD")
	resp, body, err := fetch(p, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Head.ContentLength != 1234 || len(body) != 0 {
		t.Errorf("length %d, body %d bytes", resp.Head.ContentLength, len(body))
	}
}

// pattern is an endless deterministic byte stream, so that neither end has
// to hold a large body in memory. Its period of 251 bytes is prime, so it
// does not line up with buffer sizes.
type pattern struct{ off int }

var patternBlock = func() []byte {
	b := make([]byte, 251*64)
	for i := range b {
		b[i] = byte(i * 7 % 251)
	}
	return b
}()

func (p *pattern) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m := copy(b[n:], patternBlock[p.off:])
		n += m
		p.off = (p.off + m) % 251
	}
	return n, nil
}

func TestStreamingBoundedMemory(t *testing.T) {
	const size = 64 << 20
	var upSum atomic.Uint32
	o := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		h := crc32.NewIEEE()
		n, _ := io.Copy(h, r.Body)
		if n != size {
			http.Error(w, "short upload", 400)
			return
		}
		upSum.Store(h.Sum32())
		w.Header().Set("Content-Length", "67108864")
		io.CopyN(w, &pattern{}, size)
	})
	p := newTestPool(t, Config{Servers: servers(o)})
	want := crc32.NewIEEE()
	io.CopyN(want, &pattern{}, size)
	wantSum := want.Sum32()

	for _, length := range []int64{size, -1} {
		stop := heapWatch()
		req := post("/up", io.LimitReader(&pattern{}, size), length)
		resp, err := p.Do(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		h := crc32.NewIEEE()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		peak := stop()
		if err != nil || n != size {
			t.Fatalf("download %d bytes, err %v", n, err)
		}
		if h.Sum32() != wantSum || upSum.Load() != wantSum {
			t.Error("bodies corrupted in transit")
		}
		if peak > size/4 {
			t.Errorf("content length %d: heap peaked at %d MiB moving 2×64 MiB", length, peak>>20)
		}
		t.Logf("content length %d: heap peak %d MiB", length, peak>>20)
	}
}

func TestFirstByteTimeout(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	o := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) { <-hold })
	p := newTestPool(t, Config{Servers: servers(o), FirstByteTimeout: 100 * time.Millisecond})
	_, _, err := fetch(p, get("/"))
	var e *Error
	if !errors.As(err, &e) || !e.Timeout || Status(err) != http.StatusGatewayTimeout {
		t.Fatalf("err %v, want a timeout (504)", err)
	}
}

// The caller's context interrupts the wait for the head, frees the
// connection and does not count against the server.
func TestContextCancelsExchange(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	o := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) { <-hold })
	p := newTestPool(t, Config{Servers: servers(o), FailThreshold: 1})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for o.requests.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := p.Do(ctx, get("/"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	s := p.servers[0]
	p.mu.Lock()
	active, ejected := s.active, s.ejected
	p.mu.Unlock()
	if active != 0 || ejected {
		t.Errorf("after cancel: active %d, ejected %v", active, ejected)
	}
}

// Closing a body before its end closes the connection instead of pooling it.
func TestEarlyCloseDropsConnection(t *testing.T) {
	o := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		io.CopyN(w, &pattern{}, 1<<20)
	})
	// Unbuffered: a buffered body may be whole, and its connection kept,
	// before the reader closes it (TestSpoolCloseEarly covers that side).
	p := newTestPool(t, Config{Servers: servers(o), BufferMemory: -1})
	for range 3 {
		resp, err := p.Do(context.Background(), get("/"))
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(io.Discard, resp.Body, 10)
		resp.Body.Close()
		if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
			t.Error("read after Close succeeded")
		}
	}
	if n := o.accepts.Load(); n != 3 {
		t.Errorf("%d connections for 3 abandoned bodies, want 3", n)
	}
	if n := p.servers[0].hc.ConnsCount(); n != 0 {
		t.Errorf("%d connections still counted", n)
	}
}

// Origins face the parser's no-guessing rules: an ambiguous or malformed
// head is a failure of the server (502), never a response.
func TestStrictOriginHeads(t *testing.T) {
	storm := strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", maxInterim+1)
	for _, tc := range []struct {
		name, reply string
		want        error
	}{
		{"duplicate content-length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", parser.ErrDupCL},
		{"cl and te", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", parser.ErrCLTE},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n", parser.ErrObsFold},
		{"bare cr", "HTTP/1.1 200 OK\r\nX-A: 1\r2\r\nContent-Length: 0\r\n\r\n", parser.ErrBareCR},
		{"garbage", "hello there\r\n\r\n", parser.ErrBadVersion},
		{"unrequested 101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", errUnrequested101},
		{"1xx storm", storm + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", errInterimStorm},
		{"closed before a head", "HTTP/1.1 200 OK\r\nContent-Le", io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := rawOrigin(t, tc.reply)
			p := newTestPool(t, Config{Servers: []ServerConfig{{Addr: addr}}})
			_, _, err := fetch(p, get("/"))
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, tc.want) || e.Server != addr {
				t.Fatalf("err %v, want %v from %s", err, tc.want, addr)
			}
			if Status(err) != http.StatusBadGateway {
				t.Errorf("Status %d, want 502", Status(err))
			}
			if s := p.Stats(); s.Open != 0 || s.Active != 0 {
				t.Errorf("connection kept after a broken head: %+v", s)
			}
		})
	}
}

// Interim responses below the bound are skipped: the client gets the final
// one.
func TestInterimResponsesSkipped(t *testing.T) {
	addr, _ := rawOrigin(t, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"+
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	p := newTestPool(t, Config{Servers: []ServerConfig{{Addr: addr}}})
	resp, body, err := fetch(p, get("/"))
	if err != nil || resp.Head.Status != 200 || string(body) != "ok" || resp.Head.Fields.Has("Link") {
		t.Fatalf("status %v, body %q, err %v", resp, body, err)
	}
}

// bodyOrigin serves size pattern bytes on every request and reports each
// handler's end on done.
func bodyOrigin(t *testing.T, size int64, done chan<- struct{}) *origin {
	return startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		io.CopyN(w, &pattern{}, size)
		done <- struct{}{}
	})
}

func patternSum(size int64) uint32 {
	h := crc32.NewIEEE()
	io.CopyN(h, &pattern{}, size)
	return h.Sum32()
}

// waitIdle waits, bounded, until no connection of p is leased.
func waitIdle(t *testing.T, p *Pool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Active != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a connection is still leased: %+v", p.Stats())
		}
	}
}

// A reader that takes nothing does not hold the origin connection: the
// body is read into memory and a temp file at the origin's pace, and the
// connection goes back to the pool, where the next request finds it.
func TestSlowReaderFreesConnection(t *testing.T) {
	for _, size := range []int64{256 << 10, 4 << 20} {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			done := make(chan struct{}, 2)
			o := bodyOrigin(t, size, done)
			dir := t.TempDir()
			p := newTestPool(t, Config{Servers: servers(o), BufferMemory: 64 << 10, TempDir: dir})
			resp, err := p.Do(context.Background(), get("/big"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Buffered {
				t.Error("a body larger than the read buffer is marked Buffered")
			}
			<-done
			waitIdle(t, p)
			if s := p.Stats(); s.Open != 1 {
				t.Fatalf("after the origin finished: %+v, want its connection idle in the pool", s)
			}
			if _, _, err := fetch(p, get("/other")); err != nil {
				t.Fatal(err)
			}
			<-done
			if n := o.accepts.Load(); n != 1 {
				t.Errorf("origin accepted %d connections, want 1: the slow body's was reused", n)
			}
			h := crc32.NewIEEE()
			n, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			if err != nil || n != size || h.Sum32() != patternSum(size) {
				t.Fatalf("body %d bytes, err %v, intact %v", n, err, h.Sum32() == patternSum(size))
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("temp files left: %v", left)
			}
		})
	}
}

// Closing a body the pump is still reading closes the origin connection
// and frees the lease.
func TestSpoolCloseEarly(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	o := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		io.CopyN(w, &pattern{}, 1000)
		w.(http.Flusher).Flush()
		<-hold
	})
	p := newTestPool(t, Config{Servers: servers(o)})
	resp, err := p.Do(context.Background(), get("/"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := p.Stats(); s.Active != 0 || s.Open != 0 {
		t.Errorf("after closing a body mid-way: %+v", s)
	}
}

// tinyDisk mounts a 64 KiB tmpfs for the test, or skips where mounting is
// not allowed.
func tinyDisk(t *testing.T) string {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// A temp directory that cannot take the body (full, or not a directory)
// costs buffering, not the response: the body completes at the reader's
// pace, and the failure is reported once per back-off, not per response.
func TestSpoolTempDirFailures(t *testing.T) {
	// A directory that Validate accepted and that is a file by the time
	// the pool spools (an operator's cleanup, a remount).
	notDir := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(notDir, 0o700); err != nil {
		t.Fatal(err)
	}
	becomeFile := func(t *testing.T) {
		if err := os.Remove(notDir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(notDir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		dir   func(*testing.T) string
		after func(*testing.T)
	}{
		{"not a directory", func(*testing.T) string { return notDir }, becomeFile},
		{"full", tinyDisk, func(*testing.T) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const size = 1 << 20
			done := make(chan struct{}, 3)
			o := bodyOrigin(t, size, done)
			var reported atomic.Int64
			p := newTestPool(t, Config{
				Servers:           servers(o),
				BufferMemory:      16 << 10,
				TempDir:           tc.dir(t),
				OnBufferFileError: func(error) { reported.Add(1) },
			})
			tc.after(t)
			for i := range 2 {
				resp, err := p.Do(context.Background(), get("/big"))
				if err != nil {
					t.Fatal(err)
				}
				// Let the pump meet the disk before the reader starts.
				for deadline := time.Now().Add(10 * time.Second); p.Stats().BufferFileErrors == 0; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("no temp file failure seen")
					}
				}
				h := crc32.NewIEEE()
				n, err := io.Copy(h, resp.Body)
				resp.Body.Close()
				<-done
				if err != nil || n != size || h.Sum32() != patternSum(size) {
					t.Fatalf("response %d: %d bytes, err %v", i, n, err)
				}
			}
			if n := reported.Load(); n != 1 {
				t.Errorf("%d failures reported for two responses within the back-off, want 1", n)
			}
			waitIdle(t, p)
		})
	}
}

// Close on another goroutine ends a Read that waits for the origin, and
// frees the connection.
func TestSpoolCloseDuringRead(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	o := startOrigin(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		io.CopyN(w, &pattern{}, 100)
		w.(http.Flusher).Flush()
		<-hold
	})
	p := newTestPool(t, Config{Servers: servers(o)})
	resp, err := p.Do(context.Background(), get("/"))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		got <- err
	}()
	waitFor := func() {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if s := &resp.Body.(*spool).mu; s.TryLock() {
				n := resp.Body.(*spool).readers
				s.Unlock()
				if n > 0 {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("the reader never started")
			}
		}
	}
	waitFor()
	resp.Body.Close()
	if err := <-got; err == nil {
		t.Error("a Read cut by Close returned no error")
	}
	if s := p.Stats(); s.Active != 0 || s.Open != 0 {
		t.Errorf("after Close: %+v", s)
	}
}
