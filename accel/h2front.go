package accel

import (
	"context"
	"io"

	"accel/h2"
	"accel/parser"
)

// serveH2 is the HTTP/2 front's entry to the pipeline.
func (s *Server) serveH2(ctx context.Context, req *parser.Request, body io.Reader, w *h2.Writer, c h2.Conn) {
	s.serve(ctx, &exchange{req: req, body: body, tls: c.TLS, proto: "h2", remote: c.Remote, w: w})
}
