// Command origin is the loopback origin server of the benchmark suite
// (bench/run.sh): fixed bodies behind every peer, so that the systems
// compared differ only in themselves, and a request counter, so that the
// suite can check what each of them fetched.
//
// It shares the load's cores, so it does as little as an HTTP/1.1 server
// can: a goroutine per connection reads request heads (bench/internal/
// reqhead) and writes each answer in one write; pipelined answers go out
// together. It answers GET and HEAD without a request body, which is all
// the suite sends; a connection stays open until the peer closes it.
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
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accel-proxy/accel/bench/internal/reqhead"
)

const cacheable = "public, max-age=3600"

type origin struct {
	slow  time.Duration
	total atomic.Int64

	mu     sync.RWMutex
	byPath map[string]*atomic.Int64 // not /store/ paths: they would grow it without bound
}

var (
	kib1  = bytes.Repeat([]byte("a"), 1<<10)
	kib16 = bytes.Repeat([]byte("b"), 16<<10)
	mib1  = bytes.Repeat([]byte("c"), 1<<20)
)

// copiedBody is the largest body copied behind its head; a larger one
// goes out with it in one writev.
const copiedBody = 16 << 10

func main() {
	listen := flag.String("listen", "127.0.0.1:24000", "`address` to serve on")
	slow := flag.Duration("slow", 200*time.Millisecond, "delay of /slow/ responses, so that concurrent misses overlap")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	o := &origin{slow: *slow, byPath: make(map[string]*atomic.Int64)}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go o.serve(c)
	}
}

func (o *origin) serve(c net.Conn) {
	defer c.Close()
	heads := reqhead.New(c)
	var out []byte
	var d date
	for {
		head, err := heads.Next()
		if err != nil {
			if errors.Is(err, reqhead.ErrTooLarge) {
				c.Write([]byte("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			} else if err != io.EOF && !errors.Is(err, net.ErrClosed) {
				log.Print(err)
			}
			return
		}
		method, target := reqhead.Target(head)
		if !bytes.Equal(method, []byte("GET")) && !bytes.Equal(method, []byte("HEAD")) {
			out = append(out, "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"...)
			c.Write(out)
			return
		}
		var body []byte
		out, body = o.answer(out, target, &d)
		if bytes.Equal(method, []byte("HEAD")) {
			body = nil
		}
		if len(body) > copiedBody {
			bufs := net.Buffers{out, body}
			if _, err := bufs.WriteTo(c); err != nil {
				return
			}
			out = out[:0]
			continue
		}
		out = append(out, body...)
		if heads.Buffered() && len(out) < copiedBody {
			continue
		}
		if _, err := c.Write(out); err != nil {
			return
		}
		out = out[:0]
	}
}

// answer appends the head of the answer to target to out, and returns
// the body that follows it.
func (o *origin) answer(out, target []byte, d *date) ([]byte, []byte) {
	path, query, _ := bytes.Cut(target, []byte("?"))
	if string(path) == "/_count" {
		return o.count(out, query, d)
	}
	cc, body := cacheable, kib1
	switch {
	case string(path) == "/1k":
	case string(path) == "/16k":
		body = kib16
	case string(path) == "/1m":
		body = mib1
	case string(path) == "/nostore":
		cc = "no-store"
	case bytes.HasPrefix(path, []byte("/store/")):
	case bytes.HasPrefix(path, []byte("/slow/")):
		time.Sleep(o.slow)
	default:
		return appendHead(out, "404 Not Found", "no-store", 0, d), nil
	}
	o.total.Add(1)
	if !bytes.HasPrefix(path, []byte("/store/")) {
		o.counter(path).Add(1)
	}
	return appendHead(out, "200 OK", cc, len(body), d), body
}

// counter is path's request counter, made on its first request.
func (o *origin) counter(path []byte) *atomic.Int64 {
	o.mu.RLock()
	n := o.byPath[string(path)]
	o.mu.RUnlock()
	if n != nil {
		return n
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if n = o.byPath[string(path)]; n == nil {
		n = new(atomic.Int64)
		o.byPath[string(path)] = n
	}
	return n
}

func (o *origin) count(out, query []byte, d *date) ([]byte, []byte) {
	q, err := url.ParseQuery(string(query))
	if err != nil {
		return appendHead(out, "400 Bad Request", "no-store", 0, d), nil
	}
	var body string
	if p := q.Get("path"); p != "" {
		var n int64
		o.mu.RLock()
		if c := o.byPath[p]; c != nil {
			n = c.Load()
		}
		o.mu.RUnlock()
		body = fmt.Sprintf("%d\n", n)
	} else {
		body = fmt.Sprintf("total %d\n", o.total.Load())
	}
	return appendHead(out, "200 OK", "no-store", len(body), d), []byte(body)
}

func appendHead(out []byte, status, cc string, length int, d *date) []byte {
	out = append(out, "HTTP/1.1 "...)
	out = append(out, status...)
	out = append(out, "\r\nCache-Control: "...)
	out = append(out, cc...)
	out = append(out, "\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(length), 10)
	out = append(out, "\r\nContent-Type: application/octet-stream\r\nDate: "...)
	out = append(out, d.now()...)
	return append(out, "\r\n\r\n"...)
}

// date is a connection's Date value, formatted once a second.
type date struct {
	sec int64
	val []byte
}

func (d *date) now() []byte {
	now := time.Now()
	if s := now.Unix(); s != d.sec || d.val == nil {
		d.sec = s
		d.val = now.UTC().AppendFormat(d.val[:0], http.TimeFormat)
	}
	return d.val
}
