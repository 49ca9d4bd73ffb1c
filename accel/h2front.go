package accel

import (
	"context"
	"io"

	"accel/h2"
	"accel/parser"
)

// h2Handler is the pipeline as the HTTP/2 front sees it.
type h2Handler struct{ s *Server }

var _ h2.Handler = h2Handler{}

// ServeFast answers on the connection's goroutine what needs no waiting.
// The pipeline has no such fast path yet: every request goes to Serve.
func (h h2Handler) ServeFast(req *parser.Request, w *h2.Writer, c *h2.Conn) bool {
	return false
}

// Serve runs the pipeline for a request that must wait.
func (h h2Handler) Serve(ctx context.Context, req *parser.Request, body io.Reader, w *h2.Writer, c h2.Conn) {
	h.s.serve(ctx, &exchange{req: req, body: body, tls: c.TLS, proto: "h2", remote: c.Remote, w: w})
}
