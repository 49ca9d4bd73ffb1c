// Command client drives the benchmark scenarios that wrk and h2load cannot
// (bench/run.sh): TLS handshakes per second, a burst of concurrent cold
// requests for one URL, and many idle keep-alive connections.
//
//	client handshake -addr 127.0.0.1:24443 -tls 1.3 -resume -c 16 -d 6s
//	client burst -addr 127.0.0.1:24080 -path /slow/x -n 200
//	client idle -addr 127.0.0.1:24080 -n 10000 -hold 10s
//
// Each prints one line of key=value results for run.sh to read.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: client handshake|burst|idle [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:24080", "server `host:port`")
	var run func() error
	switch os.Args[1] {
	case "handshake":
		version := fs.String("tls", "1.3", "TLS `version`: 1.2 or 1.3")
		resume := fs.Bool("resume", false, "resume sessions (tickets) instead of full handshakes")
		conns := fs.Int("c", 16, "concurrent connections")
		dur := fs.Duration("d", 5*time.Second, "duration")
		run = func() error { return handshakes(*addr, *version, *resume, *conns, *dur) }
	case "burst":
		path := fs.String("path", "/slow/x", "path every request asks for")
		n := fs.Int("n", 200, "concurrent requests")
		run = func() error { return burst(*addr, *path, *n) }
	case "idle":
		n := fs.Int("n", 10000, "connections")
		hold := fs.Duration("hold", 10*time.Second, "how long to keep them idle")
		run = func() error { return idle(*addr, *n, *hold) }
	default:
		fmt.Fprintf(os.Stderr, "client: unknown scenario %q\n", os.Args[1])
		os.Exit(2)
	}
	fs.Parse(os.Args[2:])
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

// get sends one GET for path on c and reads the whole response; close asks
// the server to close afterwards, so that the server side holds TIME_WAIT
// and a long handshake run does not exhaust the client's ports.
func get(c net.Conn, br *bufio.Reader, path string, close bool) error {
	// Host as curl and wrk send it, so that the URLs run.sh warmed are hits.
	req := "GET " + path + " HTTP/1.1\r\nHost: " + c.RemoteAddr().String() + "\r\n"
	if close {
		req += "Connection: close\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}

// handshakes opens connections in conns loops for dur, each a TLS
// handshake plus one request for /1k (with TLS 1.3 the client reads the
// session tickets only once it reads application data; the request makes
// every system send them the same way). Key exchange by X25519, not the
// post-quantum hybrid Go prefers and not every server compared offers;
// P-256 is listed too because OpenSSL's TLS 1.2 checks that the client
// supports the curve of the server's ECDSA certificate.
func handshakes(addr, version string, resume bool, conns int, dur time.Duration) error {
	cfg := &tls.Config{
		ServerName:         "bench.local",
		InsecureSkipVerify: true, // a throwaway certificate; the server's cost is what is measured
		CurvePreferences:   []tls.CurveID{tls.X25519, tls.CurveP256},
		MinVersion:         tls.VersionTLS12,
		MaxVersion:         tls.VersionTLS12,
	}
	switch version {
	case "1.2":
	case "1.3":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	default:
		return fmt.Errorf("-tls %q: want 1.2 or 1.3", version)
	}
	one := func(cfg *tls.Config) (resumed bool, err error) {
		raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return false, err
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		c := tls.Client(raw, cfg)
		if err := c.Handshake(); err != nil {
			return false, err
		}
		err = get(c, bufio.NewReader(c), "/1k", true)
		return c.ConnectionState().DidResume, err
	}
	var done, resumed, failed atomic.Int64
	var firstErr atomic.Value
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	for range conns {
		cfg := cfg.Clone()
		if resume {
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		}
		wg.Go(func() {
			if resume {
				// The first handshake of each loop is a full one that
				// fills its session cache; it is not counted.
				if _, err := one(cfg); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
			for time.Now().Before(stop) {
				r, err := one(cfg)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				done.Add(1)
				if r {
					resumed.Add(1)
				}
			}
		})
	}
	start := time.Now()
	wg.Wait()
	el := time.Since(start).Seconds()
	fmt.Printf("requests=%d rate=%.0f resumed=%d errors=%d", done.Load(), float64(done.Load())/el, resumed.Load(), failed.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Printf(" first_error=%q", e)
	}
	fmt.Println()
	return nil
}

// burst opens n connections, then sends one GET for path on all of them at
// once: cold requests for one URL arriving together, for the origin to
// count how many of them the system let through.
func burst(addr, path string, n int) error {
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		conns[i] = c
	}
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, c := range conns {
		wg.Go(func() {
			<-start
			if err := get(c, bufio.NewReader(c), path, true); err != nil {
				failed.Add(1)
				return
			}
			ok.Add(1)
		})
	}
	t := time.Now()
	close(start)
	wg.Wait()
	fmt.Printf("ok=%d errors=%d seconds=%.2f\n", ok.Load(), failed.Load(), time.Since(t).Seconds())
	return nil
}

// idle opens n keep-alive connections, each answered once, prints
// "ready", keeps them idle for hold (run.sh reads the server's memory
// then), and finally asks again on each to count those still open.
func idle(addr string, n int, hold time.Duration) error {
	type conn struct {
		c  net.Conn
		br *bufio.Reader
	}
	conns := make([]conn, n)
	var failed atomic.Int64
	var firstErr atomic.Value
	open := func(i int) {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err == nil {
			// A server at its connection limit leaves the connection in
			// its listen backlog, unanswered: count it after a while.
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReaderSize(c, 4096)
			if err = get(c, br, "/1k", false); err == nil {
				conns[i] = conn{c, br}
				return
			}
			c.Close()
		}
		failed.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	// A bounded number of dialers: a burst of 10 000 SYNs overflows the
	// listen backlog of every server alike and measures nothing.
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				open(i)
			}
		})
	}
	wg.Wait()
	fmt.Printf("ready open=%d errors=%d", int64(n)-failed.Load(), failed.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Printf(" first_error=%q", e)
	}
	fmt.Println()
	time.Sleep(hold)
	var alive atomic.Int64
	for i := range conns {
		if conns[i].c == nil {
			continue
		}
		wg.Go(func() {
			c := conns[i]
			defer c.c.Close()
			c.c.SetDeadline(time.Now().Add(30 * time.Second))
			if get(c.c, c.br, "/1k", true) == nil {
				alive.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("alive=%d\n", alive.Load())
	return nil
}
