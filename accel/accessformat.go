package accel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/accel-proxy/accel/policy"
)

// accessRecord is one access log line before formatting.
type accessRecord struct {
	end          time.Time
	client       string
	proto        string // "h1" or "h2"
	minor        int    // HTTP/1.x minor version
	method       []byte
	host         string
	target       []byte
	status       int
	bytes        int64
	duration     time.Duration
	upstreamTime time.Duration // <0: no origin was asked
	upstream     string
	cache        string
	route        string
	userAgent    []byte
	referer      []byte
	xff          []byte
	requestID    []byte
	err          string
	// refused names the parser rejection of a request that never reached
	// the pipeline.
	refused string
}

// accessLog is the access log of one config generation: whether it is
// on, its format, and where it goes.
type accessLog struct {
	on     bool
	format string     // log, combined, json, template
	tmpl   []tmplPart // format template
	// log receives format "log" records; out the other formats' lines.
	log  *slog.Logger
	out  io.Writer
	file *logFile // nil when writing to stderr
	bufs sync.Pool
}

// defaultAccessKeep is log.access_keep's default: the rotated access
// files kept.
const defaultAccessKeep = 5

var stderrLines = &lockedWriter{w: os.Stderr}

// newAccessLog builds the access log of cfg. reuse is the running
// generation's file: kept when the path is the same, so a reload neither
// reopens nor loses lines.
func newAccessLog(cfg *policy.Config, errLog *slog.Logger, reuse *logFile) (*accessLog, error) {
	lc := cfg.Log
	a := &accessLog{on: lc.Access == nil || *lc.Access, format: lc.AccessFormat, log: errLog, out: stderrLines}
	if a.format == "" {
		a.format = "log"
	}
	a.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	if a.format == "template" {
		t, err := parseTemplate(lc.AccessTemplate)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Where("log", "access_template"), err)
		}
		a.tmpl = t
	}
	if !a.on || lc.AccessFile == "" {
		return a, nil
	}
	keep := lc.AccessKeep
	if keep == 0 {
		keep = defaultAccessKeep
	}
	if reuse != nil && reuse.path == lc.AccessFile && reuse.maxSize == int64(lc.AccessMaxSize) && reuse.keep == keep {
		a.file = reuse
	} else {
		f, err := openLogFile(lc.AccessFile, int64(lc.AccessMaxSize), keep)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Where("log", "access_file"), err)
		}
		a.file = f
	}
	a.out = a.file
	if a.format == "log" {
		if lc.Format == "json" {
			a.log = slog.New(slog.NewJSONHandler(a.file, nil))
		} else {
			a.log = slog.New(slog.NewTextHandler(a.file, nil))
		}
	}
	return a, nil
}

// write formats r and writes it as one line.
func (a *accessLog) write(r *accessRecord) {
	if !a.on {
		return
	}
	if a.format == "log" {
		a.slogRecord(r)
		return
	}
	bp := a.bufs.Get().(*[]byte)
	b := (*bp)[:0]
	switch a.format {
	case "combined":
		b = appendCombined(b, r)
	case "json":
		b = appendJSON(b, r)
	case "template":
		for _, p := range a.tmpl {
			b = p.append(b, r)
		}
	}
	b = append(b, '\n')
	a.out.Write(b)
	*bp = b
	a.bufs.Put(bp)
}

func (a *accessLog) slogRecord(r *accessRecord) {
	if !a.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("proto", r.proto),
		slog.String("method", string(r.method)),
		slog.String("host", r.host),
		slog.String("path", string(r.target)),
		slog.Int("status", r.status),
		slog.Int64("bytes", r.bytes),
		slog.Float64("duration", r.duration.Seconds()),
		slog.String("cache", r.cache),
		slog.String("route", r.route),
		slog.String("upstream", r.upstream),
		slog.String("client", r.client),
		slog.String("request_id", string(r.requestID)),
	}
	if r.upstreamTime >= 0 {
		attrs = append(attrs, slog.Float64("upstream_time", r.upstreamTime.Seconds()))
	}
	for _, f := range []struct {
		k string
		v []byte
	}{{"user_agent", r.userAgent}, {"referer", r.referer}, {"xff", r.xff}} {
		if f.v != nil {
			attrs = append(attrs, slog.String(f.k, string(f.v)))
		}
	}
	if r.refused != "" {
		attrs = append(attrs, slog.String("refused", r.refused))
	}
	if r.err != "" {
		attrs = append(attrs, slog.String("err", r.err))
	}
	a.log.LogAttrs(context.Background(), slog.LevelInfo, "access", attrs...)
}

// Reopen reopens the access file (SIGUSR1); nothing to do on stderr.
func (a *accessLog) Reopen() error {
	if a.file == nil {
		return nil
	}
	return a.file.Reopen()
}

func protoText(r *accessRecord) string {
	switch {
	case r.proto == "h2":
		return "HTTP/2.0"
	case r.minor == 0:
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// appendCombined writes nginx's and Apache's "combined" format:
// $remote_addr - $remote_user [$time_local] "$request" $status
// $body_bytes_sent "$http_referer" "$http_user_agent".
func appendCombined(b []byte, r *accessRecord) []byte {
	b = appendDash(b, r.client)
	b = append(b, " - - ["...)
	b = r.end.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendRequestLine(b, r)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(r.status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.bytes, 10)
	b = append(b, " \""...)
	b = appendEscaped(b, r.referer)
	b = append(b, "\" \""...)
	b = appendEscaped(b, r.userAgent)
	return append(b, '"')
}

// appendRequestLine is $request: the request line as received, or "-"
// for a request refused before it could be parsed.
func appendRequestLine(b []byte, r *accessRecord) []byte {
	if len(r.method) == 0 {
		return append(b, '-')
	}
	b = appendEscaped(b, r.method)
	b = append(b, ' ')
	b = appendEscaped(b, r.target)
	b = append(b, ' ')
	return append(b, protoText(r)...)
}

func appendDash(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return append(b, s...)
}

// appendEscaped writes v as nginx does inside quotes: '"', '\' and bytes
// outside printable ASCII as \xHH, so that a client cannot forge a line
// or a field; empty is "-".
func appendEscaped(b []byte, v []byte) []byte {
	if len(v) == 0 {
		return append(b, '-')
	}
	const hexd = "0123456789ABCDEF"
	for _, c := range v {
		if c == '"' || c == '\\' || c < 0x20 || c > 0x7e {
			b = append(b, '\\', 'x', hexd[c>>4], hexd[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}

// appendJSON writes one JSON object; durations are seconds, as
// Prometheus and most log pipelines expect.
func appendJSON(b []byte, r *accessRecord) []byte {
	b = append(b, `{"time":`...)
	b = appendJSONString(b, r.end.Format(time.RFC3339Nano))
	b = append(b, `,"client":`...)
	b = appendJSONString(b, r.client)
	b = append(b, `,"proto":`...)
	b = appendJSONString(b, protoText(r))
	b = append(b, `,"method":`...)
	b = appendJSONString(b, string(r.method))
	b = append(b, `,"host":`...)
	b = appendJSONString(b, r.host)
	b = append(b, `,"uri":`...)
	b = appendJSONString(b, string(r.target))
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, r.bytes, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendFloat(b, r.duration.Seconds(), 'f', 6, 64)
	b = append(b, `,"upstream_time":`...)
	if r.upstreamTime >= 0 {
		b = strconv.AppendFloat(b, r.upstreamTime.Seconds(), 'f', 6, 64)
	} else {
		b = append(b, "null"...)
	}
	for _, f := range []struct {
		k, v string
	}{{"upstream", r.upstream}, {"cache", r.cache}, {"route", r.route}, {"user_agent", string(r.userAgent)},
		{"referer", string(r.referer)}, {"xff", string(r.xff)}, {"request_id", string(r.requestID)},
		{"refused", r.refused}, {"err", r.err}} {
		if f.v == "" {
			continue
		}
		b = append(b, ',')
		b = appendJSONString(b, f.k)
		b = append(b, ':')
		b = appendJSONString(b, f.v)
	}
	return append(b, '}')
}

// appendJSONString writes s as a JSON string; invalid UTF-8 becomes
// U+FFFD, so every line stays valid JSON whatever a client sent.
func appendJSONString(b []byte, s string) []byte {
	const hexd = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&15])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		b = utf8.AppendRune(b, r)
		i += size
	}
	return append(b, '"')
}

// tmplPart is a literal or one $variable of an access_template.
type tmplPart struct {
	lit string
	v   func(b []byte, r *accessRecord) []byte
}

func (p tmplPart) append(b []byte, r *accessRecord) []byte {
	if p.v == nil {
		return append(b, p.lit...)
	}
	return p.v(b, r)
}

// templateVars are the variables an access_template may use: nginx's
// names where nginx has one, so that an nginx log_format carries over.
var templateVars = map[string]func(b []byte, r *accessRecord) []byte{
	"remote_addr": func(b []byte, r *accessRecord) []byte { return appendDash(b, r.client) },
	"time_local":  func(b []byte, r *accessRecord) []byte { return r.end.AppendFormat(b, "02/Jan/2006:15:04:05 -0700") },
	"time_iso8601": func(b []byte, r *accessRecord) []byte {
		return r.end.AppendFormat(b, time.RFC3339)
	},
	"msec": func(b []byte, r *accessRecord) []byte {
		return strconv.AppendFloat(b, float64(r.end.UnixMilli())/1000, 'f', 3, 64)
	},
	"request":         appendRequestLine,
	"request_method":  func(b []byte, r *accessRecord) []byte { return appendEscaped(b, r.method) },
	"request_uri":     func(b []byte, r *accessRecord) []byte { return appendEscaped(b, r.target) },
	"host":            func(b []byte, r *accessRecord) []byte { return appendDash(b, r.host) },
	"server_protocol": func(b []byte, r *accessRecord) []byte { return append(b, protoText(r)...) },
	"status":          func(b []byte, r *accessRecord) []byte { return strconv.AppendInt(b, int64(r.status), 10) },
	"body_bytes_sent": func(b []byte, r *accessRecord) []byte { return strconv.AppendInt(b, r.bytes, 10) },
	"request_time": func(b []byte, r *accessRecord) []byte {
		return strconv.AppendFloat(b, r.duration.Seconds(), 'f', 3, 64)
	},
	"upstream_response_time": func(b []byte, r *accessRecord) []byte {
		if r.upstreamTime < 0 {
			return append(b, '-')
		}
		return strconv.AppendFloat(b, r.upstreamTime.Seconds(), 'f', 3, 64)
	},
	"upstream_addr":         func(b []byte, r *accessRecord) []byte { return appendDash(b, r.upstream) },
	"upstream_cache_status": func(b []byte, r *accessRecord) []byte { return appendDash(b, r.cache) },
	"cache_status":          func(b []byte, r *accessRecord) []byte { return appendDash(b, r.cache) },
	"route":                 func(b []byte, r *accessRecord) []byte { return appendDash(b, r.route) },
	"http_user_agent":       func(b []byte, r *accessRecord) []byte { return appendEscaped(b, r.userAgent) },
	"http_referer":          func(b []byte, r *accessRecord) []byte { return appendEscaped(b, r.referer) },
	"http_x_forwarded_for":  func(b []byte, r *accessRecord) []byte { return appendEscaped(b, r.xff) },
	"request_id":            func(b []byte, r *accessRecord) []byte { return appendEscaped(b, r.requestID) },
	"refused":               func(b []byte, r *accessRecord) []byte { return appendDash(b, r.refused) },
}

// parseTemplate splits an access_template into literals and variables
// ($name or ${name}); an unknown variable is an error naming it.
func parseTemplate(t string) ([]tmplPart, error) {
	var parts []tmplPart
	isName := func(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
	for len(t) > 0 {
		i := strings.IndexByte(t, '$')
		if i < 0 {
			parts = append(parts, tmplPart{lit: t})
			break
		}
		if i > 0 {
			parts = append(parts, tmplPart{lit: t[:i]})
		}
		t = t[i+1:]
		var name string
		if strings.HasPrefix(t, "{") {
			end := strings.IndexByte(t, '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed ${ in access_template")
			}
			name, t = t[1:end], t[end+1:]
		} else {
			j := 0
			for j < len(t) && isName(t[j]) {
				j++
			}
			name, t = t[:j], t[j:]
		}
		v, ok := templateVars[name]
		if !ok {
			known := make([]string, 0, len(templateVars))
			for k := range templateVars {
				known = append(known, k)
			}
			slices.Sort(known)
			return nil, fmt.Errorf("unknown variable $%s (known: %s)", name, strings.Join(known, " "))
		}
		parts = append(parts, tmplPart{v: v})
	}
	return parts, nil
}

// requestIDs makes request ids: a random per-process prefix and a
// counter, unique across restarts and instances without a random read
// per request.
var requestIDs struct {
	prefix [16]byte // hex of 8 random bytes
	n      atomic.Uint64
}

func init() {
	var p [8]byte
	rand.Read(p[:])
	hex.Encode(requestIDs.prefix[:], p[:])
}

func appendRequestID(b []byte) []byte {
	b = append(b, requestIDs.prefix[:]...)
	n := requestIDs.n.Add(1)
	var c [16]byte
	for i := 15; i >= 0; i-- {
		c[i] = "0123456789abcdef"[n&15]
		n >>= 4
	}
	return append(b, c[:]...)
}

// usableRequestID reports whether a client's X-Request-Id may be passed
// on: 1 to 128 visible ASCII characters, so it cannot break a log line or
// a header.
func usableRequestID(v []byte) bool {
	if len(v) == 0 || len(v) > 128 {
		return false
	}
	for _, c := range v {
		if c <= 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// requestID returns the request's id: the client's X-Request-Id when
// usable, else a new one, made once per request.
func (ex *exchange) requestID() []byte {
	if ex.reqID == nil {
		if v := ex.req.Fields.Get("X-Request-Id"); usableRequestID(v) {
			ex.reqID = v
		} else {
			ex.reqID = appendRequestID(ex.idBuf[:0])
		}
	}
	return ex.reqID
}
