package parser

import (
	"bufio"
	"errors"
	"io"
	"strconv"
)

const (
	// maxChunkLine bounds a chunk-size line with its extensions, which we
	// read and throw away: a peer may not make us parse without end.
	maxChunkLine = 4 << 10
	// maxTrailerBytes bounds the trailer section, which is read and
	// discarded.
	maxTrailerBytes = 64 << 10
)

// ChunkedReader decodes a chunked body (RFC 9112 §7.1) from a buffered
// connection reader. It streams: each Read passes on at most what the
// current chunk still holds and never waits for a whole chunk. It returns
// io.EOF after the last-chunk and the trailer section, whose fields are
// validated like header fields and discarded; the reader is then positioned
// at the next message. A truncated body is io.ErrUnexpectedEOF, a malformed
// one ErrBadChunk, ErrChunkOverflow or a field sentinel; errors are sticky.
type ChunkedReader struct {
	br   *bufio.Reader
	left int64 // data bytes of the current chunk not yet read
	// crlf is set once a chunk has started, so the next chunk-size line
	// must be preceded by the CRLF that ends the chunk's data.
	crlf bool
	err  error
	line []byte // one trailer line, reused across lines
}

// NewChunkedReader returns a reader of the chunked body that starts at the
// current position of br.
func NewChunkedReader(br *bufio.Reader) *ChunkedReader {
	return &ChunkedReader{br: br}
}

// Read reads decoded body bytes into p.
func (c *ChunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.left == 0 {
		if c.err = c.nextChunk(); c.err != nil {
			return 0, c.err
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	if n == 0 && err != nil {
		c.err = unexpectedEOF(err)
		return 0, c.err
	}
	return n, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// nextChunk reads up to the data of the next chunk, or through the trailer
// section when the next chunk is the last one, returning io.EOF then.
func (c *ChunkedReader) nextChunk() error {
	if c.crlf {
		for _, want := range []byte("\r\n") {
			b, err := c.br.ReadByte()
			if err != nil {
				return unexpectedEOF(err)
			}
			if b != want {
				return ErrBadChunk
			}
		}
	}
	size, err := c.readSizeLine()
	if err != nil {
		return err
	}
	if size == 0 {
		if err := c.readTrailer(); err != nil {
			return err
		}
		return io.EOF
	}
	c.left, c.crlf = size, true
	return nil
}

// States of the chunk-size line: chunk-size [ chunk-ext ] CRLF with
// chunk-ext = *( ";" name [ "=" ( token / quoted-string ) ] ). Whitespace
// is refused everywhere (the BWS RFC 9112 tolerates is where parsers
// disagree about where the size ends).
const (
	sSize = iota
	sExtName
	sExtNameMore
	sExtValue
	sExtToken
	sQuoted
	sQuotedPair
	sQuotedEnd
	sLF
)

func (c *ChunkedReader) readSizeLine() (int64, error) {
	var size int64
	digits := 0
	state := sSize
	for n := 0; n < maxChunkLine; n++ {
		b, err := c.br.ReadByte()
		if err != nil {
			return 0, unexpectedEOF(err)
		}
		tchar := class[b]&cTchar != 0
		switch state {
		case sSize:
			if v, ok := hexValue(b); ok {
				if size > (1<<63-1)>>4 {
					return 0, ErrChunkOverflow
				}
				size = size<<4 | v
				if digits++; digits > 16 {
					return 0, ErrBadChunk
				}
				continue
			}
			if digits == 0 {
				return 0, ErrBadChunk
			}
			state = afterExt(b)
		case sExtName:
			if !tchar {
				return 0, ErrBadChunk
			}
			state = sExtNameMore
		case sExtNameMore:
			switch {
			case tchar:
			case b == '=':
				state = sExtValue
			default:
				state = afterExt(b)
			}
		case sExtValue:
			switch {
			case b == '"':
				state = sQuoted
			case tchar:
				state = sExtToken
			default:
				return 0, ErrBadChunk
			}
		case sExtToken:
			if !tchar {
				state = afterExt(b)
			}
		case sQuoted:
			switch {
			case b == '"':
				state = sQuotedEnd
			case b == '\\':
				state = sQuotedPair
			case class[b]&cValue == 0:
				return 0, ErrBadChunk
			}
		case sQuotedPair:
			if class[b]&cValue == 0 {
				return 0, ErrBadChunk
			}
			state = sQuoted
		case sQuotedEnd:
			state = afterExt(b)
		case sLF:
			if b != '\n' {
				return 0, ErrBadChunk
			}
			return size, nil
		}
		if state < 0 {
			return 0, ErrBadChunk
		}
	}
	return 0, ErrBadChunk
}

// afterExt is the state after the byte that ends a size or an extension:
// another extension, the line's end, or -1 for anything else.
func afterExt(b byte) int {
	switch b {
	case ';':
		return sExtName
	case '\r':
		return sLF
	}
	return -1
}

func hexValue(b byte) (int64, bool) {
	switch {
	case '0' <= b && b <= '9':
		return int64(b - '0'), true
	case 'a' <= b && b <= 'f':
		return int64(b-'a') + 10, true
	case 'A' <= b && b <= 'F':
		return int64(b-'A') + 10, true
	}
	return 0, false
}

// readTrailer reads the trailer section line by line through its blank
// line, checking each line as the head parser checks a field line.
func (c *ChunkedReader) readTrailer() error {
	budget := maxTrailerBytes
	for {
		c.line = c.line[:0]
		for len(c.line) == 0 || c.line[len(c.line)-1] != '\n' {
			if budget == 0 {
				return ErrTrailerTooLarge
			}
			b, err := c.br.ReadByte()
			if err != nil {
				return unexpectedEOF(err)
			}
			budget--
			c.line = append(c.line, b)
		}
		_, _, end, err := parseFieldLine(c.line, 0)
		if err != nil {
			return err
		}
		if end {
			return nil
		}
	}
}

// ChunkedWriter encodes what is written to it as a chunked body. Each
// non-empty Write becomes one chunk in three writes to the underlying
// writer, so give it a buffered one.
type ChunkedWriter struct {
	w      io.Writer
	closed bool
	size   [16 + 2]byte // hex chunk size and CRLF, reused per chunk
}

// errWriteAfterClose is a caller's bug: the body has already ended on the
// wire.
var errWriteAfterClose = errors.New("parser: write to a closed ChunkedWriter")

// NewChunkedWriter returns a writer that sends a chunked body to w.
func NewChunkedWriter(w io.Writer) *ChunkedWriter {
	return &ChunkedWriter{w: w}
}

// Write sends p as one chunk. An empty p sends nothing, since a zero-size
// chunk would end the body.
func (cw *ChunkedWriter) Write(p []byte) (int, error) {
	if cw.closed {
		return 0, errWriteAfterClose
	}
	if len(p) == 0 {
		return 0, nil
	}
	size := strconv.AppendInt(cw.size[:0], int64(len(p)), 16)
	if _, err := cw.w.Write(append(size, '\r', '\n')); err != nil {
		return 0, err
	}
	n, err := cw.w.Write(p)
	if err != nil {
		return n, err
	}
	if _, err := io.WriteString(cw.w, "\r\n"); err != nil {
		return n, err
	}
	return n, nil
}

// Close ends the body with the last-chunk and an empty trailer section. It
// does not close the underlying writer, which carries the next message;
// closing twice writes the end once.
func (cw *ChunkedWriter) Close() error {
	if cw.closed {
		return nil
	}
	cw.closed = true
	_, err := io.WriteString(cw.w, "0\r\n\r\n")
	return err
}
