package accel

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/accel-proxy/accel/accesslog"
	"github.com/accel-proxy/accel/parser"
)

// countingWriter sits between the pipeline and a front and keeps what the
// access log and metrics report.
type countingWriter struct {
	responseWriter
	status int
	bytes  int64
	head   bool // a HEAD request: a stored body is not sent
	// mu orders interim heads before the final one; final is set once
	// the final head is on its way or the request ended (interim.go).
	mu    sync.Mutex
	final bool
	// rules are the route's response header rules, nil when it has none.
	rules *respRules
}

func (c *countingWriter) WriteHead(status int, fields parser.Fields) error {
	c.finish()
	c.status = status
	if c.rules != nil {
		fields = applyHeaderOps(fields, c.rules.ops, c.rules.vars)
	}
	return c.responseWriter.WriteHead(status, fields)
}

func (c *countingWriter) WriteStored(status int, fields parser.Fields, wire []byte, extra parser.Fields, body []byte) error {
	c.finish()
	c.status = status
	if c.rules != nil {
		// The stored head is shared: the rules apply to a copy, and
		// the front gets it as fields only.
		all := append(append(parser.Fields(nil), fields...), extra...)
		fields = applyHeaderOps(all, c.rules.ops, c.rules.vars)
		wire, extra = parser.AppendFields(nil, fields), nil
	}
	err := c.responseWriter.WriteStored(status, fields, wire, extra, body)
	if err == nil && !c.head && parser.BodyAllowed(status) {
		c.bytes += int64(len(body))
	}
	return err
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.responseWriter.Write(p)
	c.bytes += int64(n)
	return n, err
}

// upstreamUse is which origin server answered a request and how long it
// took to its response head.
type upstreamUse struct {
	addr string
	took time.Duration
}

// logAccess writes the access log line and counts the request.
func (s *Server) logAccess(st *state, sl *slot, target []byte, cw *countingWriter, result string, up *upstreamUse, err error, d time.Duration) {
	ex := &sl.ex
	var in int64
	if ex.req.ContentLength > 0 {
		in = ex.req.ContentLength
	}
	s.metrics.ObserveRequest(ex.proto, cw.status, result, in, cw.bytes, d)
	path := target
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	// The status page names hosts as the log and a purge do (with a port
	// that is not the scheme's). keyed aliases the exchange's buffer:
	// what is kept beyond this call is copied.
	keyed := ex.keyedHost()
	s.metrics.ObserveTarget(unsafe.Slice(unsafe.StringData(keyed), len(keyed)), path)
	if err != nil || cw.status >= 500 {
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		s.metrics.ObserveError(cw.status, strings.Clone(keyed), string(target), msg)
	}
	// The generation the request ran under: its file stays open until
	// its last request logged (a reload may have switched files since).
	al := st.access
	if !al.On() {
		return
	}
	req := ex.req
	r := &sl.rec
	*r = accesslog.Record{
		End:          time.Now(),
		Client:       ex.clientIP(),
		Proto:        ex.proto,
		Minor:        req.Minor,
		Method:       req.Method,
		Host:         keyed,
		Target:       target,
		Status:       cw.status,
		Bytes:        cw.bytes,
		Duration:     d,
		UpstreamTime: -1,
		Cache:        result,
		UserAgent:    req.Fields.Get("User-Agent"),
		Referer:      req.Fields.Get("Referer"),
		XFF:          req.Fields.Get("X-Forwarded-For"),
		RequestID:    ex.requestID(),
	}
	if ex.route != nil {
		r.Route = ex.route.Host + ex.route.Path
	}
	if up != nil {
		r.Upstream, r.UpstreamTime = up.addr, up.took
	}
	if err != nil {
		r.Err = err.Error()
	}
	al.Write(r)
	// The line points into the request's head, which the front recycles.
	*r = accesslog.Record{}
}

// keyedHost is the request's host as the cache keys it and a purge names
// it: lower-cased, with its port unless it is the scheme's default. (The
// host without its port would send an operator purging
// http://127.0.0.1/p for what was stored under 127.0.0.1:8080.) It is
// made in the exchange's buffer and lives as long as the exchange.
func (ex *exchange) keyedHost() string {
	b := ex.logHost[:0]
	for _, c := range ex.req.Host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	if ex.tls {
		b = bytes.TrimSuffix(b, []byte(":443"))
	} else {
		b = bytes.TrimSuffix(b, []byte(":80"))
	}
	ex.logHost = b
	return parser.Alias(b)
}

// logRefused writes the access log line of a request a front refused
// before it reached the pipeline, with the reason (nginx logs these as
// 400s with what it could read); proto is the front's.
func (s *Server) logRefused(remote net.Addr, proto string, status int, reason string) {
	s.metrics.ObserveError(status, "", "", "refused: "+reason)
	st := s.acquire()
	defer st.release()
	al := st.access
	if !al.On() {
		return
	}
	al.Write(&accesslog.Record{
		End:          time.Now(),
		Client:       clientIP(remote),
		Proto:        proto,
		Minor:        1,
		Status:       status,
		UpstreamTime: -1,
		Refused:      reason,
	})
}

// ReopenLogs reopens the access log file (SIGUSR1), so that new lines go
// to a file of the configured name after logrotate moved the old one.
func (s *Server) ReopenLogs() error {
	return s.state.Load().access.Reopen()
}
