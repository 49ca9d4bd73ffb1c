package cache

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"

	"go.yaml.in/yaml/v3"
)

// Fetch is a Fetcher that is a func, valid after Serve too.
type Fetch func(ctx context.Context, head *parser.Request) (*Response, error)

func (f Fetch) Fetch(ctx context.Context, head *parser.Request) (*Response, error) {
	return f(ctx, head)
}

func (f Fetch) Detach() Fetcher { return f }

// origin is a real HTTP server on loopback whose handler a test sets,
// counting the requests that reach it.
type origin struct {
	*httptest.Server
	hits    atomic.Int32
	mu      sync.Mutex
	handler http.HandlerFunc
	last    http.Header // the last request's header
}

// newOrigin starts an origin whose Date follows now, as a real origin's
// clock follows the cache's.
func newOrigin(t testing.TB, now func() time.Time, h http.HandlerFunc) *origin {
	o := &origin{handler: h}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		o.mu.Lock()
		o.last = r.Header.Clone()
		h := o.handler
		o.mu.Unlock()
		w.Header().Set("Date", now().UTC().Format(http.TimeFormat))
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *origin) set(h http.HandlerFunc) {
	o.mu.Lock()
	o.handler = h
	o.mu.Unlock()
}

func (o *origin) lastHeader() http.Header {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last
}

// fetch sends heads to the origin over TCP with net/http's client, with
// compression off so that bodies arrive as the origin sent them.
func (o *origin) fetch() Fetch {
	client := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 256}}
	base := o.URL
	return func(ctx context.Context, h *parser.Request) (*Response, error) {
		req, err := http.NewRequestWithContext(ctx, string(h.Method), base+string(h.Target), nil)
		if err != nil {
			return nil, err
		}
		req.Host = string(h.Host)
		for _, f := range h.Fields {
			req.Header.Add(string(f.Name), string(f.Value))
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		var fs parser.Fields
		for name, vs := range resp.Header {
			for _, v := range vs {
				fs = fs.Add(name, v)
			}
		}
		return &Response{Status: resp.StatusCode, Fields: fs, ContentLength: resp.ContentLength, Body: resp.Body}, nil
	}
}

// recorder is a ResponseWriter that keeps what it was given and says when
// the first body bytes arrived.
type recorder struct {
	mu        sync.Mutex
	status    int
	fields    parser.Fields
	length    int64
	body      bytes.Buffer
	firstByte chan struct{}
	interim   []interimHead
}

type interimHead struct {
	status int
	fields parser.Fields
}

func newRecorder() *recorder { return &recorder{length: -1, firstByte: make(chan struct{})} }

func (r *recorder) WriteHead(status int, fs parser.Fields) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.fields = status, fs.Clone()
	return nil
}
func (r *recorder) SetContentLength(n int64) { r.length = n }
func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.body.Len() == 0 && len(p) > 0 {
		close(r.firstByte)
	}
	return r.body.Write(p)
}
func (r *recorder) Flush() error { return nil }
func (r *recorder) WriteStored(status int, fs parser.Fields, wire []byte, extra parser.Fields, body []byte) error {
	r.SetContentLength(int64(len(body)))
	r.WriteHead(status, append(fs[:len(fs):len(fs)], extra...))
	_, err := r.Write(body)
	return err
}

// WriteInterim keeps the 1xx heads; one that comes after the final head
// is a test failure, reported as the status -1.
func (r *recorder) WriteInterim(status int, fs parser.Fields) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status != 0 {
		status = -1
	}
	r.interim = append(r.interim, interimHead{status, fs.Clone()})
	return nil
}

func (r *recorder) get(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.fields.Get(name))
}

func (r *recorder) age(t testing.TB) int {
	n, err := strconv.Atoi(r.get("Age"))
	if err != nil {
		t.Fatalf("Age %q: %v", r.get("Age"), err)
	}
	return n
}

// clock is a settable clock for freshness tests.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }

// env is a cache in front of an origin.
type env struct {
	t     testing.TB
	c     *Cache
	o     *origin
	clk   *clock
	rules policy.CacheRules
	fetch Fetch
}

func newEnv(t testing.TB, cfg Config, h http.HandlerFunc) *env {
	clk := &clock{}
	if cfg.Now == nil {
		cfg.Now = clk.now
	}
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	o := newOrigin(t, clk.now, h)
	return &env{t: t, c: c, o: o, clk: clk, rules: policy.CacheRules{Enabled: true}, fetch: o.fetch()}
}

// do sends one request through the cache; fields alternate name, value.
func (e *env) do(method, target string, fields ...string) (*recorder, Outcome, error) {
	rec := newRecorder()
	out, err := e.doTo(rec, method, target, fields...)
	return rec, out, err
}

// doTo is do answering into rec.
func (e *env) doTo(rec *recorder, method, target string, fields ...string) (Outcome, error) {
	h := &parser.Request{Method: []byte(method), Target: []byte(target), Host: []byte("example.com"), Major: 1, Minor: 1}
	for i := 0; i+1 < len(fields); i += 2 {
		h.Fields = h.Fields.Add(fields[i], fields[i+1])
	}
	return e.c.Serve(context.Background(), &Request{Scheme: "http", Head: h}, &e.rules, e.fetch, rec)
}

func (e *env) get(target string, fields ...string) *recorder {
	e.t.Helper()
	rec, _, err := e.do("GET", target, fields...)
	if err != nil {
		e.t.Fatalf("GET %s: %v", target, err)
	}
	return rec
}

// waitStored waits until the background fill of a miss has stored it.
func (e *env) settle() {
	e.c.bg.Wait()
}

func hasStatus(r *recorder, part string) bool {
	return strings.Contains(r.get("Cache-Status"), part)
}

// serveBody answers with body and the given header pairs.
func serveBody(body string, fields ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(fields); i += 2 {
			w.Header().Add(fields[i], fields[i+1])
		}
		io.WriteString(w, body)
	}
}

func nil0() *policy.KeyOptions { return &policy.KeyOptions{} }

func nodeOf(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }
