package accel

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeSelfSigned writes a fresh certificate for name into certFile and
// keyFile and returns its DER bytes.
func writeSelfSigned(t testing.TB, name, certFile, keyFile string) []byte {
	t.Helper()
	c, err := SelfSigned(name)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
	return c.Certificate[0]
}

// servedCert connects over TLS and returns the certificate accel shows.
func servedCert(t *testing.T, addr string) []byte {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "example.com"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

// TestReloadListenersAndCertificate: a reload adds a listener and serves a
// renewed certificate to new connections, while a download that started on
// an old connection completes; a later reload removes the listener; a
// changed cache size is kept and named as needing a restart.
func TestReloadListenersAndCertificate(t *testing.T) {
	release := make(chan struct{})
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Length", "20000")
		w.Write([]byte(strings.Repeat("a", 10000)))
		w.(http.Flusher).Flush()
		<-release
		w.Write([]byte(strings.Repeat("b", 10000)))
	})
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "c.key")
	first := writeSelfSigned(t, "example.com", certFile, keyFile)
	extra := freeAddr(t)
	conf := func(listeners, memory string) string {
		return "listen:\n  - address: \"127.0.0.1:0\"\n    tls:\n      certificates: [{cert: c.pem, key: c.key}]\n" + listeners +
			"pools:\n  - name: app\n    servers:\n      - address: \"ORIGIN\"\nroutes:\n  - pool: app\ncache:\n  dir: DATADIR/cache\n  memory: " + memory +
			"\ntls_sessions:\n  dir: off\nadmin:\n  listen: \"off\"\n"
	}
	s := startAccelDir(t, conf("", "64MiB"), o.addr, dir)
	main := s.Addrs()[0].String()
	if got := servedCert(t, main); string(got) != string(first) {
		t.Fatal("not serving the first certificate")
	}

	// A download in flight on a TLS connection.
	c, err := tls.Dial("tcp", main, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: example.com\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 10000)
	if _, err := io.ReadFull(resp.Body, part); err != nil {
		t.Fatal(err)
	}

	// Renew the certificate, add a listener, grow the cache: reload.
	renewed := writeSelfSigned(t, "example.com", certFile, keyFile)
	os.WriteFile(filepath.Join(dir, "accel.yaml"), []byte(strings.NewReplacer("ORIGIN", o.addr, "DATADIR", dir).Replace(
		conf("  - address: \""+extra+"\"\n", "128MiB"))), 0o600)
	rep, err := s.ReloadReport()
	if err != nil {
		t.Fatal(err)
	}
	if !contains(rep.Applied, "listen "+extra+": added") || !contains(rep.Applied, "listen 127.0.0.1:0: certificates reloaded") {
		t.Errorf("applied: %q", rep.Applied)
	}
	if len(rep.NeedsRestart) != 1 || rep.NeedsRestart[0] != "cache.memory" {
		t.Errorf("needs restart: %q, want [cache.memory]", rep.NeedsRestart)
	}
	if got := servedCert(t, main); string(got) != string(renewed) {
		t.Error("a new connection after the reload does not get the renewed certificate")
	}
	if ans := rawExchange(t, extra, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(ans, "HTTP/1.1 200") || !strings.HasSuffix(ans, "ok") {
		t.Errorf("added listener answered %q", ans)
	}

	// The old connection's download completes, on the old certificate.
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || len(rest) != 10000 || strings.Trim(string(rest), "b") != "" {
		t.Fatalf("in-flight download: %d bytes, %v", len(rest), err)
	}
	if string(c.ConnectionState().PeerCertificates[0].Raw) != string(first) {
		t.Error("the old connection changed certificate")
	}

	// Remove the added listener.
	os.WriteFile(filepath.Join(dir, "accel.yaml"), []byte(strings.NewReplacer("ORIGIN", o.addr, "DATADIR", dir).Replace(conf("", "128MiB"))), 0o600)
	rep, err = s.ReloadReport()
	if err != nil || !contains(rep.Applied, "listen "+extra+": removed") {
		t.Fatalf("removing: %q, %v", rep.Applied, err)
	}
	if c, err := net.Dial("tcp", extra); err == nil {
		c.Close()
		t.Error("the removed listener still accepts")
	}
}

// TestCertificateFileChange: a renewed certificate is served without a
// reload once the watcher sees its files change.
func TestCertificateFileChange(t *testing.T) {
	o := startHTTPOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "c.key")
	writeSelfSigned(t, "example.com", certFile, keyFile)
	s := startAccelDir(t, "listen:\n  - address: \"127.0.0.1:0\"\n    tls:\n      certificates: [{cert: c.pem, key: c.key}]\n"+
		"pools:\n  - name: app\n    servers:\n      - address: \"ORIGIN\"\nroutes:\n  - pool: app\ncache:\n  dir: DATADIR/cache\ntls_sessions:\n  dir: off\nadmin:\n  listen: \"off\"\n", o.addr, dir)
	renewed := writeSelfSigned(t, "example.com", certFile, keyFile)
	// The watcher checks every 10s; the test runs a check itself, as the
	// ticker would, instead of waiting.
	cfg := s.state.Load().cfg
	s.reloadCerts(cfg, certFiles(cfg))
	if got := servedCert(t, s.Addrs()[0].String()); string(got) != string(renewed) {
		t.Error("the renewed certificate is not served")
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A reload that removes a listener sends the two-step GOAWAY to the HTTP/2
// connections it accepted: the stream in flight is answered, so is one
// opened before the PING ack, one opened after the final GOAWAY never
// reaches the origin, and the connection then ends.
func TestReloadRemovedListenerGoAway(t *testing.T) {
	o := startAttackOrigin(t)
	dir := t.TempDir()
	extra := freeAddr(t)
	conf := func(listeners string) string {
		return strings.NewReplacer("ORIGIN", o.addr, "DATADIR", dir).Replace(
			"listen:\n  - address: \"127.0.0.1:0\"\n" + listeners +
				"pools:\n  - name: app\n    servers:\n      - address: \"ORIGIN\"\nroutes:\n  - pool: app\n" +
				"cache:\n  dir: off\ntls_sessions:\n  dir: off\nadmin:\n  listen: \"off\"\n")
	}
	s := startAccelDir(t, conf("  - address: \""+extra+"\"\n"), o.addr, dir)

	h := dialH2(t, extra)
	fr := h.fr
	request := func(id uint32, path string) {
		h.request(id, ":method", "GET", ":scheme", "http", ":authority", "x", ":path", path)
	}
	request(1, "/slow")
	// The origin holds /slow until released: wait until it has it.
	for deadline := time.Now().Add(10 * time.Second); o.slow.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the origin never received /slow")
		}
	}

	os.WriteFile(filepath.Join(dir, "accel.yaml"), []byte(conf("")), 0o600)
	rep, err := s.ReloadReport()
	if err != nil {
		t.Fatal(err)
	}
	if !contains(rep.Applied, "listen "+extra+": removed") {
		t.Errorf("applied: %q", rep.Applied)
	}
	status := gracefulGoAway(t, fr, request, o.releaseAll)
	if status[1] != "200" || status[3] != "200" {
		t.Errorf("stream 1 (in flight) answered %q, stream 3 (before the PING ack) %q; want 200 each", status[1], status[3])
	}
	if n := o.requests.Load(); n != 2 {
		t.Errorf("origin received %d requests, want 2 (none after the final GOAWAY)", n)
	}
}
