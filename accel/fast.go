package accel

import (
	"bytes"

	"github.com/accel-proxy/accel/cache"
	"github.com/accel-proxy/accel/parser"
)

// serveFast answers ex when the answer needs no wait: a fresh hit whose
// body is in memory, a 304 from a stored validator, a refusal such as a
// request no route takes. It runs on the front's own goroutine and costs
// no goroutine, context, timer, deadline change or allocation. It returns
// false having written nothing otherwise, and the front then sets up what
// waiting needs (a context, the watch for an aborting client) and calls
// serve. Both fronts call it first for every request without a body.
func (s *Server) serveFast(sl *slot) bool {
	ex := &sl.ex
	req := ex.req
	if string(req.Method) != "GET" && string(req.Method) != "HEAD" || len(req.Target) == 0 || req.Target[0] != '/' {
		return false
	}
	start := mono()
	st := s.acquire()
	defer st.release()
	ex.hostBuf = appendRouteHost(ex.hostBuf[:0], req.Host)
	host, target := parser.Alias(ex.hostBuf), req.Target
	path := target
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	cw := &ex.cw
	*cw = countingWriter{responseWriter: ex.w, head: string(req.Method) == "HEAD"}
	route := st.cfg.Match(host, parser.Alias(path))
	ex.route = route
	if route == nil {
		writeErrorBody(cw, 404, noRouteBody, nil)
		s.logAccess(st, sl, target, cw, "error", nil, nil, mono()-start)
		return true
	}
	if !route.Cache.Enabled || s.cache == nil {
		ex.began = start
		return false
	}
	cw.rules = responseRules(route, ex)
	out, ok, err := s.cache.ServeFresh(&cache.Request{Scheme: schemeOf(ex), Head: req}, &route.Cache, cw)
	if !ok {
		ex.began = start
		return false
	}
	if err != nil {
		cw.Abort()
	}
	s.logAccess(st, sl, target, cw, out.Status, nil, err, mono()-start)
	return true
}

var noRouteBody = errorBody(404, "no route for this host and path")

// appendRouteHost appends h as routes match it: lower-cased, without a
// port (normalHost without its allocation).
func appendRouteHost(dst, h []byte) []byte {
	if i := bytes.LastIndexByte(h, ':'); i >= 0 && bytes.IndexByte(h[i:], ']') < 0 {
		h = h[:i]
	}
	for _, c := range h {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
