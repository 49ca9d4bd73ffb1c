package accel

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accel-proxy/accel/internal/testproc"
)

// proxyConfig is one listener (TLS and cleartext) that takes PROXY
// headers from 127.0.0.1 only.
const proxyConfig = `
listen:
  - address: "127.0.0.1:0"
    tls:
      self_signed: true
    proxy_protocol: true
    proxy_from: ["127.0.0.1/32"]
limits:
  header_timeout: 2s
pools:
  - name: app
    servers:
      - address: "ORIGIN"
routes:
  - pool: app
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "off"
`

// logBuffer collects a server's log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// line returns the first log line containing every one of parts. It
// waits for it (at most 5s): a request's access line is written when its
// handler returns, which can be just after the client read the response.
func (l *logBuffer) line(parts ...string) string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ln := l.find(parts...); ln != "" || time.Now().After(deadline) {
			return ln
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *logBuffer) find(parts ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, ln := range strings.Split(l.b.String(), "\n") {
		for _, p := range parts {
			if !strings.Contains(ln, p) {
				continue next
			}
		}
		return ln
	}
	return ""
}

func proxyV1(src netip.AddrPort) []byte {
	fam := "TCP4"
	dst := "127.0.0.1"
	if src.Addr().Is6() {
		fam, dst = "TCP6", "::1"
	}
	return []byte("PROXY " + fam + " " + src.Addr().String() + " " + dst + " " + strconv.Itoa(int(src.Port())) + " 443\r\n")
}

// proxyV2 writes a PROXY command for src with one TLV after the
// addresses, as AWS and HAProxy send (which must be skipped).
func proxyV2(src netip.AddrPort) []byte {
	b := []byte(v2Signature)
	var addrs []byte
	fam := byte(0x11)
	if src.Addr().Is4() {
		a := src.Addr().As4()
		addrs = append(append(addrs, a[:]...), 127, 0, 0, 1)
	} else {
		fam = 0x21
		a, d := src.Addr().As16(), netip.IPv6Loopback().As16()
		addrs = append(append(addrs, a[:]...), d[:]...)
	}
	addrs = binary.BigEndian.AppendUint16(addrs, src.Port())
	addrs = binary.BigEndian.AppendUint16(addrs, 443)
	addrs = append(addrs, 0x04, 0x00, 0x02, 'h', 'i') // PP2_TYPE_NOOP
	b = append(b, 0x21, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(len(addrs)))
	return append(b, addrs...)
}

// headFor returns the head the origin received for path.
func headFor(o *origin, path string) string {
	heads, _ := o.received()
	for _, h := range heads {
		if strings.Contains(h, " "+path+" ") {
			return h
		}
	}
	return ""
}

// proxyClient speaks mode to addr, writing hdr on each new connection
// first, as a balancer would; local, when set, is the source address.
func proxyClient(t *testing.T, mode string, hdr []byte, local string) *http.Client {
	c := client(t, mode)
	tr := c.Transport.(*http.Transport)
	d := &net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil || hdr == nil {
			return nc, err
		}
		if _, err := nc.Write(hdr); err != nil {
			nc.Close()
			return nil, err
		}
		return nc, nil
	}
	return c
}

// TestProxyProtocolClientAddress sends v1 and v2 headers (IPv4 and IPv6)
// ahead of each protocol the port speaks: TLS and the h2c preface come
// after the header. The origin's X-Forwarded-For and the access log carry
// the header's client, never the balancer's address.
func TestProxyProtocolClientAddress(t *testing.T) {
	o := startOrigin(t)
	var logs logBuffer
	s := startAccelLog(t, proxyConfig, o.addr(), t.TempDir(), &logs)
	clients := []netip.AddrPort{
		netip.MustParseAddrPort("203.0.113.7:40001"),
		netip.MustParseAddrPort("[2001:db8::5]:40002"),
	}
	for _, mode := range modes {
		for v, enc := range []func(netip.AddrPort) []byte{proxyV1, proxyV2} {
			for _, src := range clients {
				path := "/pp/" + mode + "/v" + strconv.Itoa(v+1) + "/" + strings.ReplaceAll(src.Addr().String(), ":", "-")
				resp, err := proxyClient(t, mode, enc(src), "").Get(baseURL(s, mode) + path)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("%s: status %d", path, resp.StatusCode)
				}
				if h := headFor(o, path); !strings.Contains(h, "\r\nX-Forwarded-For: "+src.Addr().String()+"\r\n") {
					t.Errorf("%s: origin received\n%s", path, h)
				}
				if logs.line(`"msg":"access"`, `"path":"`+path+`"`, `"client":"`+src.Addr().String()+`"`) == "" {
					t.Errorf("%s: no access log line with client=%s", path, src.Addr())
				}
			}
		}
	}
}

// TestProxyProtocolSplitHeader: a header that arrives a byte at a time,
// then the request in the same write as its last byte, is read whole.
func TestProxyProtocolSplitHeader(t *testing.T) {
	o := startOrigin(t)
	s := startAccel(t, proxyConfig, o.addr())
	c := dialAccel(t, s)
	hdr := proxyV2(netip.MustParseAddrPort("192.0.2.44:5000"))
	for _, b := range hdr[:len(hdr)-1] {
		c.Write([]byte{b})
	}
	io.WriteString(c, string(hdr[len(hdr)-1:])+"GET /split HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	out, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(out), "HTTP/1.1 200 ") {
		t.Fatalf("answer: %q", out)
	}
	if h := headFor(o, "/split"); !strings.Contains(h, "X-Forwarded-For: 192.0.2.44\r\n") {
		t.Errorf("origin received\n%s", h)
	}
}

// TestProxyProtocolRefused: a header from outside proxy_from, a malformed
// or missing one, and one that never completes all close the connection
// without an answer, and nothing reaches the origin.
func TestProxyProtocolRefused(t *testing.T) {
	o := startOrigin(t)
	s := startAccel(t, proxyConfig, o.addr())
	req := "GET /refused HTTP/1.1\r\nHost: a\r\n\r\n"
	good := string(proxyV1(netip.MustParseAddrPort("203.0.113.7:1000")))
	v2 := proxyV2(netip.MustParseAddrPort("203.0.113.7:1000"))
	badVersion := append([]byte(nil), v2...)
	badVersion[12] = 0x31
	badFamily := append([]byte(nil), v2...)
	badFamily[13] = 0x31 // AF_UNIX: not a client address
	short := append([]byte(nil), v2...)
	binary.BigEndian.PutUint16(short[14:], 4) // shorter than IPv4 addresses
	cases := []struct {
		name, local, send string
	}{
		{"from a network not in proxy_from", "127.0.0.2", good + req},
		{"no header", "", req},
		{"v1 missing ports", "", "PROXY TCP4 203.0.113.7 127.0.0.1\r\n" + req},
		{"v1 family mismatch", "", "PROXY TCP4 2001:db8::1 127.0.0.1 1 2\r\n" + req},
		{"v1 port leading zero", "", "PROXY TCP4 203.0.113.7 127.0.0.1 0080 443\r\n" + req},
		{"v1 bare LF", "", "PROXY TCP4 203.0.113.7 127.0.0.1 1 2\n" + req},
		{"v1 too long", "", "PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n" + req},
		{"v2 bad version", "", string(badVersion) + req},
		{"v2 unix family", "", string(badFamily) + req},
		{"v2 short addresses", "", string(short) + req},
		{"incomplete header until the deadline", "", good[:10]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := net.Dialer{}
			if tc.local != "" {
				d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(tc.local)}
			}
			c, err := d.Dial("tcp", s.Addrs()[0].String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, tc.send)
			out, err := io.ReadAll(c)
			if len(out) > 0 || isTimeout(err) {
				t.Errorf("answered %q, err %v; want the connection closed", out, err)
			}
		})
	}
	if n := o.requests.Load(); n != 0 {
		t.Errorf("origin received %d requests", n)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestProxyProtocolFromHAProxy puts Debian's haproxy in TCP mode in front
// of accel with send-proxy-v2: clients connecting to haproxy from
// 127.0.0.5 are seen as 127.0.0.5 in every protocol mode, TLS included
// (haproxy passes the handshake through).
func TestProxyProtocolFromHAProxy(t *testing.T) {
	o := startOrigin(t)
	var logs logBuffer
	s := startAccelLog(t, proxyConfig, o.addr(), t.TempDir(), &logs)
	front := net.JoinHostPort("127.0.0.1", strconv.Itoa(testproc.FreePort(t)))
	testproc.HAProxy(t, `
global
  maxconn 100
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind `+front+`
  default_backend accel
backend accel
  server a `+s.Addrs()[0].String()+` send-proxy-v2
`, front)
	for _, mode := range modes {
		path := "/haproxy/" + mode
		scheme := "http"
		if mode == "h1tls" || mode == "h2" {
			scheme = "https"
		}
		resp, err := proxyClient(t, mode, nil, "127.0.0.5").Get(scheme + "://" + front + path)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", mode, resp.StatusCode)
		}
		if mode == "h2" || mode == "h2c" {
			if resp.ProtoMajor != 2 {
				t.Errorf("%s: answered over %s", mode, resp.Proto)
			}
		}
		if h := headFor(o, path); !strings.Contains(h, "\r\nX-Forwarded-For: 127.0.0.5\r\n") {
			t.Errorf("%s: origin received\n%s", mode, h)
		}
		if logs.line(`"msg":"access"`, `"path":"`+path+`"`, `"client":"127.0.0.5"`) == "" {
			t.Errorf("%s: no access log line with client=127.0.0.5", mode)
		}
	}
}

// TestProxyProtocolPurgeFrom: purge_from judges the client the PROXY
// header names, not the balancer that connects: a PURGE relayed for a
// client outside purge_from is refused with 403 and purges nothing; the
// same PURGE relayed for a client inside it purges, and the next request
// asks the origin again.
func TestProxyProtocolPurgeFrom(t *testing.T) {
	o := startCountingOrigin(t)
	cfg := strings.Replace(proxyConfig, "  - pool: app\n", "  - pool: app\n    cache: {enabled: true}\n    purge_from: [\"203.0.113.0/24\"]\n", 1)
	s := startAccel(t, cfg, o.addr())
	do := func(method string, client netip.AddrPort) int {
		t.Helper()
		req, _ := http.NewRequest(method, baseURL(s, "h1")+"/purgeable", nil)
		resp, err := proxyClient(t, "h1", proxyV2(client), "").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	outside := netip.MustParseAddrPort("198.51.100.9:4000")
	inside := netip.MustParseAddrPort("203.0.113.7:4000")
	do("GET", outside)
	do("GET", outside)
	if n := o.hits("/purgeable"); n != 1 {
		t.Fatalf("origin asked %d times before the purge, want 1 (then a hit)", n)
	}
	if st := do("PURGE", outside); st != 403 {
		t.Errorf("PURGE for %s: %d, want 403", outside.Addr(), st)
	}
	do("GET", outside)
	if n := o.hits("/purgeable"); n != 1 {
		t.Errorf("a refused PURGE purged: origin asked %d times", n)
	}
	if st := do("PURGE", inside); st != 200 {
		t.Errorf("PURGE for %s: %d, want 200", inside.Addr(), st)
	}
	do("GET", outside)
	if n := o.hits("/purgeable"); n != 2 {
		t.Errorf("after the PURGE: origin asked %d times, want 2", n)
	}
}

// FuzzProxyHeader: whatever the bytes, the parser either asks for more,
// refuses, or returns a length within them, and never panics.
func FuzzProxyHeader(f *testing.F) {
	f.Add(proxyV1(netip.MustParseAddrPort("203.0.113.7:1")))   // v1 TCP4
	f.Add(proxyV2(netip.MustParseAddrPort("[2001:db8::5]:2"))) // v2 TCP6 with a TLV
	f.Add([]byte("PROXY UNKNOWN\r\n"))                         // v1 health check
	f.Add([]byte(v2Signature + "\x20\x00\x00\x00"))            // v2 LOCAL
	f.Fuzz(func(t *testing.T, b []byte) {
		_, n, err := parseProxyHeader(b)
		if err == nil && (n <= 0 || n > len(b)) {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
	})
}
