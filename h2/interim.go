package h2

import "github.com/accel-proxy/accel/parser"

// WriteInterim sends a 1xx head before the final response (RFC 9113
// §8.1: a HEADERS frame without END_STREAM) and pushes it out at once:
// Early Hints are worth something only while the final answer is awaited.
func (w *Writer) WriteInterim(status int, fields parser.Fields) error {
	if w.wroteHead {
		return errHeadTwice
	}
	c := w.c
	c.mu.Lock()
	if w.st.closed {
		c.mu.Unlock()
		return errStreamReset
	}
	c.writeHeadersLocked(w.st.id, status, fields, nil, -1, false)
	c.mu.Unlock()
	if w.inline {
		return nil
	}
	return c.flush()
}
