package accel

import (
	"github.com/accel-proxy/accel/parser"
)

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

// Interim is the upstream callback that hands an origin's 1xx to the
// client, hop-by-hop fields removed.
func (p *pass) Interim(status int, fields parser.Fields) {
	p.cw.WriteInterim(status, parser.StripHopByHop(fields))
}
