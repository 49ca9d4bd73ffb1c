package accel

import (
	"context"
	"io"
	"net"

	"github.com/accel-proxy/accel/h2"
	"github.com/accel-proxy/accel/parser"
)

// h2Handler is the pipeline as the HTTP/2 front sees it.
type h2Handler struct{ s *Server }

var _ h2.Handler = h2Handler{}

// ServeFast answers on the connection's goroutine what needs no waiting
// (serveFast). The connection keeps one slot in c.Fast for the
// requests answered so, which then allocate nothing.
func (h h2Handler) ServeFast(req *parser.Request, w *h2.Writer, c *h2.Conn) bool {
	sl := slotIn(&c.Fast)
	ex := &sl.ex
	*ex = exchange{req: req, tls: c.TLS, proto: "h2", remote: c.Remote, w: w, hostBuf: ex.hostBuf, client: ex.client, addr: ex.addr, logHost: ex.logHost}
	return h.s.serveFast(sl)
}

// Serve runs the pipeline for a request that must wait.
func (h h2Handler) Serve(ctx context.Context, req *parser.Request, body io.Reader, w *h2.Writer, c h2.Conn) {
	sl := &slot{ex: exchange{req: req, body: body, tls: c.TLS, proto: "h2", remote: c.Remote, w: w}}
	h.s.serve(ctx, sl)
}

// Refused logs a stream the front turned away before the pipeline saw it
// (counted already, by the front's Count).
func (h h2Handler) Refused(remote net.Addr, status int, reason string) {
	h.s.logRefused(remote, "h2", status, reason)
}
