package accel

import (
	"context"
	"io"
	"net"

	"github.com/accel-proxy/accel/h1"
	"github.com/accel-proxy/accel/parser"
)

// h1Handler is the pipeline as the HTTP/1 front sees it.
type h1Handler struct{ s *Server }

var _ h1.Handler = h1Handler{}

// ServeFast answers on the connection's goroutine what needs no waiting
// (serveFast). The connection keeps one slot in c.Fast for the
// requests answered so, which then allocate nothing. Once answered, the
// exchange keeps only its own buffers: what pointed into the request head
// (the request id) would keep the connection's read buffer, which h1
// gives back between requests, from being collected.
func (h h1Handler) ServeFast(req *parser.Request, w *h1.Writer, c *h1.Conn) bool {
	sl := slotIn(&c.Fast)
	ex := &sl.ex
	*ex = exchange{req: req, tls: c.TLS, proto: "h1", remote: c.Remote, w: w, hostBuf: ex.hostBuf, client: ex.client, addr: ex.addr, logHost: ex.logHost}
	ok := h.s.serveFast(sl)
	// A request left to Serve keeps the time serveFast took it up at.
	*ex = exchange{hostBuf: ex.hostBuf, client: ex.client, addr: ex.addr, logHost: ex.logHost, began: ex.began}
	return ok
}

// Serve runs the pipeline for a request that must wait, in the
// connection's exchange and pass too: the cache's background work, which
// may outlive the request, keeps no pointer to them (see pass).
func (h h1Handler) Serve(ctx context.Context, req *parser.Request, body io.Reader, w *h1.Writer, c *h1.Conn) {
	sl := slotIn(&c.Fast)
	ex := &sl.ex
	if ex.client == "" {
		ex.remote = c.Remote
		ex.clientIP()
	}
	*ex = exchange{req: req, body: body, tls: c.TLS, proto: "h1", remote: c.Remote, w: w, client: ex.client, addr: ex.addr, hostBuf: ex.hostBuf[:0], logHost: ex.logHost[:0], began: ex.began}
	h.s.serve(ctx, sl)
	// Cleared, an idle connection keeps no config generation, route or
	// request body alive.
	sl.p = pass{}
	*ex = exchange{hostBuf: ex.hostBuf[:0], client: ex.client, addr: ex.addr, logHost: ex.logHost[:0]}
}

// Refused counts a request the front refused and logs the answered ones.
func (h h1Handler) Refused(remote net.Addr, status int, reason string) {
	h.s.metrics.IncRejection(reason)
	if status != 0 {
		h.s.logRefused(remote, "h1", status, reason)
	}
}
