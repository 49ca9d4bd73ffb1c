package accel

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// idleConns opens n connections with open, each answered once, and
// returns them held open.
func idleConns(t testing.TB, open func() (net.Conn, error), n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := open()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	return conns
}

// h1Idle opens an HTTP/1.1 keep-alive connection with dial and has the
// stored 1 KiB object of startHitOrigin answered on it once (bench/client's
// idle mode). buf is the client's, shared: the measure is the server's.
func h1Idle(dial func() (net.Conn, error), buf []byte) func() (net.Conn, error) {
	req := []byte("GET /idle HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: idle\r\n\r\n")
	return func() (net.Conn, error) {
		c, err := dial()
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(time.Minute))
		if _, err := c.Write(req); err != nil {
			c.Close()
			return nil, err
		}
		n := 0
		for !bytes.HasSuffix(buf[:n], bytes.Repeat([]byte("a"), 64)) {
			m, err := c.Read(buf[n:])
			if err != nil {
				c.Close()
				return nil, err
			}
			n += m
		}
		return c, nil
	}
}

// h2cIdle is h1Idle over h2c (prior knowledge): the preface, SETTINGS, one
// GET on stream 1, read until the stream ends.
func h2cIdle(addr string, buf []byte) func() (net.Conn, error) {
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "bench.example"}, {":path", "/idle"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	req := append([]byte(http2.ClientPreface), 0, 0, 0, byte(http2.FrameSettings), 0, 0, 0, 0, 0)
	req = append(req, 0, byte(block.Len()>>8), byte(block.Len()), byte(http2.FrameHeaders),
		byte(http2.FlagHeadersEndStream|http2.FlagHeadersEndHeaders), 0, 0, 0, 1)
	req = append(req, block.Bytes()...)
	settingsAck := []byte{0, 0, 0, byte(http2.FrameSettings), byte(http2.FlagSettingsAck), 0, 0, 0, 0}
	return func() (net.Conn, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(time.Minute))
		if _, err := c.Write(req); err != nil {
			c.Close()
			return nil, err
		}
		for {
			if _, err := io.ReadFull(c, buf[:9]); err != nil {
				c.Close()
				return nil, err
			}
			length := int(buf[0])<<16 | int(buf[1])<<8 | int(buf[2])
			typ, flags, id := http2.FrameType(buf[3]), http2.Flags(buf[4]), binary.BigEndian.Uint32(buf[5:9])&(1<<31-1)
			if _, err := io.ReadFull(c, buf[:length]); err != nil {
				c.Close()
				return nil, err
			}
			switch {
			case typ == http2.FrameSettings && !flags.Has(http2.FlagSettingsAck):
				c.Write(settingsAck)
			case typ == http2.FrameGoAway || typ == http2.FrameRSTStream:
				c.Close()
				return nil, fmt.Errorf("%v frame", typ)
			case id == 1 && flags.Has(http2.FlagDataEndStream) && (typ == http2.FrameData || typ == http2.FrameHeaders):
				return c, nil
			}
		}
	}
}

// inUse is the memory the Go runtime holds for live objects and for
// stacks once a collection has run (twice: the first shrinks stacks that
// can).
func inUse() (heap, stack int64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse), int64(ms.StackInuse)
}

// BenchmarkIdleConnMemory reports the memory each idle keep-alive
// connection costs (the heap and stacks it holds once answered, after a
// collection), as bytes/conn, of which stack-bytes/conn are goroutine
// stacks (4 KiB is the least a goroutine parked in a read shrinks to):
// HTTP/1.1 in cleartext and over TLS, and h2c. The figure includes the client's own socket objects (a few hundred
// bytes) and, over TLS, the client's TLS state too. bench/README.md has
// the RSS of 10 000 such connections side by side with the peers. Run it
// with -benchtime=1x.
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 2000
	o := startHitOrigin(b, 1024)
	dir := b.TempDir()
	writeSelfSigned(b, "example.com", filepath.Join(dir, "c.pem"), filepath.Join(dir, "c.key"))
	cfg := strings.Replace(hitConfig, "listen:\n  - address: \"127.0.0.1:0\"\n",
		"listen:\n  - address: \"127.0.0.1:0\"\n  - address: \"127.0.0.1:0\"\n    tls:\n      certificates: [{cert: c.pem, key: c.key}]\n", 1)
	s := startAccelDir(b, cfg, o.addr, dir)
	buf := make([]byte, 64<<10)
	for _, tc := range []struct {
		name string
		open func() (net.Conn, error)
	}{
		{"h1", h1Idle(func() (net.Conn, error) { return net.Dial("tcp", s.Addrs()[0].String()) }, buf)},
		{"h1-tls", h1Idle(func() (net.Conn, error) {
			return tls.Dial("tcp", s.Addrs()[1].String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		}, buf)},
		{"h2c", h2cIdle(s.Addrs()[0].String(), buf)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			idleConns(b, tc.open, 1)
			var heap, stack int64
			for b.Loop() {
				heap0, stack0 := inUse()
				conns := idleConns(b, tc.open, n)
				heap1, stack1 := inUse()
				heap, stack = heap1-heap0, stack1-stack0
				for _, c := range conns {
					c.Close()
				}
			}
			b.ReportMetric(float64(heap+stack)/n, "bytes/conn")
			b.ReportMetric(float64(stack)/n, "stack-bytes/conn")
		})
	}
}
