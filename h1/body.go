package h1

import (
	"bufio"
	"errors"
	"io"
	"sync"

	"github.com/accel-proxy/accel/parser"
)

// errBodyTooLong means the origin sent more than the Content-Length it
// announced: the extra bytes would be read by the client as a response of
// its own, so they are never written.
var errBodyTooLong = errors.New("h1: response body longer than its Content-Length")

// lengthBody reads a Content-Length request body from the connection.
type lengthBody struct {
	rb        *rbuf
	remaining int64
	cont      *continuer
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.remaining <= 0 {
		return 0, io.EOF
	}
	b.cont.send()
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.rb.Read(p)
	b.remaining -= int64(n)
	if err == io.EOF && b.remaining > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		b.cont.w.close = true
	}
	if err == nil && b.remaining == 0 {
		err = io.EOF
	}
	return n, err
}

// chunkedBody decodes a chunked request body; bytes its bufio.Reader read
// past the end go back to the connection for the next request.
type chunkedBody struct {
	rb   *rbuf
	br   *bufio.Reader
	cr   *parser.ChunkedReader
	cont *continuer
	done bool
}

var bufioPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

func newChunkedBody(rb *rbuf, cont *continuer) *chunkedBody {
	br := bufioPool.Get().(*bufio.Reader)
	br.Reset(rb)
	return &chunkedBody{rb: rb, br: br, cr: parser.NewChunkedReader(br), cont: cont}
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	b.cont.send()
	n, err := b.cr.Read(p)
	switch {
	case err == io.EOF:
		b.release()
	case err != nil:
		// A broken body leaves the connection at an unknown place in the
		// stream: whatever follows cannot be read as a request.
		b.cont.w.close = true
	}
	return n, err
}

// release returns the read-ahead and the bufio.Reader once the body ended.
func (b *chunkedBody) release() {
	if b.done {
		return
	}
	b.done = true
	rest, _ := b.br.Peek(b.br.Buffered())
	b.rb.unread(rest)
	b.br.Reset(nil)
	bufioPool.Put(b.br)
}

// continuer sends "100 Continue" the first time the body is read, so a
// client that waits for it sends the body only when an origin wants it.
type continuer struct {
	w    *Writer
	want bool
}

func (c *continuer) send() {
	if !c.want {
		return
	}
	c.want = false
	if !c.w.wroteHead {
		c.w.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		c.w.bw.Flush()
	}
}
