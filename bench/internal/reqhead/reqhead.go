// Package reqhead reads HTTP/1.1 request heads off a connection for the
// benchmark's origin and floor: the least work that finds where a head
// ends and what it asks for, so that these helpers cost the load as
// little as they can. It reads heads only: the suite sends no request
// bodies.
package reqhead

import (
	"bytes"
	"errors"
	"io"
)

// ErrTooLarge is returned when a head does not fit the reader's buffer.
var ErrTooLarge = errors.New("reqhead: request head larger than 8 KiB")

var endOfHead = []byte("\r\n\r\n")

// Reader hands out the request heads read from r, pipelined ones
// included.
type Reader struct {
	r    io.Reader
	in   []byte
	n    int // bytes read into in
	used int // bytes of in handed out by the last Next
}

// New reads heads from r.
func New(r io.Reader) *Reader { return &Reader{r: r, in: make([]byte, 8<<10)} }

// Next returns the next head, through its blank line, valid until the
// next call; it reads only when no whole head is buffered.
func (r *Reader) Next() ([]byte, error) {
	if r.used > 0 {
		r.n = copy(r.in, r.in[r.used:r.n])
		r.used = 0
	}
	for {
		if end := bytes.Index(r.in[:r.n], endOfHead); end >= 0 {
			r.used = end + len(endOfHead)
			return r.in[:r.used], nil
		}
		if r.n == len(r.in) {
			return nil, ErrTooLarge
		}
		k, err := r.r.Read(r.in[r.n:])
		if k == 0 && err != nil {
			return nil, err
		}
		r.n += k
	}
}

// Buffered reports whether a part of a further request was read already:
// a server answering pipelined requests can then hold its answer back and
// send it with the next.
func (r *Reader) Buffered() bool { return r.n > r.used }

// Target is the request target of head's request line; method is the
// method, both nil when the line is not "METHOD TARGET VERSION".
func Target(head []byte) (method, target []byte) {
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	m, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return nil, nil
	}
	t, _, ok := bytes.Cut(rest, []byte(" "))
	if !ok || len(m) == 0 || len(t) == 0 {
		return nil, nil
	}
	return m, t
}
