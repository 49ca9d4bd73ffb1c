package accel

import (
	"errors"
	"strconv"

	"accel/parser"
)

// WriteInterim sends a 1xx head before the final response and flushes
// it. HTTP/1.0 clients get none (RFC 9110 §15.2): it is dropped.
func (w *h1Writer) WriteInterim(status int, fields parser.Fields) error {
	if w.wroteHead {
		return errInterimLate
	}
	if w.reqMajor == 1 && w.reqMinor == 0 {
		return nil
	}
	bw := w.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(status))
	bw.WriteByte(' ')
	bw.WriteString(statusText(status))
	bw.WriteString("\r\n")
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
var errInterimLate = errors.New("accel: interim response after the final head")

// WriteInterim passes a 1xx head on while the final head is awaited and
// the request is in progress, and drops it otherwise: the origin's 1xx
// arrive on whichever goroutine fetches, which for a background
// revalidation is not the request's own and may run after it ended.
func (c *countingWriter) WriteInterim(status int, fields parser.Fields) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.final {
		return nil
	}
	return c.responseWriter.WriteInterim(status, fields)
}

// finish closes the gate for interim heads; WriteHead does too.
func (c *countingWriter) finish() {
	c.mu.Lock()
	c.final = true
	c.mu.Unlock()
}

// forwardInterim is the upstream callback that hands an origin's 1xx to
// the client, hop-by-hop fields removed.
func (c *countingWriter) forwardInterim(status int, fields parser.Fields) {
	c.WriteInterim(status, parser.StripHopByHop(fields))
}
