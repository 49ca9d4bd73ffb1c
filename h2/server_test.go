package h2

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/accel-proxy/accel/internal/testproc"
	"github.com/accel-proxy/accel/parser"
)

// A stored body larger than the client's window goes out as the window
// opens, from where it is stored, byte for byte, and the stream ends
// after its last byte.
func TestH2StoredBodyFollowsWindow(t *testing.T) {
	h := newStoredHit()
	h.body = make([]byte, 200<<10)
	for i := range h.body {
		h.body[i] = byte(i * 7)
	}
	addr := serveLoopback(t, h, Config{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fr := getRoot(c, "http", 1000)
	var got []byte
	var status, length string
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			status, length = f.PseudoValue("status"), ""
			for _, hf := range f.Fields {
				if hf.Name == "content-length" {
					length = hf.Value
				}
			}
		case *http2.DataFrame:
			if len(f.Data()) > 1000 {
				t.Fatalf("DATA of %d bytes with a 1000-byte window", len(f.Data()))
			}
			got = append(got, f.Data()...)
			if f.StreamEnded() {
				if status != "200" || length != "204800" {
					t.Errorf("head: status %s, content-length %s", status, length)
				}
				if !bytes.Equal(got, h.body) {
					t.Fatalf("body differs from the stored one (%d bytes, want %d)", len(got), len(h.body))
				}
				return
			}
			if n := uint32(len(f.Data())); n > 0 {
				fr.WriteWindowUpdate(1, n)
				fr.WriteWindowUpdate(0, n)
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("server sent %v", f)
		}
	}
}

// getRoot starts an HTTP/2 client on c whose streams and connection
// take window bytes (the connection at least its initial 65 535), asks
// for / on stream 1, and returns its framer.
func getRoot(c net.Conn, scheme string, window uint32) *http2.Framer {
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: window})
	if window > 65535 {
		fr.WriteWindowUpdate(0, window-65535)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", scheme}, {":authority", "x"}, {":path", "/"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	return fr
}

// A client that opens no window for a response answered inline costs no
// goroutine: the connection's own loop resets the stream once it stalled
// for write_timeout, and goes on serving the connection.
func TestH2ZeroWindowInlineReset(t *testing.T) {
	h := newStoredHit()
	h.body = make([]byte, 64<<10)
	addr := serveLoopback(t, h, Config{WriteTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	request := func(id uint32) {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	}
	request(1)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no reset of the stalled stream: %v", err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.StreamID == 1 {
			if rst.ErrCode != http2.ErrCodeCancel {
				t.Errorf("reset with %v, want CANCEL", rst.ErrCode)
			}
			break
		}
		if d, ok := f.(*http2.DataFrame); ok && len(d.Data()) > 0 {
			t.Fatalf("DATA with a zero window")
		}
	}
	// The connection still serves: a PING is answered.
	fr.WritePing(false, [8]byte{1})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection gone after the reset: %v", err)
		}
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
			return
		}
	}
}

// lingering answers in a goroutine, then stays in its handler until the
// test ends (an access log that is slow to write, say).
type lingering struct{ hold chan struct{} }

func (l lingering) ServeFast(req *parser.Request, w *Writer, c *Conn) bool { return false }
func (lingering) Refused(net.Addr, int, string)                            {}

func (l lingering) Serve(ctx context.Context, req *parser.Request, body io.Reader, w *Writer, c Conn) {
	w.SetContentLength(2)
	w.WriteHead(200, nil)
	w.Write([]byte("ok"))
	w.Flush()
	<-l.hold
}

// A stream whose answer went out whole no longer counts against the
// stream limit, even while its handler still runs: only reset streams
// keep counting until their work ends.
func TestH2AnsweredStreamsFreeTheLimit(t *testing.T) {
	l := lingering{hold: make(chan struct{})}
	defer close(l.hold)
	addr := serveLoopback(t, l, Config{MaxConcurrentStreams: 4})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for id := uint32(1); id < 40; id += 2 {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
		for done := false; !done; {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("stream %d: %v", id, err)
			}
			switch f := f.(type) {
			case *http2.RSTStreamFrame:
				t.Fatalf("stream %d reset with %v while only answered streams linger", f.StreamID, f.ErrCode)
			case *http2.GoAwayFrame:
				t.Fatalf("GOAWAY %v", f.ErrCode)
			case *http2.DataFrame:
				done = f.StreamID == id && f.StreamEnded()
			}
		}
	}
}

// bodyHandler answers /read with the length of the body it read, and
// anything else at once without reading it.
type bodyHandler struct{}

func (bodyHandler) ServeFast(req *parser.Request, w *Writer, c *Conn) bool { return false }
func (bodyHandler) Refused(net.Addr, int, string)                          {}

func (bodyHandler) Serve(ctx context.Context, req *parser.Request, body io.Reader, w *Writer, c Conn) {
	msg := "ignored"
	if string(req.Target) == "/read" {
		n, err := io.Copy(io.Discard, body)
		msg = strconv.FormatInt(n, 10)
		if err != nil {
			msg = err.Error()
		}
	}
	w.SetContentLength(int64(len(msg)))
	w.WriteHead(200, nil)
	w.Write([]byte(msg))
}

// Request bodies left unread by answers that did not need them go back to
// the connection's window: later uploads on the connection still flow.
func TestH2UnreadBodiesFreeTheWindow(t *testing.T) {
	addr := serveLoopback(t, bodyHandler{}, Config{})
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return net.Dial(network, addr)
	}}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	post := func(path string, n int) string {
		resp, err := cl.Post("http://"+addr+path, "application/octet-stream", bytes.NewReader(make([]byte, n)))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for range 8 {
		post("/ignore", 300<<10)
	}
	if got := post("/read", 2<<20); got != strconv.Itoa(2<<20) {
		t.Fatalf("2 MiB upload after unread ones: %q", got)
	}
}

// A request with a connection-specific field (RFC 9113 §8.2.2, as
// parser.ConnectionSpecific says) is reset with PROTOCOL_ERROR; te:
// trailers and trailer are answered, and the connection serves on.
func TestH2ConnectionSpecificFields(t *testing.T) {
	addr := serveLoopback(t, newStoredHit(), Config{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	id := uint32(1)
	for _, tc := range []struct {
		name, value string
		reset       bool
	}{
		{"connection", "close", true},
		{"proxy-connection", "keep-alive", true},
		{"keep-alive", "timeout=5", true},
		{"transfer-encoding", "chunked", true},
		{"upgrade", "h2c", true},
		{"te", "gzip", true},
		{"te", "trailers", false},
		{"trailer", "x-checksum", false},
	} {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}, {tc.name, tc.value}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
		for done := false; !done; {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("%s: %s: %v", tc.name, tc.value, err)
			}
			switch f := f.(type) {
			case *http2.RSTStreamFrame:
				if !tc.reset || f.StreamID != id || f.ErrCode != http2.ErrCodeProtocol {
					t.Fatalf("%s: %s: stream %d reset with %v", tc.name, tc.value, f.StreamID, f.ErrCode)
				}
				done = true
			case *http2.GoAwayFrame:
				t.Fatalf("%s: %s: GOAWAY %v", tc.name, tc.value, f.ErrCode)
			case *http2.MetaHeadersFrame:
				if tc.reset {
					t.Fatalf("%s: %s answered %s, want a reset", tc.name, tc.value, f.PseudoValue("status"))
				}
			case *http2.DataFrame:
				done = f.StreamID == id && f.StreamEnded()
			}
		}
		id += 2
	}
}

// gateHandler is bodyHandler that records the targets it is given and
// holds /slow until release is closed.
type gateHandler struct {
	bodyHandler
	started chan string
	release chan struct{}
}

func newGateHandler() *gateHandler {
	return &gateHandler{started: make(chan string, 16), release: make(chan struct{})}
}

func (h *gateHandler) Serve(ctx context.Context, req *parser.Request, body io.Reader, w *Writer, c Conn) {
	h.started <- string(req.Target)
	if string(req.Target) == "/slow" {
		<-h.release
	}
	h.bodyHandler.Serve(ctx, req, body, w, c)
}

// goAwayClient is a raw HTTP/2 client of a test's server.
type goAwayClient struct {
	t  *testing.T
	fr *http2.Framer
}

func serveGoAway(t *testing.T, h Handler) (*Server, func() *goAwayClient) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := New(Config{}, h)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.Serve(c, nil, false)
		}
	}()
	return s, func() *goAwayClient {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, http2.ClientPreface)
		fr := http2.NewFramer(c, c)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		fr.WriteSettings()
		return &goAwayClient{t, fr}
	}
}

// open sends a GET for path on stream id.
func (c *goAwayClient) open(id uint32, path string) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", path}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
}

// until reads frames until want reports true for one and returns it. A
// HEADERS frame for a stream in refused fails the test; so does the
// connection's end.
func (c *goAwayClient) until(what string, refused uint32, want func(http2.Frame) bool) http2.Frame {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok && refused != 0 && h.StreamID == refused {
			c.t.Fatalf("waiting for %s: stream %d was answered", what, refused)
		}
		if want(f) {
			return f
		}
	}
}

func isGoAway(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }

// ask sends a request on stream id and reads until its end; a GOAWAY
// before it fails the test.
func (c *goAwayClient) ask(id uint32, path string) {
	c.t.Helper()
	c.open(id, path)
	c.until("stream answered", 0, func(f http2.Frame) bool {
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			c.t.Fatalf("stream %d: GOAWAY last stream %d before its answer", id, f.LastStreamID)
		case *http2.DataFrame:
			return f.StreamID == id && f.StreamEnded()
		}
		return false
	})
}

// firstGoAway reads the first GOAWAY of a graceful shutdown, which must
// name the largest stream id, and the PING after it, whose data it
// returns.
func (c *goAwayClient) firstGoAway() [8]byte {
	c.t.Helper()
	ga := c.until("first GOAWAY", 0, isGoAway).(*http2.GoAwayFrame)
	if ga.LastStreamID != 1<<31-1 || ga.ErrCode != http2.ErrCodeNo {
		c.t.Fatalf("first GOAWAY last stream %d, %v; want 2^31-1, NO_ERROR", ga.LastStreamID, ga.ErrCode)
	}
	ping := c.until("PING", 0, func(f http2.Frame) bool {
		p, ok := f.(*http2.PingFrame)
		return ok && !p.IsAck()
	})
	return ping.(*http2.PingFrame).Data
}

// TestGoAway: GoAway starts the two-step GOAWAY of RFC 9113 §6.8 on an
// open connection: GOAWAY with 2^31-1 and a PING; a stream opened before
// the client acks the PING is served; after the ack the final GOAWAY names
// it; a stream opened after that never reaches the handler; the stream in
// flight is answered and the connection, idle, closes. A connection served
// afterwards is answered as usual.
func TestGoAway(t *testing.T) {
	h := newGateHandler()
	s, dial := serveGoAway(t, h)
	c := dial()
	c.open(1, "/slow")
	if got := <-h.started; got != "/slow" {
		t.Fatalf("handler got %q", got)
	}
	s.GoAway()
	ping := c.firstGoAway()
	// Opened while the first GOAWAY was (as far as the server knows) on
	// the wire: served.
	c.ask(3, "/crossed")
	c.fr.WritePing(true, ping)
	ga := c.until("final GOAWAY", 0, isGoAway).(*http2.GoAwayFrame)
	if ga.LastStreamID != 3 || ga.ErrCode != http2.ErrCodeNo {
		t.Fatalf("final GOAWAY last stream %d, %v; want 3, NO_ERROR", ga.LastStreamID, ga.ErrCode)
	}
	// Opened after the final GOAWAY: ignored. The PING after it is
	// answered once the server read the HEADERS before it.
	c.open(5, "/late")
	c.fr.WritePing(false, [8]byte{1})
	c.until("PING ack", 5, func(f http2.Frame) bool {
		p, ok := f.(*http2.PingFrame)
		return ok && p.IsAck() && p.Data == [8]byte{1}
	})
	close(h.release)
	var answered bool
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			if err != io.EOF {
				t.Errorf("connection after its last stream: %v, want EOF", err)
			}
			break
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == 5 {
				t.Error("stream 5, opened after the final GOAWAY, was answered")
			}
		case *http2.DataFrame:
			answered = answered || f.StreamID == 1 && f.StreamEnded()
		case *http2.GoAwayFrame:
			t.Errorf("a third GOAWAY: last stream %d, %v", f.LastStreamID, f.ErrCode)
		}
	}
	if !answered {
		t.Error("stream 1, in flight at GoAway, was not answered")
	}
	if got := <-h.started; got != "/crossed" {
		t.Errorf("handler got %q, want /crossed", got)
	}
	select {
	case got := <-h.started:
		t.Errorf("handler got %q after the final GOAWAY", got)
	default:
	}
	c2 := dial()
	for id := uint32(1); id <= 3; id += 2 {
		c2.ask(id, "/")
	}
}

// TestShutdownUnackedPing: a client that never acks the shutdown PING
// still gets the final GOAWAY (after drainTimeout), naming its last
// stream, and the connection then closes; Shutdown returns.
func TestShutdownUnackedPing(t *testing.T) {
	h := newGateHandler()
	s, dial := serveGoAway(t, h)
	c := dial()
	c.ask(1, "/")
	stopped := make(chan error, 1)
	go func() { stopped <- s.Shutdown(context.Background()) }()
	c.firstGoAway()
	ga := c.until("final GOAWAY", 0, isGoAway).(*http2.GoAwayFrame)
	if ga.LastStreamID != 1 || ga.ErrCode != http2.ErrCodeNo {
		t.Fatalf("final GOAWAY last stream %d, %v; want 1, NO_ERROR", ga.LastStreamID, ga.ErrCode)
	}
	if _, err := c.fr.ReadFrame(); err != io.EOF {
		t.Errorf("idle connection after the final GOAWAY: %v, want EOF", err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// writeSizes records the largest write made to its connection.
type writeSizes struct {
	net.Conn
	max atomic.Int64
}

func (w *writeSizes) Write(p []byte) (int, error) {
	if n := int64(len(p)); n > w.max.Load() {
		w.max.Store(n)
	}
	return w.Conn.Write(p)
}

// A client on TLS that opens windows of 16 MiB gets a 1 MiB stored body
// byte for byte, and the connection never writes more than maxSpare at
// once: the copy that TLS needs is sized by the buffer a connection keeps,
// not by the window a peer opens (up to 2 GiB, for every connection). The
// body goes out the same whether answered inline or from the stream's
// goroutine.
func TestH2TLSBodyInBoundedWrites(t *testing.T) {
	h := newStoredHit()
	h.body = make([]byte, 1<<20)
	for i := range h.body {
		h.body[i] = byte(i * 7)
	}
	release := make(chan struct{})
	close(release)
	for _, c := range []struct {
		name string
		h    Handler
	}{
		{"inline", h},
		{"goroutine", waitingHit{storedHit: h, inside: make(chan struct{}, 1), release: release}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			s := New(Config{}, c.h)
			defer s.Shutdown(context.Background())
			ws := &writeSizes{}
			served := make(chan error, 1)
			go func() {
				nc, err := ln.Accept()
				if err != nil {
					served <- err
					return
				}
				tc := tls.Server(nc, &tls.Config{Certificates: []tls.Certificate{testproc.SelfSigned(t)}, NextProtos: []string{"h2"}})
				if err := tc.Handshake(); err != nil {
					served <- err
					return
				}
				ws.Conn = tc
				served <- s.Serve(ws, nil, true)
			}()
			tc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			fr := getRoot(tc, "https", 16<<20)
			var got []byte
			for ended := false; !ended; {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatalf("after %d bytes: %v", len(got), err)
				}
				switch f := f.(type) {
				case *http2.DataFrame:
					got = append(got, f.Data()...)
					ended = f.StreamEnded()
				case *http2.RSTStreamFrame, *http2.GoAwayFrame:
					t.Fatalf("server sent %v", f)
				}
			}
			if !bytes.Equal(got, h.body) {
				t.Fatalf("body differs from the stored one (%d bytes, want %d)", len(got), len(h.body))
			}
			if m := ws.max.Load(); m > maxSpare {
				t.Errorf("largest write %d bytes, want at most %d", m, maxSpare)
			}
			tc.Close()
			if err := <-served; err != nil && !errors.Is(err, io.EOF) {
				t.Logf("serve: %v", err)
			}
		})
	}
}

// A body cut short where the output buffer is full is held back for the
// next write, not stalled; one whose window closed at the same frame is
// stalled on flow control, so that write_timeout resets it if the peer
// never opens the window again.
func TestH2HeldBackOnlyWhileWindowOpen(t *testing.T) {
	for _, c := range []struct {
		name     string
		window   int64
		heldBack bool
	}{
		{"window open", 1000, true},
		{"window closed with the buffer", 100, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cn := &conn{isTLS: true, outflow: 1 << 20, peerMaxFrame: 16384}
			cn.out = make([]byte, maxSpare-frameHeaderLen-100)
			st := &stream{id: 1, sendWindow: c.window}
			if n := cn.sendDataLocked(st, make([]byte, 1000), true, true); n != 100 {
				t.Fatalf("sent %d bytes, want the 100 that fit", n)
			}
			if cn.heldBack != c.heldBack || st.stalledSince.IsZero() != c.heldBack {
				t.Errorf("held back %v, stalled %v; want held back %v", cn.heldBack, !st.stalledSince.IsZero(), c.heldBack)
			}
		})
	}
}
