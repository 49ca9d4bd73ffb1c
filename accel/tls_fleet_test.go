package accel

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accel-proxy/accel/internal/testproc"
)

// fleetCert writes one certificate for the whole fleet, as a real fleet
// behind one name has, and returns its files and a pool trusting it.
func fleetCert(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	cert, err := SelfSigned("accel.test", "127.0.0.1", "127.0.0.2", "127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	roots = x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	return certFile, keyFile, roots
}

// startFleet runs three accel instances on three loopback addresses that
// share the TLS session settings given as YAML.
func startFleet(t *testing.T, o *origin, sessions string) (addrs []string, roots *x509.CertPool) {
	t.Helper()
	certFile, keyFile, roots := fleetCert(t)
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		// The store timeout waits for the store's answer: the 50ms
		// default is missed on a loaded machine, giving a full handshake
		// the test would count as a failed resumption.
		cfg := fmt.Sprintf(`
listen:
  - address: "%s:0"
    tls:
      certificates:
        - cert: %s
          key: %s
pools:
  - name: app
    servers:
      - address: "ORIGIN"
routes:
  - pool: app
cache:
  dir: DATADIR/cache
admin:
  listen: "off"
tls_sessions:
  timeout: 10s
%s
`, ip, certFile, keyFile, sessions)
		s := startAccel(t, cfg, o.addr())
		addrs = append(addrs, s.Addrs()[0].String())
	}
	return addrs, roots
}

// handshake connects with the shared client session cache, makes one
// request (so that a TLS 1.3 ticket sent after the handshake is read) and
// reports whether the session was resumed.
func handshake(t *testing.T, addr string, cfg *tls.Config) bool {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /tls HTTP/1.1\r\nHost: accel.test\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("request via %s: %v", addr, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return c.ConnectionState().DidResume
}

func clientConfig(roots *x509.CertPool, version uint16) *tls.Config {
	return &tls.Config{
		ServerName:         "accel.test",
		RootCAs:            roots,
		MinVersion:         version,
		MaxVersion:         version,
		NextProtos:         []string{"http/1.1"},
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}
}

// TestFleetResumption: a client that handshakes with instance A resumes on
// B and C, 100 of 100 reconnects, for TLS 1.2 and 1.3, with every shared
// store backend.
func TestFleetResumption(t *testing.T) {
	backends := map[string]func(t *testing.T) string{
		"redis": func(t *testing.T) string {
			return "  backend: redis\n  addrs: [\"" + testproc.Redis(t).Addr + "\"]\n"
		},
		"redis-ring": func(t *testing.T) string {
			a, b := testproc.Redis(t), testproc.Redis(t)
			return "  backend: redis\n  addrs: [\"" + a.Addr + "\", \"" + b.Addr + "\"]\n"
		},
		"memcached": func(t *testing.T) string {
			return "  backend: memcached\n  addrs: [\"" + testproc.Memcached(t).Addr + "\"]\n"
		},
		"stateless-redis": func(t *testing.T) string {
			return "  mode: stateless\n  backend: redis\n  addrs: [\"" + testproc.Redis(t).Addr + "\"]\n"
		},
	}
	for _, name := range []string{"redis", "redis-ring", "memcached", "stateless-redis"} {
		t.Run(name, func(t *testing.T) {
			o := startOrigin(t)
			addrs, roots := startFleet(t, o, backends[name](t))
			for _, v := range []struct {
				name    string
				version uint16
			}{{"tls1.2", tls.VersionTLS12}, {"tls1.3", tls.VersionTLS13}} {
				t.Run(v.name, func(t *testing.T) {
					cfg := clientConfig(roots, v.version)
					if handshake(t, addrs[0], cfg) {
						t.Fatal("first handshake resumed a session it never had")
					}
					var failed []string
					for i := 0; i < 100; i++ {
						addr := addrs[1+i%2]
						if !handshake(t, addr, cfg) {
							failed = append(failed, fmt.Sprintf("#%d on %s", i, addr))
						}
					}
					if len(failed) > 0 {
						t.Errorf("%d of 100 reconnects did not resume: %s", len(failed), strings.Join(failed, ", "))
					}
				})
			}
		})
	}
}

// countingConn counts the server's writes to the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestHandshakeFlightWrites: the server's handshake flight leaves in one
// write, not one per message: a client on a long path waits one round trip
// for it, not several segments' worth of ACK clocking.
func TestHandshakeFlightWrites(t *testing.T) {
	o := startOrigin(t)
	certFile, keyFile, roots := fleetCert(t)
	cfg := strings.Replace(baseConfig, "      self_signed: true\n",
		"      certificates:\n        - cert: "+certFile+"\n          key: "+keyFile+"\n", 1)
	s := startAccel(t, cfg, o.addr())
	l := s.listeners[0]
	for _, v := range []struct {
		name    string
		version uint16
		// flights the server sends during a full handshake: TLS 1.3 one
		// (ServerHello to Finished, session ticket with it), TLS 1.2 two
		// (ServerHello to ServerHelloDone; ticket, CCS and Finished).
		want int32
	}{{"tls1.3", tls.VersionTLS13, 1}, {"tls1.2", tls.VersionTLS12, 2}} {
		t.Run(v.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			served := make(chan *countingConn, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				cc := &countingConn{Conn: c}
				served <- cc
				s.serveConn(l, cc)
			}()
			cfg := clientConfig(roots, v.version)
			c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			cc := <-served
			// The handshake is complete on both sides once the client has
			// it; nothing else was asked of the server yet.
			got := cc.writes.Load()
			c.Close()
			if got > v.want {
				t.Errorf("server wrote its handshake in %d writes, want %d", got, v.want)
			}
		})
	}
}

// TestFleetStatelessRotation: three instances rotate their shared ticket
// keys every 2 s while clients reconnect across them for 10 s; every
// reconnect resumes.
func TestFleetStatelessRotation(t *testing.T) {
	o := startOrigin(t)
	redis := testproc.Redis(t)
	addrs, roots := startFleet(t, o, "  mode: stateless\n  rotation_period: 2s\n  backend: redis\n  addrs: [\""+redis.Addr+"\"]\n")
	clients := []*tls.Config{clientConfig(roots, tls.VersionTLS12), clientConfig(roots, tls.VersionTLS13)}
	for _, c := range clients {
		if handshake(t, addrs[0], c) {
			t.Fatal("first handshake resumed")
		}
	}
	end := time.Now().Add(10 * time.Second)
	n, failed := 0, 0
	for i := 0; time.Now().Before(end) && i < 5000; i++ {
		if !handshake(t, addrs[i%3], clients[i%2]) {
			failed++
			t.Errorf("reconnect %d to %s (client %d) at %s did not resume", i, addrs[i%3], i%2, time.Now().Format("15:04:05.000"))
		}
		n++
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d reconnects across 5 key rotations, %d full handshakes", n, failed)
}

// TestCertificatesBySNI: one listener, an ECDSA and an RSA certificate for
// different names: each client gets the one for its name; TLS 1.1 is
// refused.
func TestCertificatesBySNI(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, cert tls.Certificate) (string, string) {
		keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		c, k := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
		os.WriteFile(c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
		os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
		return c, k
	}
	ecCert, err := SelfSigned("ec.test")
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), DNSNames: []string{"rsa.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rsaKey.PublicKey, rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	ecC, ecK := write("ec", ecCert)
	rsaC, rsaK := write("rsa", tls.Certificate{Certificate: [][]byte{der}, PrivateKey: rsaKey})
	o := startOrigin(t)
	cfg := strings.Replace(baseConfig, "      self_signed: true\n",
		"      certificates:\n        - {cert: "+ecC+", key: "+ecK+"}\n        - {cert: "+rsaC+", key: "+rsaK+"}\n", 1)
	s := startAccel(t, cfg, o.addr())
	addr := s.Addrs()[0].String()
	for name, want := range map[string]x509.PublicKeyAlgorithm{"ec.test": x509.ECDSA, "rsa.test": x509.RSA} {
		c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		leaf := c.ConnectionState().PeerCertificates[0]
		c.Close()
		if leaf.PublicKeyAlgorithm != want || leaf.DNSNames[0] != name {
			t.Errorf("%s got a %v certificate for %v", name, leaf.PublicKeyAlgorithm, leaf.DNSNames)
		}
	}
	if c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
}

// TestSessionStoreDown: with Redis stopped, handshakes still succeed (in
// full), the store error counter in /metrics grows, and resumption comes
// back once Redis is back on its port.
func TestSessionStoreDown(t *testing.T) {
	o := startOrigin(t)
	redis := testproc.Redis(t)
	certFile, keyFile, roots := fleetCert(t)
	s := startAccel(t, `
listen:
  - address: "127.0.0.1:0"
    tls:
      certificates:
        - {cert: `+certFile+`, key: `+keyFile+`}
pools:
  - name: app
    servers:
      - address: "ORIGIN"
routes:
  - pool: app
cache:
  dir: "off"
admin:
  listen: "127.0.0.1:0"
  token: "`+adminToken+`"
tls_sessions:
  backend: redis
  addrs: ["`+redis.Addr+`"]
`, o.addr())
	addr := s.Addrs()[0].String()
	storeErrors := func() float64 {
		_, body := adminDo(t, s, adminToken, "GET", "/metrics", nil)
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, "accel_tls_session_store_errors_total "); ok {
				var f float64
				fmt.Sscan(v, &f)
				return f
			}
		}
		t.Fatal("no accel_tls_session_store_errors_total in /metrics")
		return 0
	}
	cfg := clientConfig(roots, tls.VersionTLS13)
	handshake(t, addr, cfg)
	if !handshake(t, addr, cfg) {
		t.Fatal("no resumption with Redis up")
	}
	redis.Stop()
	for i := 0; i < 5; i++ {
		if handshake(t, addr, clientConfig(roots, tls.VersionTLS13)) {
			t.Error("a new client resumed with Redis down")
		}
	}
	if n := storeErrors(); n == 0 {
		t.Error("store errors not counted while Redis is down")
	}
	redis.Start()
	cfg = clientConfig(roots, tls.VersionTLS13)
	for i := 0; ; i++ {
		handshake(t, addr, cfg)
		if handshake(t, addr, cfg) {
			return
		}
		if i == 100 {
			t.Fatal("resumption did not come back after Redis restarted")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
