// Command origin is the loopback origin server of the benchmark suite
// (bench/run.sh): fixed bodies behind every peer, so that the systems
// compared differ only in themselves, and a request counter, so that the
// suite can check what each of them fetched.
//
// Paths:
//
//	/1k /16k /1m      fixed bodies of 1 KiB, 16 KiB, 1 MiB, "public, max-age=3600"
//	/nostore          1 KiB, "no-store": every request is a miss
//	/store/...        1 KiB, cacheable; the suite asks each URL once (the store path)
//	/slow/...         1 KiB, cacheable, answered after -slow (coalescing)
//	/_count           "total N": requests served, /_count itself not included
//	/_count?path=P    requests served for exactly path P (all but /store/ paths are kept)
//
// Usage:
//
//	origin -listen 127.0.0.1:24000 -slow 200ms
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const cacheable = "public, max-age=3600"

type origin struct {
	slow  time.Duration
	total atomic.Int64

	mu     sync.Mutex
	byPath map[string]int64 // not /store/ paths: they would grow it without bound
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/_count" {
		o.count(w, r)
		return
	}
	o.total.Add(1)
	if !strings.HasPrefix(p, "/store/") {
		o.mu.Lock()
		o.byPath[p]++
		o.mu.Unlock()
	}
	cc := cacheable
	body := kib1
	switch {
	case p == "/1k":
	case p == "/16k":
		body = kib16
	case p == "/1m":
		body = mib1
	case p == "/nostore":
		cc = "no-store"
	case strings.HasPrefix(p, "/store/"):
	case strings.HasPrefix(p, "/slow/"):
		time.Sleep(o.slow)
	default:
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/octet-stream"}
	h["Cache-Control"] = []string{cc}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.Write(body)
}

func (o *origin) count(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if p := r.URL.Query().Get("path"); p != "" {
		o.mu.Lock()
		n := o.byPath[p]
		o.mu.Unlock()
		fmt.Fprintf(w, "%d\n", n)
		return
	}
	fmt.Fprintf(w, "total %d\n", o.total.Load())
}

var (
	kib1  = bytes.Repeat([]byte("a"), 1<<10)
	kib16 = bytes.Repeat([]byte("b"), 16<<10)
	mib1  = bytes.Repeat([]byte("c"), 1<<20)
)

func main() {
	listen := flag.String("listen", "127.0.0.1:24000", "`address` to serve on")
	slow := flag.Duration("slow", 200*time.Millisecond, "delay of /slow/ responses, so that concurrent misses overlap")
	flag.Parse()
	o := &origin{slow: *slow, byPath: make(map[string]int64)}
	srv := &http.Server{Addr: *listen, Handler: o, IdleTimeout: 5 * time.Minute}
	log.Fatal(srv.ListenAndServe())
}
