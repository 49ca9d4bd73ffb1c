package accel

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The HTTP/2 abuse tests drive a running accel with raw frames. Each
// checks that the attacking connection ends with the named error code
// within a bounded number of frames, that accel's heap stays bounded, and
// that a second, well-behaved client is answered throughout.

// attackOrigin answers /slow only when the test ends or accel cancels the
// request, and everything else at once; it counts what it received.
type attackOrigin struct {
	*httpOrigin
	slow      atomic.Int64
	cancelled atomic.Int64
	release   chan struct{}
	once      sync.Once
}

func startAttackOrigin(t *testing.T) *attackOrigin {
	a := &attackOrigin{release: make(chan struct{})}
	a.httpOrigin = startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			a.slow.Add(1)
			select {
			case <-a.release:
			case <-r.Context().Done():
				a.cancelled.Add(1)
			}
		case "/big":
			w.Header().Set("Content-Length", "1048576")
			w.Write(make([]byte, 1<<20))
			return
		}
		io.WriteString(w, "ok")
	})
	t.Cleanup(a.releaseAll)
	return a
}

// releaseAll answers the /slow requests waiting and the ones to come.
func (a *attackOrigin) releaseAll() { a.once.Do(func() { close(a.release) }) }

// allCancelled waits until every /slow request the origin received was
// cancelled by accel closing its connection.
func (a *attackOrigin) allCancelled(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for a.cancelled.Load() < a.slow.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c, n := a.cancelled.Load(), a.slow.Load(); c < n {
		t.Errorf("%d of the %d origin requests of reset streams still run: not cancelled", n-c, n)
	}
}

// bystander is a well-behaved h2c client that keeps asking while an
// attack runs; stop returns how many of its requests were answered 200
// and the first failure.
type bystander struct {
	done   chan struct{}
	wg     sync.WaitGroup
	ok     atomic.Int64
	mu     sync.Mutex
	failed error
}

func startBystander(t *testing.T, s *Server) *bystander {
	b := &bystander{done: make(chan struct{})}
	c := client(t, "h2c")
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			select {
			case <-b.done:
				return
			default:
			}
			resp, err := c.Get(baseURL(s, "h2c") + "/fine")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = &statusError{resp.StatusCode}
				}
			}
			if err != nil {
				b.mu.Lock()
				if b.failed == nil {
					b.failed = err
				}
				b.mu.Unlock()
				return
			}
			b.ok.Add(1)
		}
	}()
	return b
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

// stop ends the bystander after at least one more answer, and checks
// that none failed.
func (b *bystander) stop(t *testing.T) {
	t.Helper()
	before := b.ok.Load()
	deadline := time.Now().Add(10 * time.Second)
	for b.ok.Load() == before && time.Now().Before(deadline) {
		b.mu.Lock()
		failed := b.failed
		b.mu.Unlock()
		if failed != nil {
			break
		}
		runtime.Gosched()
	}
	close(b.done)
	b.wg.Wait()
	if b.failed != nil {
		t.Errorf("well-behaved client failed during the attack: %v", b.failed)
	}
	if b.ok.Load() == before {
		t.Errorf("well-behaved client not answered after the attack")
	}
}

// attacker is a raw HTTP/2 connection whose frames the test writes and
// whose GOAWAY a reader goroutine waits for.
type attacker struct {
	t      *testing.T
	c      net.Conn
	bw     *bufio.Writer
	fr     *http2.Framer
	enc    *hpack.Encoder
	hb     bytes.Buffer
	goaway chan http2.ErrCode
	pong   chan struct{}
	// frames counts what the test wrote.
	frames int
	// resets and statuses count what accel answered, by stream.
	resets   atomic.Int64
	statuses atomic.Int64
}

func dialAttacker(t *testing.T, s *Server, settings ...http2.Setting) *attacker {
	t.Helper()
	c := dialAccel(t, s)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	// Frames collect in bw: what one send writes goes out in one write,
	// so accel reads it at once (a HEADERS and its RST_STREAM, say).
	bw := bufio.NewWriterSize(c, 64<<10)
	a := &attacker{t: t, c: c, bw: bw, fr: http2.NewFramer(bw, c), goaway: make(chan http2.ErrCode, 1), pong: make(chan struct{}, 1)}
	a.enc = hpack.NewEncoder(&a.hb)
	// Attacks send what a client must not (a zero WINDOW_UPDATE, say).
	a.fr.AllowIllegalWrites = true
	a.fr.WriteSettings(settings...)
	a.bw.Flush()
	rfr := http2.NewFramer(nil, c)
	rfr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	go func() {
		defer close(a.goaway)
		for {
			f, err := rfr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.GoAwayFrame:
				if f.ErrCode != http2.ErrCodeNo {
					a.goaway <- f.ErrCode
					return
				}
			case *http2.PingFrame:
				if f.IsAck() && f.Data == syncPing {
					a.pong <- struct{}{}
				}
			case *http2.RSTStreamFrame:
				a.resets.Add(1)
			case *http2.MetaHeadersFrame:
				a.statuses.Add(1)
			}
		}
	}()
	return a
}

// block encodes a header block.
func (a *attacker) block(fields ...string) []byte {
	a.hb.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		a.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return append([]byte(nil), a.hb.Bytes()...)
}

func (a *attacker) get(id uint32, path string, endStream bool) {
	a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, EndStream: endStream,
		BlockFragment: a.block(":method", "GET", ":scheme", "http", ":authority", "x", ":path", path)})
	a.frames++
}

// syncPing marks the PINGs the attacker waits for.
var syncPing = [8]byte{'s', 'y', 'n', 'c'}

// sync sends a PING and waits for its ack: accel has then handled every
// frame before it. It reports false when GOAWAY came instead, which it
// leaves for until.
func (a *attacker) sync() bool {
	a.t.Helper()
	a.fr.WritePing(false, syncPing)
	a.frames++
	a.bw.Flush()
	select {
	case <-a.pong:
		return true
	case code, ok := <-a.goaway:
		if ok {
			// Put it back for until.
			a.goaway = make(chan http2.ErrCode, 1)
			a.goaway <- code
		}
		if !ok {
			a.goaway = nil
		}
		return false
	case <-time.After(10 * time.Second):
		a.t.Fatalf("no PING ack within 10s after %d frames", a.frames)
	}
	return false
}

// syncEvery is how many attack frames go out between two syncs: the frame
// counts below are exact within it.
const syncEvery = 20

// until writes with send, syncing every syncEvery frames, until accel's
// GOAWAY arrives, at most max frames, and returns its code.
func (a *attacker) until(max int, send func(i int)) http2.ErrCode {
	return a.flood(max, true, send)
}

// flood is until, without the syncs when sync is false (inside a header
// block, where no other frame may come): the frames then go out as fast
// as the socket takes them, max at most.
func (a *attacker) flood(max int, sync bool, send func(i int)) http2.ErrCode {
	a.t.Helper()
	for i := 0; a.frames < max; i++ {
		send(i)
		a.bw.Flush()
		if sync && i%syncEvery == syncEvery-1 && !a.sync() {
			break
		}
		if !sync {
			select {
			case code, ok := <-a.goaway:
				if ok {
					return code
				}
				a.t.Fatalf("connection closed without GOAWAY after %d frames", a.frames)
			default:
			}
		}
	}
	if a.goaway == nil {
		a.t.Fatalf("connection closed without GOAWAY after %d frames", a.frames)
	}
	select {
	case code, ok := <-a.goaway:
		if ok {
			return code
		}
		a.t.Fatalf("connection closed without GOAWAY after %d frames", a.frames)
	case <-time.After(10 * time.Second):
	}
	a.t.Fatalf("no GOAWAY after %d frames", a.frames)
	return 0
}

// heapGuard reads accel's heap (the test process's) before and after.
func heapGuard(t *testing.T) func() {
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	return func() {
		t.Helper()
		runtime.GC()
		var now runtime.MemStats
		runtime.ReadMemStats(&now)
		if now.HeapInuse > base.HeapInuse+32<<20 {
			t.Errorf("heap grew from %d MiB to %d MiB during the attack", base.HeapInuse>>20, now.HeapInuse>>20)
		}
	}
}

func wantCode(t *testing.T, got, want http2.ErrCode, frames, max int) {
	t.Helper()
	if got != want {
		t.Errorf("attacker got GOAWAY %v, want %v", got, want)
	}
	if frames > max {
		t.Errorf("GOAWAY came after %d frames, want at most %d", frames, max)
	}
}

// Rapid reset (CVE-2023-44487): each request reset at once. In one write
// the pair never reaches the pipeline; paced, the origin sees at most what
// the reset budget lets through, below the stream limit either way.
func TestH2RapidReset(t *testing.T) {
	for _, paced := range []bool{false, true} {
		name := map[bool]string{false: "same_write", true: "paced"}[paced]
		t.Run(name, func(t *testing.T) {
			o := startAttackOrigin(t)
			cfg := strings.Replace(baseConfig, "admin:\n  listen: \"off\"\n", "admin:\n  listen: \"127.0.0.1:0\"\n  token: \""+adminToken+"\"\n", 1)
			s := startAccel(t, cfg, o.addr)
			check := heapGuard(t)
			by := startBystander(t, s)
			a := dialAttacker(t, s)
			code := a.until(10000, func(i int) {
				id := uint32(2*i + 1)
				a.get(id, "/slow", true)
				if paced && !a.sync() {
					// accel has started the stream: the reset now
					// cancels a request on its way to the origin.
					return
				}
				a.fr.WriteRSTStream(id, http2.ErrCodeCancel)
				a.frames++
			})
			wantCode(t, code, http2.ErrCodeEnhanceYourCalm, a.frames, 4*(100+1)+2*syncEvery)
			by.stop(t)
			check()
			if n := o.slow.Load(); n > 250 {
				t.Errorf("origin received %d reset requests, more than the stream limit (250)", n)
			}
			if !paced && o.slow.Load() != 0 {
				t.Errorf("origin received %d requests reset in the same write", o.slow.Load())
			}
			o.allCancelled(t)
			t.Logf("%d frames, origin received %d of the reset requests", a.frames, o.slow.Load())
			if _, body := adminDo(t, s, adminToken, "GET", "/metrics", nil); !strings.Contains(body, `accel_http2_errors_total{reason="too_many_resets"} 1`) {
				t.Errorf("/metrics does not count the cut connection:\n%s", body)
			}
		})
	}
}

// MadeYouReset (CVE-2025-8671): the client makes accel reset its own
// streams (here a zero WINDOW_UPDATE on each), which must count like
// client resets; their origin requests are cancelled and count as work
// until they end.
func TestH2MadeYouReset(t *testing.T) {
	o := startAttackOrigin(t)
	s := startAccel(t, baseConfig, o.addr)
	check := heapGuard(t)
	by := startBystander(t, s)
	a := dialAttacker(t, s)
	code := a.until(10000, func(i int) {
		id := uint32(2*i + 1)
		a.get(id, "/slow", true)
		if !a.sync() {
			return
		}
		a.fr.WriteWindowUpdate(id, 0)
		a.frames++
	})
	wantCode(t, code, http2.ErrCodeEnhanceYourCalm, a.frames, 4*(100+1)+2*syncEvery)
	by.stop(t)
	check()
	if n := o.slow.Load(); n > 250 {
		t.Errorf("origin received %d requests of streams accel reset, more than the stream limit (250)", n)
	}
	o.allCancelled(t)
	t.Logf("%d frames, origin received %d requests", a.frames, o.slow.Load())
}

// Streams over the advertised limit are refused while the ones at work
// run, then the connection gets GOAWAY.
func TestH2ExcessStreams(t *testing.T) {
	o := startAttackOrigin(t)
	cfg := strings.Replace(baseConfig, "      self_signed: true\n", "      self_signed: true\n    http2:\n      max_concurrent_streams: 10\n", 1)
	s := startAccel(t, cfg, o.addr)
	check := heapGuard(t)
	by := startBystander(t, s)
	a := dialAttacker(t, s)
	code := a.until(10000, func(i int) { a.get(uint32(2*i+1), "/slow", true) })
	wantCode(t, code, http2.ErrCodeEnhanceYourCalm, a.frames, 10+100+1+2*syncEvery)
	if n := a.resets.Load(); n < 100 {
		t.Errorf("%d streams refused before GOAWAY, want over 100", n)
	}
	by.stop(t)
	check()
	if n := o.slow.Load(); n > 10 {
		t.Errorf("origin received %d requests with a stream limit of 10", n)
	}
}

// A CONTINUATION flood (CVE-2024-27316): one header block that never
// ends is cut at max_header_block_size; empty CONTINUATIONs by the budget
// of frames without a response.
func TestH2ContinuationFlood(t *testing.T) {
	o := startAttackOrigin(t)
	s := startAccel(t, baseConfig, o.addr)
	for _, empty := range []bool{false, true} {
		name := map[bool]string{false: "bytes", true: "empty"}[empty]
		t.Run(name, func(t *testing.T) {
			check := heapGuard(t)
			by := startBystander(t, s)
			a := dialAttacker(t, s)
			a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndStream: true,
				BlockFragment: a.block(":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/")})
			a.frames++
			// No PING may come inside a header block: the flood goes out
			// unsynced, so the bound is what the socket buffers on top of
			// the limit (64 KiB in 1 KiB fragments; 1000 empty frames).
			max := 2000
			if empty {
				max = 20000
			}
			code := a.flood(max, false, func(i int) {
				frag := []byte(nil)
				if !empty {
					// Distinct values: each is a 1 KiB literal, not a
					// one-byte reference to the last.
					frag = a.block("x-flood", strings.Repeat("a", 990)+strconv.Itoa(i))
				}
				a.fr.WriteContinuation(1, false, frag)
				a.frames++
			})
			wantCode(t, code, http2.ErrCodeEnhanceYourCalm, a.frames, max)
			t.Logf("GOAWAY after %d frames written", a.frames)
			by.stop(t)
			check()
		})
	}
}

// An HPACK bomb: one 4 KiB entry in the dynamic table, then requests that
// name it 20 times each (80 KiB decoded from 20 bytes). Each is answered
// 431 without decoding into memory, and the connection is cut after
// max_resets of them.
func TestH2HPACKBomb(t *testing.T) {
	o := startAttackOrigin(t)
	s := startAccel(t, baseConfig, o.addr)
	check := heapGuard(t)
	by := startBystander(t, s)
	a := dialAttacker(t, s)
	req := []string{":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/slow"}
	a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndStream: true, EndHeaders: true,
		BlockFragment: a.block(append(req, "x-bomb", strings.Repeat("b", 4000))...)})
	a.frames++
	code := a.until(10000, func(i int) {
		fields := req
		for range 20 {
			fields = append(fields, "x-bomb", strings.Repeat("b", 4000))
		}
		a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 3), EndStream: true, EndHeaders: true,
			BlockFragment: a.block(fields...)})
		a.frames++
	})
	wantCode(t, code, http2.ErrCodeEnhanceYourCalm, a.frames, 100+1+2*syncEvery)
	if n := o.slow.Load(); n > 1 {
		t.Errorf("origin received %d requests; the bombs must not reach it", n)
	}
	if n := a.statuses.Load(); n < 100 {
		t.Errorf("%d bombs answered (431), want over 100", n)
	}
	by.stop(t)
	check()
}

// Frames that produce no response (SETTINGS, PING, PRIORITY, RST_STREAM
// on a closed stream, 1-byte WINDOW_UPDATEs) are cut by max_idle_frames.
func TestH2ControlFloods(t *testing.T) {
	o := startAttackOrigin(t)
	s := startAccel(t, baseConfig, o.addr)
	floods := map[string]func(a *attacker, i int){
		"settings": func(a *attacker, i int) { a.fr.WriteSettings() },
		"ping":     func(a *attacker, i int) { a.fr.WritePing(false, [8]byte{byte(i)}) },
		"priority": func(a *attacker, i int) {
			a.fr.WritePriority(uint32(2*i+101), http2.PriorityParam{Weight: 1})
		},
		"rst_closed": func(a *attacker, i int) { a.fr.WriteRSTStream(1, http2.ErrCodeCancel) },
		"window_dribble": func(a *attacker, i int) {
			a.fr.WriteWindowUpdate(1, 1)
		},
	}
	for name, flood := range floods {
		t.Run(name, func(t *testing.T) {
			check := heapGuard(t)
			by := startBystander(t, s)
			var a *attacker
			if name == "window_dribble" {
				// A 1-byte window: accel sends one byte per update.
				a = dialAttacker(t, s, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
				a.get(1, "/big", true)
			} else {
				a = dialAttacker(t, s)
				a.get(1, "/fine", true)
			}
			code := a.until(1000000, func(i int) { flood(a, i); a.frames++ })
			wantCode(t, code, http2.ErrCodeEnhanceYourCalm, a.frames, 1000+2*syncEvery)
			by.stop(t)
			check()
		})
	}
}

// gracefulGoAway reads a connection through a graceful GOAWAY (RFC 9113
// §6.8) until it ends, stream 1 (/slow) in flight: the first GOAWAY must
// name 2^31-1 and come with a PING; the client then opens stream 3
// (/crossed) and acks the PING; the final GOAWAY must name 3; the client
// opens stream 5 (/late), which must not be answered, and the origin is
// released. It returns the status of each stream answered.
func gracefulGoAway(t *testing.T, fr *http2.Framer, request func(id uint32, path string), release func()) map[uint32]string {
	t.Helper()
	status := map[uint32]string{}
	goaways := 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break // the connection ends once its last stream is answered
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			goaways++
			want := map[int]uint32{1: 1<<31 - 1, 2: 3}[goaways]
			if f.ErrCode != http2.ErrCodeNo || f.LastStreamID != want {
				t.Errorf("GOAWAY %d: %v last stream %d, want NO_ERROR and %d", goaways, f.ErrCode, f.LastStreamID, want)
			}
			if goaways == 2 {
				// Opened after the final GOAWAY: ignored.
				request(5, "/late")
				release()
			}
		case *http2.PingFrame:
			if !f.IsAck() && goaways == 1 {
				// Opened before the client saw the first GOAWAY, as
				// far as the server can tell: served.
				request(3, "/crossed")
				fr.WritePing(true, f.Data)
			}
		case *http2.MetaHeadersFrame:
			status[f.StreamID] = f.PseudoValue("status")
		}
	}
	if goaways != 2 {
		t.Errorf("%d GOAWAYs, want 2", goaways)
	}
	if _, ok := status[5]; ok {
		t.Error("stream 5, opened after the final GOAWAY, was answered")
	}
	return status
}

// A graceful stop sends the two-step GOAWAY: the stream in flight
// finishes, one opened before the PING ack is served, one opened after
// the final GOAWAY never reaches the origin, then the connection closes.
func TestH2ShutdownGoAway(t *testing.T) {
	o := startAttackOrigin(t)
	s := startAccel(t, baseConfig, o.addr)
	c := dialAccel(t, s)
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	request := func(id uint32, path string) {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", path}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	}
	request(1, "/slow")
	deadline := time.Now().Add(10 * time.Second)
	for o.slow.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.Shutdown(context.Background()) }()
	status := gracefulGoAway(t, fr, request, o.releaseAll)
	if err := <-stopped; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if status[1] != "200" || status[3] != "200" {
		t.Errorf("stream 1 (in flight) answered %q, stream 3 (before the PING ack) %q; want 200 each", status[1], status[3])
	}
	if n := o.requests.Load(); n != 2 {
		t.Errorf("origin received %d requests, want 2 (none after the final GOAWAY)", n)
	}
}

// An idle connection gets GOAWAY and is closed after idle_timeout; one
// that stops reading what it asked for is closed after write_timeout.
func TestH2IdleAndSlowReader(t *testing.T) {
	o := startAttackOrigin(t)
	cfg := baseConfig + `
limits:
  idle_timeout: 1s
  write_timeout: 1s
`
	s := startAccel(t, cfg, o.addr)
	t.Run("idle", func(t *testing.T) {
		a := dialAttacker(t, s)
		select {
		case code, ok := <-a.goaway:
			if ok {
				t.Fatalf("idle connection got GOAWAY %v", code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("idle connection still open 10s after idle_timeout (1s)")
		}
	})
	t.Run("slow_reader", func(t *testing.T) {
		c := dialAccel(t, s)
		io.WriteString(c, http2.ClientPreface)
		fr := http2.NewFramer(c, c)
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
		fr.WriteWindowUpdate(0, 1<<31-1-65535)
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		for id := uint32(1); id < 64; id += 2 {
			hb.Reset()
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/big"}} {
				enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
		}
		// 32 MiB asked for, nothing read: accel's writes block, and
		// write_timeout closes the connection. Reading now finds the end
		// well before the 32 MiB.
		time.Sleep(3 * time.Second)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection still open 10s after write_timeout (1s), %d bytes read", n)
		}
		if n >= 32<<20 {
			t.Errorf("read the whole %d bytes: accel never gave up on the slow reader", n)
		}
	})
}
