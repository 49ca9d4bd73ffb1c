package h2

import (
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/accel-proxy/accel/parser"
)

// Writer sends one response on a stream; it implements the pipeline's
// response writer. A Writer given to ServeFast appends its frames to the
// connection's output, written out at the end of the read; one given to
// Serve writes out itself, waiting for flow-control window at most
// write_timeout each time.
type Writer struct {
	c         *conn
	st        *stream
	inline    bool
	head      bool // the request was HEAD: no body goes out
	length    int64
	wroteHead bool
	noBody    bool
	ended     bool
	written   int64
	err       error
}

func (w *Writer) reset(st *stream, inline, head bool) {
	*w = Writer{c: st.c, st: st, inline: inline, head: head, length: -1}
}

// SetContentLength sets the length announced by WriteHead; -1 for unknown.
func (w *Writer) SetContentLength(n int64) { w.length = n }

// Written reports whether the head went out.
func (w *Writer) Written() bool { return w.wroteHead }

// WriteHead sends the status and fields; connection-specific fields are
// dropped (RFC 9113 §8.2.2), names are lower-cased, and Date is added when
// missing.
func (w *Writer) WriteHead(status int, fields parser.Fields) error {
	if w.wroteHead {
		return errHeadTwice
	}
	w.wroteHead = true
	w.noBody = w.head || !parser.BodyAllowed(status)
	end := w.noBody || w.length == 0
	c := w.c
	c.mu.Lock()
	if w.st.closed {
		c.mu.Unlock()
		w.err = errStreamReset
		return w.err
	}
	c.writeHeadersLocked(w.st.id, status, fields, nil, w.length, end)
	if end {
		w.ended = true
		c.endLocalLocked(w.st)
	}
	c.mu.Unlock()
	return nil
}

// Write sends body bytes.
func (w *Writer) Write(p []byte) (int, error) {
	if !w.wroteHead {
		if err := w.WriteHead(200, nil); err != nil {
			return 0, err
		}
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody || len(p) == 0 {
		return len(p), nil
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		w.err = errBodyTooLong
		return 0, w.err
	}
	w.written += int64(len(p))
	end := w.length >= 0 && w.written == w.length
	if end {
		w.ended = true
	}
	if w.inline {
		return len(p), w.writeInline(p, end)
	}
	if err := w.writeWait(p, end); err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

// writeInline sends what the windows allow and leaves the rest, in place,
// for the connection's goroutine to send as they open.
func (w *Writer) writeInline(p []byte, end bool) error {
	c, st := w.c, w.st
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.closed {
		w.err = errStreamReset
		return w.err
	}
	if len(st.pending) > 0 {
		st.pending = append(st.pending[:len(st.pending):len(st.pending)], p...)
		st.pendingEnd = end
		return nil
	}
	n := c.sendDataLocked(st, p, end, true)
	if n < len(p) {
		st.pending = p[n:]
		st.pendingEnd = end
	}
	return nil
}

// writeWait sends p, waiting for window as needed, each wait bounded by
// write_timeout.
func (w *Writer) writeWait(p []byte, end bool) error {
	c, st := w.c, w.st
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		c.mu.Lock()
		if st.closed || c.closed {
			c.mu.Unlock()
			return errStreamReset
		}
		n := c.sendDataLocked(st, p, end, false)
		p = p[n:]
		big := len(c.out) >= flushThreshold
		if len(p) == 0 {
			c.mu.Unlock()
			if big {
				return c.flush()
			}
			return nil
		}
		st.waiting = true
		if st.wake == nil {
			st.wake = make(chan struct{}, 1)
		}
		c.mu.Unlock()
		if err := c.flush(); err != nil {
			return err
		}
		if t == nil {
			t = time.NewTimer(c.cfg.WriteTimeout)
		} else {
			t.Reset(c.cfg.WriteTimeout)
		}
		select {
		case <-st.wake:
			c.mu.Lock()
			st.waiting = false
			c.mu.Unlock()
		case <-t.C:
			c.mu.Lock()
			st.waiting = false
			c.resetLocked(st, http2.ErrCodeCancel)
			c.mu.Unlock()
			c.cfg.Count("write_timeout")
			c.flush()
			return errWriteTimeout
		}
	}
}

// WriteStored sends a whole response whose body is at hand, a stored one:
// status, fields then extra as the head, a content-length of len(body),
// then body unless the request was HEAD. wire (the fields in HTTP/1 form)
// is of no use to HTTP/2. The fields are encoded before it returns; body,
// which never changes once stored, may be written from where it is.
func (w *Writer) WriteStored(status int, fields parser.Fields, wire []byte, extra parser.Fields, body []byte) error {
	if w.wroteHead {
		return errHeadTwice
	}
	w.wroteHead = true
	w.length = int64(len(body))
	w.noBody = w.head || !parser.BodyAllowed(status)
	end := w.noBody || len(body) == 0
	c, st := w.c, w.st
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.closed {
		w.err = errStreamReset
		return w.err
	}
	c.writeHeadersLocked(st.id, status, fields, extra, w.length, end)
	if end {
		w.ended = true
		c.endLocalLocked(st)
		return nil
	}
	w.written, w.ended = w.length, true
	n := c.sendDataLocked(st, body, true, w.inline)
	if n == len(body) {
		return nil
	}
	if w.inline {
		st.pending, st.pendingEnd = body[n:], true
		return nil
	}
	c.mu.Unlock()
	err := w.writeWait(body[n:], true)
	c.mu.Lock()
	if err != nil {
		w.err = err
	}
	return err
}

// Flush pushes what was written to the client. Inline, the end of the
// read does it for every stream at once.
func (w *Writer) Flush() error {
	if w.inline {
		return w.err
	}
	if err := w.c.flush(); err != nil {
		return err
	}
	return w.err
}

// Abort resets the stream after the head went out, so the client sees a
// broken response instead of a short one that looks complete.
func (w *Writer) Abort() {
	c := w.c
	c.mu.Lock()
	c.resetLocked(w.st, http2.ErrCodeInternal)
	c.mu.Unlock()
	if w.err == nil {
		w.err = errStreamReset
	}
}

// endLocked ends the response once its handler returned: END_STREAM if
// it did not go out yet, a reset for a body shorter than announced.
func (w *Writer) endLocked() {
	c, st := w.c, w.st
	if st.closed || st.localClosed {
		return
	}
	if w.err != nil || !w.noBody && w.length >= 0 && w.written != w.length {
		c.resetLocked(st, http2.ErrCodeInternal)
		return
	}
	if len(st.pending) > 0 {
		st.pendingEnd = true
		return
	}
	if !w.ended {
		c.sendDataLocked(st, nil, true, false)
	}
}

// writeError answers with a short text body.
func (w *Writer) writeError(status int, msg string) {
	w.SetContentLength(int64(len(msg)))
	w.WriteHead(status, errorFields)
	w.Write([]byte(msg))
}

var errorFields = parser.Fields{{Name: []byte("content-type"), Value: []byte("text/plain; charset=utf-8")}}

// writeHeadersLocked encodes a response head into HEADERS and, past the
// peer's frame size, CONTINUATION frames.
func (c *conn) writeHeadersLocked(id uint32, status int, fields, extra parser.Fields, length int64, end bool) {
	c.encBuf.b = c.encBuf.b[:0]
	c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: statusText(status)})
	hasDate := c.encodeFieldsLocked(fields, false)
	hasDate = c.encodeFieldsLocked(extra, hasDate)
	c.appendHeaderFramesLocked(id, status, hasDate, length, end)
}

// encodeFieldsLocked encodes response fields, reporting whether a Date
// was among them (or hasDate already).
func (c *conn) encodeFieldsLocked(fields parser.Fields, hasDate bool) bool {
	for _, f := range fields {
		// Hop-by-hop fields never cross (RFC 9113 §8.2.2), and
		// content-length is set below.
		if parser.HopByHop(f.Name) || parser.EqualFold(f.Name, "content-length") {
			continue
		}
		name := c.intern.lower(f.Name)
		// Values that change with every response would only churn the
		// dynamic table.
		volatile := name == "date" || name == "age"
		hasDate = hasDate || name == "date"
		c.enc.WriteField(hpack.HeaderField{Name: name, Value: c.intern.str(f.Value, volatile), Sensitive: volatile})
	}
	return hasDate
}

// appendHeaderFramesLocked finishes the head: content-length, Date when
// the fields had none, then the frames.
func (c *conn) appendHeaderFramesLocked(id uint32, status int, hasDate bool, length int64, end bool) {
	if length >= 0 && parser.BodyAllowed(status) {
		c.enc.WriteField(hpack.HeaderField{Name: "content-length", Value: c.intern.int(length)})
	}
	if !hasDate {
		c.enc.WriteField(hpack.HeaderField{Name: "date", Value: parser.Date(), Sensitive: true})
	}
	block := c.encBuf.b
	first := true
	for first || len(block) > 0 {
		n := min(len(block), c.peerMaxFrame)
		var flags http2.Flags
		if n == len(block) {
			flags |= http2.FlagHeadersEndHeaders
		}
		t := http2.FrameContinuation
		if first {
			t = http2.FrameHeaders
			if end {
				flags |= http2.FlagHeadersEndStream
			}
		}
		c.out = appendFrameHeader(c.out, n, t, flags, id)
		c.out = append(c.out, block[:n]...)
		block = block[n:]
		first = false
	}
}

// statusTexts holds the :status values, made once.
var statusTexts = func() []string {
	s := make([]string, 600)
	for i := 100; i < 600; i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusText(code int) string {
	if code >= 100 && code < 600 {
		return statusTexts[code]
	}
	return strconv.Itoa(code)
}
