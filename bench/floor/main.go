// Command floor is the benchmark suite's reference for the HTTP/1 rows
// (bench/run.sh, SYSTEMS=... floor): the least a Go server does for them,
// so that what accel costs above the Go runtime and the kernel can be read
// off the same run. It is not a proxy anyone should run: one goroutine per
// client connection reads a request head (no body, no parsing beyond the
// request line), and answers /1k, /16k and /1m from memory once it fetched
// them, or forwards the head as it came over a connection of its own to
// the origin and relays the answer, framed by its Content-Length.
//
// Usage:
//
//	floor -listen 127.0.0.1:24085 -origin 127.0.0.1:24000
package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"strconv"
	"sync"

	"github.com/accel-proxy/accel/bench/internal/reqhead"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:24085", "address to listen on")
	origin := flag.String("origin", "127.0.0.1:24000", "the origin's address")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	s := &server{origin: *origin}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go s.serve(c)
	}
}

// server keeps the answers of the hit paths, whole (head and body).
type server struct {
	origin string
	kept   sync.Map // path string -> []byte
}

// keptPaths are the suite's hit paths (bench/origin): their answers are
// kept, every other answer is relayed only.
var keptPaths = map[string]bool{"/1k": true, "/16k": true, "/1m": true}

var (
	endOfHead     = []byte("\r\n\r\n")
	contentLength = []byte("\r\nContent-Length: ")
)

func (s *server) serve(c net.Conn) {
	defer c.Close()
	var o net.Conn
	defer func() {
		if o != nil {
			o.Close()
		}
	}()
	heads := reqhead.New(c)
	var resp []byte
	for {
		head, err := heads.Next()
		if err != nil {
			return
		}
		_, target := reqhead.Target(head)
		path := string(target)
		if v, ok := s.kept.Load(path); ok {
			if _, err := c.Write(v.([]byte)); err != nil {
				return
			}
		} else {
			var err error
			if o == nil {
				if o, err = net.Dial("tcp", s.origin); err != nil {
					log.Print(err)
					return
				}
			}
			if resp, err = exchange(o, head, resp[:0]); err != nil {
				log.Print(err)
				return
			}
			if keptPaths[path] {
				s.kept.Store(path, bytes.Clone(resp))
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	}
}

// exchange sends a request head to the origin and appends its whole
// answer to buf.
func exchange(o net.Conn, head, buf []byte) ([]byte, error) {
	if _, err := o.Write(head); err != nil {
		return nil, err
	}
	want := -1
	for want < 0 || len(buf) < want {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		k, err := o.Read(buf[len(buf):cap(buf)])
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		buf = buf[:len(buf)+k]
		if want < 0 {
			var err error
			if want, err = responseLength(buf); err != nil {
				return nil, err
			}
		}
	}
	return buf, nil
}

// responseLength is the length of a whole answer whose head is in buf,
// -1 while the head is incomplete.
func responseLength(buf []byte) (int, error) {
	end := bytes.Index(buf, endOfHead)
	if end < 0 {
		return -1, nil
	}
	i := bytes.Index(buf[:end+2], contentLength)
	if i < 0 {
		return 0, errors.New("floor: the origin's answer has no Content-Length")
	}
	v := buf[i+len(contentLength):]
	v = v[:bytes.IndexByte(v, '\r')]
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, errors.New("floor: bad Content-Length from the origin")
	}
	return end + 4 + n, nil
}
