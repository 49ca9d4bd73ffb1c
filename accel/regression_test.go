package accel

import (
	"bytes"

	"bufio"
	"context"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// readReq reads one request head (GETs only) and returns its target.
func readReq(br *bufio.Reader) (string, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, req.Body)
	return req.URL.Path, nil
}

// An origin that sends bytes past its Content-Length a moment after the
// body must not answer the next request on that connection (from another
// client, for another URL) with them: such a connection is never reused.
func TestOriginBytesPastBodyNeverReused(t *testing.T) {
	poisoned := make(chan struct{})
	addr := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		for {
			path, err := readReq(br)
			if err != nil {
				return
			}
			if path == "/a" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
				// "A moment after": once accel took the answer as whole.
				time.Sleep(100 * time.Millisecond)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON")
				close(poisoned)
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood")
		}
	})
	s := startAccel(t, baseConfig, addr)
	get := func(p string) string {
		resp, err := client(t, "h1").Get(baseURL(s, "h1") + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if b := get("/a"); b != "hello" {
		t.Fatalf("/a: %q", b)
	}
	<-poisoned // on loopback, in accel's socket once written
	if b := get("/b"); b != "good" {
		t.Fatalf("/b got %q: the tail of /a's response was read as /b's (origin connection desync)", b)
	}
}

// A request body that stalls is cut after read_timeout, over HTTP/2 as
// over HTTP/1, so a client cannot hold an origin connection (and a
// max_conns_per_server slot) for as long as it likes.
func TestStalledRequestBodyTimesOut(t *testing.T) {
	var started, finished atomic.Int64
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		io.Copy(io.Discard, r.Body)
		finished.Add(1)
	})
	cfg := baseConfig + `
limits:
  read_timeout: 1s
  write_timeout: 1s
`
	s := startAccel(t, cfg, o.addr)
	for _, mode := range []string{"h1", "h2c"} {
		t.Run(mode, func(t *testing.T) {
			started.Store(0)
			finished.Store(0)
			if mode == "h1" {
				c, err := net.Dial("tcp", s.Addrs()[0].String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("p", 20000))
			} else {
				pr, pw := io.Pipe()
				defer pw.Close()
				go pw.Write([]byte(strings.Repeat("p", 20000)))
				req, _ := http.NewRequest("POST", baseURL(s, mode)+"/up", pr)
				req.ContentLength = 100000
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go client(t, mode).Do(req.WithContext(ctx))
			}
			deadline := time.Now().Add(5 * time.Second)
			for finished.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if started.Load() == 0 {
				t.Fatalf("%s: request never reached the origin", mode)
			}
			if finished.Load() == 0 {
				t.Fatalf("%s: origin still waiting for the body 5s after it stalled (read_timeout 1s)", mode)
			}
		})
	}
}

// A client that sends a request and goes away cancels the origin request
// (HTTP/1: accel watches the connection while a bodiless request runs).
func TestH1ClientAbortCancelsOrigin(t *testing.T) {
	canceled := make(chan bool, 1)
	started := make(chan struct{})
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			canceled <- true
		case <-time.After(10 * time.Second):
			canceled <- false
		}
	})
	s := startAccel(t, baseConfig, o.addr)
	c, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	// Gone once the origin has the request, before the watch is armed
	// (abortWatchDelay): it finds the end when it arms.
	<-started
	c.Close()
	if !<-canceled {
		t.Fatal("origin request ran to its end after the client closed its connection")
	}
}

// An HTTP/2 client that opens a stream with a zero flow-control window and
// never opens it does not hold an origin connection past write_timeout:
// each write, waiting for window included, is bounded.
func TestH2ZeroWindowBounded(t *testing.T) {
	done := make(chan struct{})
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		w.Header().Set("Content-Type", "application/octet-stream")
		buf := make([]byte, 32<<10)
		for i := 0; i < 8192; i++ { // 256 MiB at most
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})
	cfg := baseConfig + `
limits:
  read_timeout: 1s
  write_timeout: 1s
`
	s := startAccel(t, cfg, o.addr)
	c, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/big"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	// Answer pings and settings like a live client, never WINDOW_UPDATE.
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.PingFrame:
				if !f.IsAck() {
					fr.WritePing(true, f.Data)
				}
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			}
		}
	}()
	// Nothing else ends the stream before a minute (first_byte_timeout,
	// the idle timeouts): 20s leaves a loaded machine room.
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("origin handler still streaming into accel 20s after the client stopped taking data (write_timeout 1s)")
	}
}

// A graceful stop lets an in-flight upload finish: only connections that
// wait for a request are cut.
func TestShutdownFinishesInFlightUpload(t *testing.T) {
	o := startOrigin(t)
	s := startAccel(t, baseConfig, o.addr())
	c := dialAccel(t, s)
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
	waitFor(t, "the upload to reach the origin", func() bool { return o.accepts.Load() == 1 })
	go s.Shutdown(context.Background())
	waitFor(t, "the shutdown to close the listener", func() bool {
		l, err := net.Dial("tcp", s.Addrs()[0].String())
		if err == nil {
			l.Close()
		}
		return err != nil
	})
	io.WriteString(c, "world")
	out, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(out), "HTTP/1.1 200") {
		t.Fatalf("in-flight upload during graceful shutdown: got %q", out)
	}
	if _, bodies := o.received(); len(bodies) != 1 || string(bodies[0]) != "helloworld" {
		t.Fatalf("origin received %q", bodies)
	}
}

// A client that pauses between body bytes longer than first_byte_timeout
// (but within read_timeout) is not a failure of the origin: the origin's
// write deadline starts when the client's bytes are there to send.
func TestSlowUploadNotBlamedOnOrigin(t *testing.T) {
	o := startOrigin(t)
	cfg := strings.Replace(baseConfig, `      - address: "ORIGIN"`, `      - address: "ORIGIN"
    first_byte_timeout: 200ms`, 1) + `
limits:
  read_timeout: 10s
`
	s := startAccel(t, cfg, o.addr())
	c := dialAccel(t, s)
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 16384\r\nConnection: close\r\n\r\n"+strings.Repeat("a", 8192))
	time.Sleep(400 * time.Millisecond) // the pause under test, twice first_byte_timeout
	io.WriteString(c, strings.Repeat("b", 8192))
	out, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(out), "HTTP/1.1 200") {
		t.Fatalf("upload with a 400ms pause (first_byte_timeout 200ms, read_timeout 10s): got %q", out)
	}
}
