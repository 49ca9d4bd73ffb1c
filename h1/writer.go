package h1

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/accel-proxy/accel/parser"
)

// Writer writes one response in HTTP/1.1 framing: Content-Length when
// known, chunked for HTTP/1.1 clients otherwise, and close-delimited for
// HTTP/1.0 clients.
type Writer struct {
	bw                 *wbuf
	reqMajor, reqMinor int
	head               bool // HEAD request: no body bytes
	length             int64
	wroteHead          bool
	noBody             bool
	chunked            *parser.ChunkedWriter // set when the body goes chunked
	written            int64
	// close is set when the connection must end after this response.
	close bool
	err   error
	num   [20]byte // formats lengths without allocating
}

func (w *Writer) SetContentLength(n int64) { w.length = n }

func (w *Writer) Written() bool { return w.wroteHead }

func (w *Writer) WriteHead(status int, fields parser.Fields) error {
	if w.wroteHead {
		return errors.New("h1: response head written twice")
	}
	w.wroteHead = true
	bw := w.bw
	bw.WriteString(statusLine(status))
	hasDate := false
	for _, f := range fields {
		if parser.HopByHop(f.Name) || parser.EqualFold(f.Name, "Content-Length") {
			continue
		}
		if parser.EqualFold(f.Name, "Date") {
			hasDate = true
		}
		bw.Write(f.Name)
		bw.WriteString(": ")
		bw.Write(f.Value)
		bw.WriteString("\r\n")
	}
	if !hasDate {
		bw.WriteString("Date: ")
		bw.WriteString(parser.Date())
		bw.WriteString("\r\n")
	}
	return w.endHead(status)
}

// endHead writes the framing fields and the blank line that end a head.
func (w *Writer) endHead(status int) error {
	bw := w.bw
	w.noBody = w.head || !parser.BodyAllowed(status)
	switch {
	case status < 200 || status == 204:
	case w.length >= 0 && (status != 304 || w.head):
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(w.num[:0], w.length, 10))
		bw.WriteString("\r\n")
	case w.noBody:
	case w.reqMajor == 1 && w.reqMinor >= 1:
		w.chunked = parser.NewChunkedWriter(bw)
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	default:
		w.close = true
	}
	switch {
	case w.close:
		bw.WriteString("Connection: close\r\n")
	case w.reqMinor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// WriteStored writes a stored response: its serialised head as it is,
// extra, the framing, and the body, into the connection's buffer, so that
// a small response leaves in one write.
func (w *Writer) WriteStored(status int, fields parser.Fields, wire []byte, extra parser.Fields, body []byte) error {
	if w.wroteHead {
		return errors.New("h1: response head written twice")
	}
	w.wroteHead = true
	w.length = int64(len(body))
	bw := w.bw
	bw.WriteString(statusLine(status))
	bw.Write(wire)
	for _, f := range extra {
		bw.Write(f.Name)
		bw.WriteString(": ")
		bw.Write(f.Value)
		bw.WriteString("\r\n")
	}
	if err := w.endHead(status); err != nil {
		return w.fail(err)
	}
	if w.noBody {
		return nil
	}
	_, err := w.Write(body)
	return err
}

func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if !w.wroteHead {
		if err := w.WriteHead(200, nil); err != nil {
			return 0, err
		}
	}
	if w.noBody || len(p) == 0 {
		return len(p), nil
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		w.err = errBodyTooLong
		w.close = true
		return 0, w.err
	}
	w.written += int64(len(p))
	if w.chunked != nil {
		n, err := w.chunked.Write(p)
		return n, w.fail(err)
	}
	n, err := w.bw.Write(p)
	return n, w.fail(err)
}

func (w *Writer) fail(err error) error {
	if err != nil {
		w.err, w.close = err, true
	}
	return err
}

func (w *Writer) Flush() error { return w.fail(w.bw.Flush()) }

// Abort marks the response as broken after its head went out: the body
// is not completed, and the connection closes.
func (w *Writer) Abort() {
	if w.err == nil {
		w.err = errors.New("h1: response aborted")
	}
	w.close = true
}

// finish ends the body. A body shorter than its announced length, or one
// cut by an error, cannot be framed any more: the connection closes, which
// the client reads as a truncated response, never as a complete one.
func (w *Writer) finish() {
	if !w.wroteHead {
		w.close = true
		msg := "500 " + StatusText(500) + ": no response\n"
		w.SetContentLength(int64(len(msg)))
		w.WriteHead(500, textFields)
		w.Write([]byte(msg))
	}
	if w.err != nil {
		w.close = true
		return
	}
	if w.chunked != nil {
		w.chunked.Close()
	}
	if !w.noBody && w.length >= 0 && w.written != w.length {
		w.close = true
	}
}

// textFields is the head of the front's own short answers.
var textFields = parser.Fields{{Name: []byte("Content-Type"), Value: []byte("text/plain; charset=utf-8")}}

// WriteInterim sends a 1xx head before the final response and flushes
// it. HTTP/1.0 clients get none (RFC 9110 §15.2): it is dropped.
func (w *Writer) WriteInterim(status int, fields parser.Fields) error {
	if w.wroteHead {
		return errInterimLate
	}
	if w.reqMajor == 1 && w.reqMinor == 0 {
		return nil
	}
	bw := w.bw
	bw.WriteString(statusLine(status))
	for _, f := range fields {
		if parser.HopByHop(f.Name) || parser.EqualFold(f.Name, "Content-Length") {
			continue
		}
		bw.Write(f.Name)
		bw.WriteString(": ")
		bw.Write(f.Value)
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	return bw.Flush()
}

// errInterimLate is an interim head after the final one.
var errInterimLate = errors.New("h1: interim response after the final head")

// StatusText is net/http's reason phrase, or a neutral one for codes it
// does not know (RFC 9112 §4 lets the reason be anything).
func StatusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	if code == 499 {
		return "Client Closed Request"
	}
	return "Status"
}

// statusLines are the HTTP/1.1 status lines of the codes 100 to 599, made
// once: a response head starts with one.
var statusLines = func() (t [500]string) {
	for i := range t {
		code := 100 + i
		t[i] = "HTTP/1.1 " + strconv.Itoa(code) + " " + StatusText(code) + "\r\n"
	}
	return t
}()

// statusLine is the status line of code, CRLF included.
func statusLine(code int) string {
	if code >= 100 && code < 600 {
		return statusLines[code-100]
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " " + StatusText(code) + "\r\n"
}
