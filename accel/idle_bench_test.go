package accel

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// idleConns opens n keep-alive connections with dial, each answered once
// with the stored 1 KiB object of startHitOrigin (bench/client's idle mode
// in process), and returns them held open.
func idleConns(t testing.TB, dial func() (net.Conn, error), n int) []*rawClient {
	t.Helper()
	conns := make([]*rawClient, 0, n)
	t.Cleanup(func() {
		for _, rc := range conns {
			rc.c.Close()
		}
	})
	// One buffer for every client: the measure is of the server's side.
	buf := make([]byte, 64<<10)
	req := []byte("GET /idle HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: idle\r\n\r\n")
	for range n {
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(time.Minute))
		rc := &rawClient{c: c, req: req, buf: buf}
		conns = append(conns, rc)
		rc.do(t)
	}
	return conns
}

// inUse is the memory the Go runtime holds for live objects and stacks
// once a collection has run (twice: the first shrinks stacks that can).
func inUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// BenchmarkIdleConnMemory reports the memory each idle keep-alive
// connection costs (the heap and stacks it holds once answered, after a
// collection), as bytes/conn. The figure includes the client's own
// socket objects (a few hundred bytes) and, over TLS, the client's TLS
// state too. bench/README.md has the RSS of 10 000 such connections side
// by side with the peers. Run it with -benchtime=1x.
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 2000
	o := startHitOrigin(b, 1024)
	dir := b.TempDir()
	writeSelfSigned(b, "example.com", filepath.Join(dir, "c.pem"), filepath.Join(dir, "c.key"))
	cfg := strings.Replace(hitConfig, "listen:\n  - address: \"127.0.0.1:0\"\n",
		"listen:\n  - address: \"127.0.0.1:0\"\n  - address: \"127.0.0.1:0\"\n    tls:\n      certificates: [{cert: c.pem, key: c.key}]\n", 1)
	s := startAccelDir(b, cfg, o.addr, dir)
	for _, tc := range []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"cleartext", func() (net.Conn, error) { return net.Dial("tcp", s.Addrs()[0].String()) }},
		{"tls", func() (net.Conn, error) {
			return tls.Dial("tcp", s.Addrs()[1].String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			idleConns(b, tc.dial, 1)
			var per float64
			for b.Loop() {
				before := inUse()
				conns := idleConns(b, tc.dial, n)
				after := inUse()
				per = float64(int64(after)-int64(before)) / n
				for _, rc := range conns {
					rc.c.Close()
				}
			}
			b.ReportMetric(per, "bytes/conn")
		})
	}
}
