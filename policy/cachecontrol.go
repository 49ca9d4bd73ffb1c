package policy

import (
	"bytes"
	"strings"
	"time"

	"github.com/accel-proxy/accel/parser"
)

// CacheControl holds the directives of the Cache-Control field lines of one
// message (RFC 9111 §5.2, RFC 5861). A delta-seconds directive that is
// absent is -1; "max-stale" without a value is MaxStaleAny.
type CacheControl struct {
	// Request and response directives.
	NoCache     bool
	NoStore     bool
	MaxAge      time.Duration
	NoTransform bool
	// StaleIfError (RFC 5861 §4) is valid in both directions.
	StaleIfError time.Duration

	// Request directives.
	MaxStale     time.Duration
	MinFresh     time.Duration
	OnlyIfCached bool

	// Response directives.
	Public          bool
	Private         bool
	MustRevalidate  bool
	ProxyRevalidate bool
	MustUnderstand  bool
	SMaxAge         time.Duration
	Immutable       bool
	// StaleWhileRevalidate is RFC 5861 §3.
	StaleWhileRevalidate time.Duration
	// PrivateFields and NoCacheFields are the field names of the qualified
	// forms private="a, b" and no-cache="a", lower-cased. The unqualified
	// forms leave them nil and set Private or NoCache.
	PrivateFields []string
	NoCacheFields []string
	// Targeted is set when the directives came from a targeted field
	// (RFC 9213): they replace Cache-Control, and Expires is ignored.
	Targeted bool
}

// MaxStaleAny is the MaxStale of a bare "max-stale": any staleness is
// acceptable to the client.
const MaxStaleAny = time.Duration(1<<63 - 1)

// deltaCap is the largest delta-seconds a cache has to represent; larger
// values are read as it (RFC 9111 §1.2.2).
const deltaCap = 1 << 31

// ParseCacheControl reads every Cache-Control line of fs as one list.
//
// Where RFC 9111 lets a recipient choose, the choice is the safe one: a
// duplicated delta directive keeps its first value (§4.2.1), and a delta
// directive whose value is not a number is read as 0, which makes the
// response stale rather than guessing a lifetime.
func ParseCacheControl(fs parser.Fields) CacheControl {
	cc := CacheControl{MaxAge: -1, SMaxAge: -1, MaxStale: -1, MinFresh: -1,
		StaleWhileRevalidate: -1, StaleIfError: -1}
	for _, f := range fs {
		if parser.EqualFold(f.Name, "cache-control") {
			cc.parse(f.Value)
		}
	}
	return cc
}

// ParseRequestCacheControl is ParseCacheControl for a request: without a
// Cache-Control field, "Pragma: no-cache" stands for "Cache-Control:
// no-cache". RFC 7234 §5.4 required this; RFC 9111 §5.4 deprecates Pragma,
// and revalidating for it remains conformant and what HTTP/1.0 clients mean.
func ParseRequestCacheControl(fs parser.Fields) CacheControl {
	cc := ParseCacheControl(fs)
	if fs.Has("cache-control") {
		return cc
	}
	for _, f := range fs {
		if parser.EqualFold(f.Name, "pragma") && parser.HasToken(f.Value, "no-cache") {
			cc.NoCache = true
		}
	}
	return cc
}

func (cc *CacheControl) parse(v []byte) {
	for len(v) > 0 {
		nb, ab, quoted, rest := nextDirective(v)
		v = rest
		if len(nb) == 0 {
			continue
		}
		// name and arg live only in this loop (nothing keeps them), so
		// a short name is lowered on the stack and both are read as
		// strings in place: parsing a response's Cache-Control allocates
		// and copies nothing.
		var lower [24]byte
		if len(nb) <= len(lower) {
			for i, c := range nb {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				lower[i] = c
			}
			nb = lower[:len(nb)]
		}
		name, arg := parser.Alias(nb), parser.Alias(ab)
		if len(nb) > len(lower) {
			name = strings.ToLower(name)
		}
		if f := cc.flag(name); f != nil {
			*f = true
			continue
		}
		if d := cc.delta(name); d != nil {
			setDelta(d, arg)
			continue
		}
		switch name {
		case "no-cache":
			if names := fieldNames(quoted); len(names) > 0 {
				cc.NoCacheFields = append(cc.NoCacheFields, names...)
			} else {
				cc.NoCache = true
			}
		case "only-if-cached":
			cc.OnlyIfCached = true
		case "private":
			if names := fieldNames(quoted); len(names) > 0 {
				cc.PrivateFields = append(cc.PrivateFields, names...)
			} else {
				cc.Private = true
			}
		case "min-fresh":
			setDelta(&cc.MinFresh, arg)
		case "max-stale":
			if cc.MaxStale >= 0 {
				continue
			}
			if arg == "" {
				cc.MaxStale = MaxStaleAny
			} else {
				setDelta(&cc.MaxStale, arg)
			}
		}
	}
}

// flag is the field of a boolean directive that Cache-Control and the
// targeted fields (RFC 9213) share; nil for any other name. Each grammar
// parses its own syntax; the directive-to-field map is this one.
func (cc *CacheControl) flag(name string) *bool {
	switch name {
	case "no-store":
		return &cc.NoStore
	case "no-transform":
		return &cc.NoTransform
	case "public":
		return &cc.Public
	case "must-revalidate":
		return &cc.MustRevalidate
	case "proxy-revalidate":
		return &cc.ProxyRevalidate
	case "must-understand":
		return &cc.MustUnderstand
	case "immutable":
		return &cc.Immutable
	}
	return nil
}

// delta is the field of a delta-seconds directive that Cache-Control and
// the targeted fields share; nil for any other name.
func (cc *CacheControl) delta(name string) *time.Duration {
	switch name {
	case "max-age":
		return &cc.MaxAge
	case "s-maxage":
		return &cc.SMaxAge
	case "stale-while-revalidate":
		return &cc.StaleWhileRevalidate
	case "stale-if-error":
		return &cc.StaleIfError
	}
	return nil
}

// nextDirective splits the first directive off v. arg is the argument
// with quotes removed; quoted is non-nil when the argument was a
// quoted-string (both forms are accepted, RFC 9111 §5.2). The grammar
// allows no whitespace around "=": such an argument keeps a leading space,
// which no delta-seconds parses, and is never quoted, so "max-age= 60" is
// invalid (stale, §4.2.1) and "no-cache= \"a\"" unqualified.
func nextDirective(v []byte) (name, arg, quoted, rest []byte) {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t' || v[0] == ',') {
		v = v[1:]
	}
	i := 0
	for i < len(v) && v[i] != '=' && v[i] != ',' {
		i++
	}
	name = bytes.TrimSpace(v[:i])
	if i == len(v) || v[i] == ',' {
		return name, nil, nil, v[i:]
	}
	spaced := len(name) < i
	v = v[i+1:]
	if len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		spaced, v = true, bytes.TrimLeft(v, " \t")
	}
	if len(v) > 0 && v[0] == '"' {
		var b []byte
		j := 1
		for ; j < len(v) && v[j] != '"'; j++ {
			if v[j] == '\\' && j+1 < len(v) {
				j++
			}
			b = append(b, v[j])
		}
		if b == nil {
			b = []byte{}
		}
		if j < len(v) {
			j++
		}
		if spaced {
			return name, append([]byte{' '}, b...), nil, v[j:]
		}
		return name, b, b, v[j:]
	}
	j := 0
	for j < len(v) && v[j] != ',' {
		j++
	}
	arg = bytes.TrimSpace(v[:j])
	if spaced {
		arg = append([]byte{' '}, arg...)
	}
	return name, arg, nil, v[j:]
}

// fieldNames lists the field names of a qualified no-cache or private,
// lower-cased; none for an unquoted or empty argument.
func fieldNames(list []byte) []string {
	if len(bytes.Trim(list, " \t,")) == 0 {
		return nil
	}
	var out []string
	for _, n := range bytes.Split(list, []byte{','}) {
		if n = bytes.TrimSpace(n); len(n) > 0 {
			out = append(out, strings.ToLower(string(n)))
		}
	}
	return out
}

// setDelta stores a delta-seconds argument unless the directive was seen
// before (first occurrence wins).
func setDelta(d *time.Duration, arg string) {
	if *d >= 0 {
		return
	}
	*d = parseDelta(arg)
}

func parseDelta(arg string) time.Duration {
	if arg == "" {
		return 0
	}
	var n int64
	for i := 0; i < len(arg); i++ {
		c := arg[i]
		if c < '0' || c > '9' {
			return 0
		}
		// Past the cap the rest is only checked to be digits.
		if n <= deltaCap {
			n = n*10 + int64(c-'0')
		}
	}
	return time.Duration(min(n, deltaCap)) * time.Second
}
