package accesslog

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Record is one access log line before formatting. Its byte slices may
// alias the request's buffers: Write formats it before it returns.
type Record struct {
	End          time.Time
	Client       string
	Proto        string // "h1" or "h2"
	Minor        int    // HTTP/1.x minor version
	Method       []byte
	Host         string
	Target       []byte
	Status       int
	Bytes        int64
	Duration     time.Duration
	UpstreamTime time.Duration // <0: no origin was asked
	Upstream     string
	Cache        string
	Route        string
	UserAgent    []byte
	Referer      []byte
	XFF          []byte
	RequestID    []byte
	Err          string
	// Refused names the parser rejection of a request that never reached
	// the pipeline.
	Refused string
}

func protoText(r *Record) string {
	switch {
	case r.Proto == "h2":
		return "HTTP/2.0"
	case r.Minor == 0:
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// appendCombined writes nginx's and Apache's "combined" format:
// $remote_addr - $remote_user [$time_local] "$request" $status
// $body_bytes_sent "$http_referer" "$http_user_agent".
func appendCombined(b []byte, r *Record) []byte {
	b = appendDash(b, r.Client)
	b = append(b, " - - ["...)
	b = r.End.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendRequestLine(b, r)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.Bytes, 10)
	b = append(b, " \""...)
	b = appendEscaped(b, r.Referer)
	b = append(b, "\" \""...)
	b = appendEscaped(b, r.UserAgent)
	return append(b, '"')
}

// appendRequestLine is $request: the request line as received, or "-"
// for a request refused before it could be parsed.
func appendRequestLine(b []byte, r *Record) []byte {
	if len(r.Method) == 0 {
		return append(b, '-')
	}
	b = appendEscaped(b, r.Method)
	b = append(b, ' ')
	b = appendEscaped(b, r.Target)
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
func appendJSON(b []byte, r *Record) []byte {
	b = append(b, `{"time":`...)
	b = appendJSONString(b, r.End.Format(time.RFC3339Nano))
	b = append(b, `,"client":`...)
	b = appendJSONString(b, r.Client)
	b = append(b, `,"proto":`...)
	b = appendJSONString(b, protoText(r))
	b = append(b, `,"method":`...)
	b = appendJSONString(b, string(r.Method))
	b = append(b, `,"host":`...)
	b = appendJSONString(b, r.Host)
	b = append(b, `,"uri":`...)
	b = appendJSONString(b, string(r.Target))
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, r.Bytes, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendFloat(b, r.Duration.Seconds(), 'f', 6, 64)
	b = append(b, `,"upstream_time":`...)
	if r.UpstreamTime >= 0 {
		b = strconv.AppendFloat(b, r.UpstreamTime.Seconds(), 'f', 6, 64)
	} else {
		b = append(b, "null"...)
	}
	for _, f := range []struct {
		k, v string
	}{{"upstream", r.Upstream}, {"cache", r.Cache}, {"route", r.Route}, {"user_agent", string(r.UserAgent)},
		{"referer", string(r.Referer)}, {"xff", string(r.XFF)}, {"request_id", string(r.RequestID)},
		{"refused", r.Refused}, {"err", r.Err}} {
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
	v   func(b []byte, r *Record) []byte
}

func (p tmplPart) append(b []byte, r *Record) []byte {
	if p.v == nil {
		return append(b, p.lit...)
	}
	return p.v(b, r)
}

// templateVars are the variables an access_template may use: nginx's
// names where nginx has one, so that an nginx log_format carries over.
var templateVars = map[string]func(b []byte, r *Record) []byte{
	"remote_addr": func(b []byte, r *Record) []byte { return appendDash(b, r.Client) },
	"time_local":  func(b []byte, r *Record) []byte { return r.End.AppendFormat(b, "02/Jan/2006:15:04:05 -0700") },
	"time_iso8601": func(b []byte, r *Record) []byte {
		return r.End.AppendFormat(b, time.RFC3339)
	},
	"msec": func(b []byte, r *Record) []byte {
		return strconv.AppendFloat(b, float64(r.End.UnixMilli())/1000, 'f', 3, 64)
	},
	"request":         appendRequestLine,
	"request_method":  func(b []byte, r *Record) []byte { return appendEscaped(b, r.Method) },
	"request_uri":     func(b []byte, r *Record) []byte { return appendEscaped(b, r.Target) },
	"host":            func(b []byte, r *Record) []byte { return appendDash(b, r.Host) },
	"server_protocol": func(b []byte, r *Record) []byte { return append(b, protoText(r)...) },
	"status":          func(b []byte, r *Record) []byte { return strconv.AppendInt(b, int64(r.Status), 10) },
	"body_bytes_sent": func(b []byte, r *Record) []byte { return strconv.AppendInt(b, r.Bytes, 10) },
	"request_time": func(b []byte, r *Record) []byte {
		return strconv.AppendFloat(b, r.Duration.Seconds(), 'f', 3, 64)
	},
	"upstream_response_time": func(b []byte, r *Record) []byte {
		if r.UpstreamTime < 0 {
			return append(b, '-')
		}
		return strconv.AppendFloat(b, r.UpstreamTime.Seconds(), 'f', 3, 64)
	},
	"upstream_addr":         func(b []byte, r *Record) []byte { return appendDash(b, r.Upstream) },
	"upstream_cache_status": func(b []byte, r *Record) []byte { return appendDash(b, r.Cache) },
	"cache_status":          func(b []byte, r *Record) []byte { return appendDash(b, r.Cache) },
	"route":                 func(b []byte, r *Record) []byte { return appendDash(b, r.Route) },
	"http_user_agent":       func(b []byte, r *Record) []byte { return appendEscaped(b, r.UserAgent) },
	"http_referer":          func(b []byte, r *Record) []byte { return appendEscaped(b, r.Referer) },
	"http_x_forwarded_for":  func(b []byte, r *Record) []byte { return appendEscaped(b, r.XFF) },
	"request_id":            func(b []byte, r *Record) []byte { return appendEscaped(b, r.RequestID) },
	"refused":               func(b []byte, r *Record) []byte { return appendDash(b, r.Refused) },
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
