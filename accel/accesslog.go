package accel

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"accel/parser"
)

// countingWriter sits between the pipeline and a front: it adds Via to
// every response and keeps what the access log and metrics report.
type countingWriter struct {
	responseWriter
	status int
	bytes  int64
	// mu orders interim heads before the final one; final is set once
	// the final head is on its way or the request ended (interim.go).
	mu    sync.Mutex
	final bool
}

func (c *countingWriter) WriteHead(status int, fields parser.Fields) error {
	c.finish()
	c.status = status
	via := []byte("1.1 accel")
	out := make(parser.Fields, 0, len(fields)+1)
	for _, f := range fields {
		if parser.EqualFold(f.Name, "Via") {
			via = appendList(append([]byte(nil), f.Value...), via)
			continue
		}
		out = append(out, f)
	}
	out = append(out, parser.Field{Name: []byte("Via"), Value: via})
	return c.responseWriter.WriteHead(status, out)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.responseWriter.Write(p)
	c.bytes += int64(n)
	return n, err
}

// logAccess writes the access log line and counts the request.
func (s *Server) logAccess(ex *exchange, host string, target []byte, cw *countingWriter, result string, server *string, err error, d time.Duration) {
	var in int64
	if ex.req.ContentLength > 0 {
		in = ex.req.ContentLength
	}
	s.metrics.ObserveRequest(ex.proto, cw.status, result, in, cw.bytes, d)
	st := s.state.Load()
	if st.cfg.Log.Access != nil && !*st.cfg.Log.Access {
		return
	}
	if !s.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("proto", ex.proto),
		slog.String("method", string(ex.req.Method)),
		slog.String("host", host),
		slog.String("path", string(target)),
		slog.Int("status", cw.status),
		slog.Int64("bytes", cw.bytes),
		slog.Duration("duration", d),
		slog.String("cache", result),
		slog.String("upstream", upstreamName(server)),
		slog.String("client", clientIP(ex.remote)),
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "access", attrs...)
}

func upstreamName(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
