package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accel-proxy/accel/admin"
	"golang.org/x/net/http2"
)

const soakUsage = `usage: accel soak [flags]

Drives a running accel with a mixed load for -duration: HTTP/1.1 and h2c
(prior knowledge) hits and misses, uncacheable passes, URL and prefix
purges and reloads through the admin API. Every response is checked (status
and the exact body). It reads the process's RSS, goroutines and open file
descriptors from the admin API's /metrics at the start and at the end, and
fails when there was an error or when they grew past the -max-* bounds.

accel must be in front of the soak origin: run it with -serve-origin ADDR
(it serves GET /soak/... on ADDR while the soak runs) and point a pool of
accel at ADDR, with a route /soak/ whose cache is enabled. Reloads need
accel started with -config. The admin token comes from -token-env.

Exit status 0 when the soak held, 1 when it did not, 2 on a usage error.

flags:
`

// soakConfig is one soak run.
type soakConfig struct {
	target      string // accel's client listener, http://host:port
	admin       string // accel's admin API, http://host:port
	token       string
	duration    time.Duration
	workers     int // per protocol
	purgeEvery  time.Duration
	reloadEvery time.Duration
	// bounds on growth from start to end
	maxRSS        int64
	maxGoroutines int
	maxFDs        int
	out           io.Writer
}

func runSoak(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("accel soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, soakUsage)
		fs.PrintDefaults()
	}
	cfg := soakConfig{out: stdout}
	fs.StringVar(&cfg.target, "target", "http://127.0.0.1:8080", "accel's client listener `URL` (cleartext: HTTP/1.1 and h2c)")
	fs.StringVar(&cfg.admin, "admin", "http://"+admin.DefaultListen, "accel's admin API `URL`")
	tokenEnv := fs.String("token-env", admin.DefaultTokenEnv, "environment `variable` holding the admin token")
	origin := fs.String("serve-origin", "", "serve the soak origin on this `address` while the soak runs")
	fs.DurationVar(&cfg.duration, "duration", time.Minute, "how long to run")
	fs.IntVar(&cfg.workers, "workers", 8, "concurrent clients per protocol")
	fs.DurationVar(&cfg.purgeEvery, "purge-every", 500*time.Millisecond, "interval between purges (0: none)")
	fs.DurationVar(&cfg.reloadEvery, "reload-every", 5*time.Second, "interval between reloads (0: none)")
	rss := fs.String("max-rss-growth", "256MiB", "fail when RSS grew by more than this (allow accel's memory limit: cache.memory + a quarter + 64MiB)")
	fs.IntVar(&cfg.maxGoroutines, "max-goroutine-growth", 25, "fail when the goroutines grew by more than this")
	fs.IntVar(&cfg.maxFDs, "max-fd-growth", 24, "fail when the open descriptors grew by more than this")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	n, err := parseBytes(*rss)
	if err != nil || fs.NArg() > 0 || cfg.workers < 1 || cfg.duration <= 0 {
		fs.Usage()
		return 2
	}
	cfg.maxRSS = n
	cfg.token = os.Getenv(*tokenEnv)
	if *origin != "" {
		ln, err := net.Listen("tcp", *origin)
		if err != nil {
			fmt.Fprintln(stderr, "accel soak:", err)
			return 1
		}
		srv := &http.Server{Handler: soakOrigin()}
		go srv.Serve(ln)
		defer srv.Close()
	}
	if err := soak(context.Background(), cfg); err != nil {
		fmt.Fprintln(stderr, "accel soak:", err)
		return 1
	}
	return 0
}

// parseBytes reads 64MiB, 10MB, 512KiB or a plain number of bytes.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n * u.n, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// The soak origin answers GET /soak/KIND/ID with a body that only that
// path produces: hot and new objects cacheable, pass ones no-store.
func soakOrigin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/soak/"), "/")
		switch kind {
		case "hot":
			w.Header().Set("Cache-Control", "max-age=3600")
		case "new":
			w.Header().Set("Cache-Control", "max-age=60")
		case "pass":
			w.Header().Set("Cache-Control", "no-store")
		default:
			http.NotFound(w, r)
			return
		}
		b := soakBody(r.URL.Path)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
}

// soakBody is path's body: 1 to 16 KiB that differ per path.
func soakBody(path string) []byte {
	var seed [32]byte
	copy(seed[:], path)
	r := rand.New(rand.NewChaCha8(seed))
	b := make([]byte, 1<<10+r.IntN(15<<10))
	for i := range b {
		b[i] = 'a' + byte(r.IntN(26))
	}
	return b
}

// soakCounts are a run's requests by kind, and its errors.
type soakCounts struct {
	hits, misses, passes, purges, reloads atomic.Int64
	errors                                atomic.Int64
	mu                                    sync.Mutex
	firstErrors                           []string
}

func (c *soakCounts) fail(format string, args ...any) {
	c.errors.Add(1)
	c.mu.Lock()
	if len(c.firstErrors) < 10 {
		c.firstErrors = append(c.firstErrors, fmt.Sprintf(format, args...))
	}
	c.mu.Unlock()
}

// procStats is what /metrics says of accel's process.
type procStats struct {
	rss        int64
	goroutines int
	fds        int
}

func (p procStats) String() string {
	return fmt.Sprintf("rss %.1f MB, goroutines %d, fds %d", float64(p.rss)/1e6, p.goroutines, p.fds)
}

// soak runs the mix against cfg.target for cfg.duration and checks the
// process's growth.
func soak(ctx context.Context, cfg soakConfig) error {
	adminClient := &http.Client{Timeout: 10 * time.Second}
	start, err := readProcStats(adminClient, cfg)
	if err != nil {
		return fmt.Errorf("reading /metrics: %w", err)
	}
	fmt.Fprintf(cfg.out, "soak: start: %v\n", start)

	h1 := &http.Transport{MaxIdleConnsPerHost: cfg.workers, DisableCompression: true}
	h2 := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	clients := map[string]*http.Client{
		"h1": {Transport: h1, Timeout: 30 * time.Second},
		"h2": {Transport: h2, Timeout: 30 * time.Second},
	}
	var counts soakCounts
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	var seq atomic.Int64
	var wg sync.WaitGroup
	for proto, c := range clients {
		for w := range cfg.workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(w), uint64(len(proto))))
				for ctx.Err() == nil {
					var path string
					switch n := r.IntN(10); {
					case n < 6:
						path = "/soak/hot/" + strconv.Itoa(r.IntN(50))
					case n < 9:
						path = "/soak/new/" + strconv.FormatInt(seq.Add(1), 10)
					default:
						path = "/soak/pass/" + strconv.Itoa(r.IntN(50))
					}
					soakGet(ctx, c, proto, cfg.target+path, &counts)
				}
			}()
		}
	}
	every := func(d time.Duration, f func()) {
		if d <= 0 {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					f()
				}
			}
		}()
	}
	host := strings.TrimPrefix(strings.TrimPrefix(cfg.target, "http://"), "https://")
	var purgeN atomic.Int64
	every(cfg.purgeEvery, func() {
		n := purgeN.Add(1)
		form := url.Values{"url": {"http://" + host + "/soak/hot/" + strconv.FormatInt(n%50, 10)}}
		endpoint := "/purge/url"
		if n%5 == 0 {
			endpoint, form = "/purge/prefix", url.Values{"prefix": {host + "/soak/hot/1"}}
		}
		if err := adminPost(ctx, adminClient, cfg, endpoint, form); err != nil {
			counts.fail("purge: %v", err)
			return
		}
		counts.purges.Add(1)
	})
	every(cfg.reloadEvery, func() {
		if err := adminPost(ctx, adminClient, cfg, "/reload", nil); err != nil {
			counts.fail("reload: %v", err)
			return
		}
		counts.reloads.Add(1)
	})
	wg.Wait()
	h1.CloseIdleConnections()
	h2.CloseIdleConnections()
	adminClient.CloseIdleConnections()

	// The clients' connections are closed; accel's side ends them as it
	// reads the close, and pools retired by reloads end with their idle
	// timeout. Reads of /metrics for up to 10s let that settle.
	var end procStats
	for i := 0; ; i++ {
		end, err = readProcStats(adminClient, cfg)
		if err != nil {
			return fmt.Errorf("reading /metrics: %w", err)
		}
		if end.goroutines-start.goroutines <= cfg.maxGoroutines && end.fds-start.fds <= cfg.maxFDs || i == 100 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	total := counts.hits.Load() + counts.misses.Load() + counts.passes.Load()
	fmt.Fprintf(cfg.out, "soak: end:   %v\n", end)
	fmt.Fprintf(cfg.out, "soak: %v, %d requests (%d hits, %d misses, %d passes), %d purges, %d reloads, %d errors\n",
		cfg.duration, total, counts.hits.Load(), counts.misses.Load(), counts.passes.Load(),
		counts.purges.Load(), counts.reloads.Load(), counts.errors.Load())
	var problems []string
	if n := counts.errors.Load(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d errors, the first: %s", n, strings.Join(counts.firstErrors, "; ")))
	}
	if total == 0 {
		problems = append(problems, "no request answered")
	}
	if g := end.rss - start.rss; g > cfg.maxRSS {
		problems = append(problems, fmt.Sprintf("RSS grew by %d bytes (bound %d)", g, cfg.maxRSS))
	}
	if g := end.goroutines - start.goroutines; g > cfg.maxGoroutines {
		problems = append(problems, fmt.Sprintf("goroutines grew by %d (bound %d)", g, cfg.maxGoroutines))
	}
	if g := end.fds - start.fds; g > cfg.maxFDs {
		problems = append(problems, fmt.Sprintf("open descriptors grew by %d (bound %d)", g, cfg.maxFDs))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// soakGet fetches one URL and checks the answer: 200 and the body the
// origin makes for the path.
func soakGet(ctx context.Context, c *http.Client, proto, u string, counts *soakCounts) {
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			counts.fail("%s GET %s: %v", proto, u, err)
		}
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() == nil {
			counts.fail("%s GET %s: body: %v", proto, u, err)
		}
		return
	}
	if resp.StatusCode != 200 || !bytes.Equal(b, soakBody(req.URL.Path)) {
		counts.fail("%s GET %s: %d, %d bytes", proto, u, resp.StatusCode, len(b))
		return
	}
	switch cs := resp.Header.Get("Cache-Status"); {
	case strings.Contains(cs, "; hit"):
		counts.hits.Add(1)
	case strings.Contains(u, "/pass/"):
		counts.passes.Add(1)
	default:
		counts.misses.Add(1)
	}
}

func adminPost(ctx context.Context, c *http.Client, cfg soakConfig, endpoint string, form url.Values) error {
	req, _ := http.NewRequestWithContext(ctx, "POST", cfg.admin+endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+cfg.token)
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %d %s", endpoint, resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

// readProcStats reads the process collector's and the Go collector's
// series from accel's /metrics.
func readProcStats(c *http.Client, cfg soakConfig) (procStats, error) {
	req, _ := http.NewRequest("GET", cfg.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+cfg.token)
	resp, err := c.Do(req)
	if err != nil {
		return procStats{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return procStats{}, fmt.Errorf("/metrics: %s", resp.Status)
	}
	var p procStats
	var seen int
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			p.rss, seen = int64(v), seen|1
		case "go_goroutines":
			p.goroutines, seen = int(v), seen|2
		case "process_open_fds":
			p.fds, seen = int(v), seen|4
		}
	}
	if seen != 7 {
		return p, errors.New("/metrics lacks process_resident_memory_bytes, go_goroutines or process_open_fds")
	}
	return p, sc.Err()
}
