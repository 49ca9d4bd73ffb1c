package accel

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testCA is a certificate authority made by the test, and its PEM file.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), name+".pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file}
}

// leaf issues a server certificate for 127.0.0.1 and the name origin.test.
func (ca *testCA) leaf(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "origin.test"},
		DNSNames:     []string{"origin.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// client issues a client certificate for cn and writes it and its key
// as PEM files, as an operator gives them to a pool (tls.cert, tls.key).
func (ca *testCA) client(t *testing.T, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// tlsOrigin is a loopback HTTPS origin that records, per request, the SNI
// and whether its connection resumed a session; /close answers with
// Connection: close so that the next request needs a new connection.
type tlsOrigin struct {
	addr    string
	accepts atomic.Int64
	mu      sync.Mutex
	seen    []string // "path sni resumed=bool"
}

func startTLSOrigin(t *testing.T, ca *testCA) *tlsOrigin {
	return startTLSOriginAuth(t, ca, nil)
}

// startTLSOriginAuth is startTLSOrigin requiring a client certificate
// that clientCA verifies, when clientCA is not nil; each request records
// the client certificate's name as "client=CN".
func startTLSOriginAuth(t *testing.T, ca, clientCA *testCA) *tlsOrigin {
	t.Helper()
	o := &tlsOrigin{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.addr = ln.Addr().String()
	tc := &tls.Config{Certificates: []tls.Certificate{ca.leaf(t)}}
	if clientCA != nil {
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		tc.ClientCAs = x509.NewCertPool()
		tc.ClientCAs.AddCert(clientCA.cert)
	}
	srv := &http.Server{
		TLSConfig: tc,
		ErrorLog:  log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen := r.URL.Path + " sni=" + r.TLS.ServerName + " resumed=" + map[bool]string{true: "true", false: "false"}[r.TLS.DidResume]
			if certs := r.TLS.PeerCertificates; len(certs) > 0 {
				seen += " client=" + certs[0].Subject.CommonName
			}
			o.mu.Lock()
			o.seen = append(o.seen, seen)
			o.mu.Unlock()
			if r.URL.Path == "/close" {
				w.Header().Set("Connection", "close")
			}
			io.WriteString(w, "secure "+r.URL.Path)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				o.accepts.Add(1)
			}
		},
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return o
}

func (o *tlsOrigin) requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.seen...)
}

const tlsOriginConfig = `
listen:
  - address: "127.0.0.1:0"
pools:
  - name: secure
    servers:
      - address: "https://ORIGIN"
    tls:
      ca_file: CAFILE
      server_name: SNI
routes:
  - pool: secure
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "off"
`

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := client(t, "h1").Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTLSOrigin: an https:// server verified against a CA file, with SNI,
// kept-alive connections, and a new connection that resumes the session
// (seen by the origin's own ConnectionState).
func TestTLSOrigin(t *testing.T) {
	ca := newTestCA(t, "origin-ca")
	o := startTLSOrigin(t, ca)
	cfg := strings.NewReplacer("CAFILE", ca.file, "SNI", "origin.test").Replace(tlsOriginConfig)
	s := startAccel(t, cfg, o.addr)
	base := "http://" + s.Addrs()[0].String()
	for _, p := range []string{"/a", "/b", "/close", "/c"} {
		if st, body := get(t, base+p); st != 200 || body != "secure "+p {
			t.Fatalf("%s: %d %q", p, st, body)
		}
	}
	want := []string{
		"/a sni=origin.test resumed=false",
		"/b sni=origin.test resumed=false", // the same kept-alive connection
		"/close sni=origin.test resumed=false",
		"/c sni=origin.test resumed=true", // a new connection resumes
	}
	if got := o.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("origin saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := o.accepts.Load(); n != 2 {
		t.Errorf("origin accepted %d connections, want 2 (keep-alive, then one after the close)", n)
	}
}

// TestTLSOriginWrongCA: a server whose certificate the CA file does not
// vouch for gets no request; the client gets a 502 and the log names the
// verification error.
func TestTLSOriginWrongCA(t *testing.T) {
	o := startTLSOrigin(t, newTestCA(t, "origin-ca"))
	other := newTestCA(t, "other-ca")
	cfg := strings.NewReplacer("CAFILE", other.file, "SNI", "origin.test").Replace(tlsOriginConfig)
	var logs logBuffer
	s := startAccelLog(t, cfg, o.addr, t.TempDir(), &logs)
	st, body := get(t, "http://"+s.Addrs()[0].String()+"/x")
	if st != 502 || !strings.Contains(body, "origin could not be reached") {
		t.Fatalf("answer %d %q, want 502", st, body)
	}
	if len(o.requests()) != 0 {
		t.Errorf("origin served %v", o.requests())
	}
	if logs.line(`"status":502`, "certificate signed by unknown authority") == "" {
		t.Errorf("no log line naming the verification error:\n%s", logs.b.String())
	}
}

const mtlsOriginConfig = `
listen:
  - address: "127.0.0.1:0"
pools:
  - name: secure
    servers:
      - address: "https://ORIGIN"
    tls:
      ca_file: CAFILE
      server_name: origin.test
CLIENTCERT
routes:
  - pool: secure
cache:
  dir: DATADIR/cache
tls_sessions:
  dir: off
admin:
  listen: "off"
`

// TestTLSOriginClientCert: an origin that requires a client certificate
// and verifies it against its own CA serves accel when the pool presents
// one that CA issued (the origin sees its name); without one, or with one
// from another CA, the client gets a 502, the origin serves nothing, and
// the request's log line says the origin required a certificate.
func TestTLSOriginClientCert(t *testing.T) {
	serverCA, clientCA := newTestCA(t, "origin-ca"), newTestCA(t, "client-ca")
	o := startTLSOriginAuth(t, serverCA, clientCA)
	cert, key := clientCA.client(t, "accel-edge")
	otherCert, otherKey := newTestCA(t, "other-ca").client(t, "impostor")
	base := strings.NewReplacer("CAFILE", serverCA.file).Replace(mtlsOriginConfig)
	withCert := func(cert, key string) string {
		return strings.Replace(base, "CLIENTCERT", "      cert: "+cert+"\n      key: "+key, 1)
	}

	s := startAccel(t, withCert(cert, key), o.addr)
	if st, body := get(t, "http://"+s.Addrs()[0].String()+"/mtls"); st != 200 || body != "secure /mtls" {
		t.Fatalf("with the client certificate: %d %q", st, body)
	}
	if got := o.requests(); len(got) != 1 || got[0] != "/mtls sni=origin.test resumed=false client=accel-edge" {
		t.Fatalf("origin saw %q", got)
	}

	for name, cfg := range map[string]string{
		"no certificate":              strings.Replace(base, "CLIENTCERT", "", 1),
		"a certificate of another CA": withCert(otherCert, otherKey),
	} {
		t.Run(name, func(t *testing.T) {
			var logs logBuffer
			s := startAccelLog(t, cfg, o.addr, t.TempDir(), &logs)
			st, body := get(t, "http://"+s.Addrs()[0].String()+"/refused")
			if st != 502 || !strings.Contains(body, "origin could not be reached") {
				t.Errorf("answer %d %q, want 502", st, body)
			}
			// Go's client sends none of its certificates that the origin's
			// list of acceptable CAs does not name: both cases are refused
			// as "certificate required".
			if logs.line(`"path":"/refused"`, `"status":502`, `"err":"upstream `+o.addr+`: remote error: tls: certificate required"`) == "" {
				t.Errorf("no log line naming the refused certificate:\n%s", logs.b.String())
			}
		})
	}
	if got := o.requests(); len(got) != 1 {
		t.Errorf("origin served requests without a valid client certificate: %q", got)
	}
}

// A connection whose TLS handshake takes longer than first_byte_timeout
// (within connect_timeout) still carries its request: the wait for the
// answer starts once the connection is up, not when the try began.
func TestSlowOriginHandshakeNotFirstByteTimeout(t *testing.T) {
	ca := newTestCA(t, "origin-ca")
	leaf := ca.leaf(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			time.Sleep(1500 * time.Millisecond) // the slow handshake under test
			return &leaf, nil
		}},
		ErrorLog: log.New(io.Discard, "", 0),
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secure "+r.URL.Path) }),
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	cfg := strings.NewReplacer("CAFILE", ca.file, "SNI", "origin.test").Replace(tlsOriginConfig)
	cfg = strings.Replace(cfg, `      - address: "https://ORIGIN"`, `      - address: "https://ORIGIN"
    first_byte_timeout: 1s
    connect_timeout: 10s`, 1)
	s := startAccel(t, cfg, ln.Addr().String())
	if st, body := get(t, "http://"+s.Addrs()[0].String()+"/x"); st != 200 || body != "secure /x" {
		t.Fatalf("answer %d %q, want 200 after a handshake of 1.5s (first_byte_timeout 1s)", st, body)
	}
}
