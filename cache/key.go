package cache

import (
	"bytes"
	"slices"
	"strings"

	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
)

// primaryKey is the URI a request's responses are stored under: scheme,
// lower-cased host without the scheme's default port, and the target with
// the route's query options applied.
func primaryKey(scheme string, host, target []byte, ko *policy.KeyOptions) string {
	var buf [256]byte
	return string(appendPrimaryKey(buf[:0], scheme, host, target, ko))
}

// appendPrimaryKey appends the primary key to dst. The common case, an
// origin-form target whose query the route leaves alone, costs no
// allocation beyond dst's growth: a hit builds its key in a reused buffer.
func appendPrimaryKey(dst []byte, scheme string, host, target []byte, ko *policy.KeyOptions) []byte {
	t := target
	if len(t) == 0 || t[0] != '/' {
		if i := bytes.Index(t, []byte("://")); i >= 0 {
			// absolute-form: the authority in the target wins over Host
			// (RFC 9112 §3.2.2).
			rest := t[i+3:]
			j := bytes.IndexAny(rest, "/?")
			switch {
			case j < 0:
				host, t = rest, []byte("/")
			case rest[j] == '?':
				host, t = rest[:j], append([]byte("/"), rest[j:]...)
			default:
				host, t = rest[:j], rest[j:]
			}
		}
	}
	dst = append(dst, scheme...)
	dst = append(dst, "://"...)
	dst = appendNormalHost(dst, scheme, host)
	if (len(ko.IgnoreQuery) == 0 && !ko.SortQuery) || bytes.IndexByte(t, '?') < 0 {
		return append(dst, t...)
	}
	return append(dst, shapeQuery(string(t), ko)...)
}

// appendNormalHost appends host lower-cased, without the default port of
// scheme.
func appendNormalHost(dst []byte, scheme string, host []byte) []byte {
	start := len(dst)
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	h := dst[start:]
	switch {
	case scheme == "http" && bytes.HasSuffix(h, []byte(":80")):
		dst = dst[:len(dst)-3]
	case scheme == "https" && bytes.HasSuffix(h, []byte(":443")):
		dst = dst[:len(dst)-4]
	}
	return dst
}

// normalHost is appendNormalHost for a string.
func normalHost(scheme, host string) string {
	return string(appendNormalHost(nil, scheme, []byte(host)))
}

// shapeQuery applies IgnoreQuery and SortQuery to target's query.
func shapeQuery(target string, ko *policy.KeyOptions) string {
	path, query, ok := strings.Cut(target, "?")
	if !ok || (len(ko.IgnoreQuery) == 0 && !ko.SortQuery) {
		return target
	}
	if slices.Contains(ko.IgnoreQuery, "*") {
		return path
	}
	params := strings.Split(query, "&")
	if len(ko.IgnoreQuery) > 0 {
		params = slices.DeleteFunc(params, func(p string) bool {
			name, _, _ := strings.Cut(p, "=")
			return p == "" || slices.Contains(ko.IgnoreQuery, name)
		})
	}
	if ko.SortQuery {
		slices.Sort(params)
	}
	if len(params) == 0 {
		return path
	}
	return path + "?" + strings.Join(params, "&")
}

// extraKey is the part of the secondary key the route adds: the request's
// values of KeyOptions.Headers and Cookies. Keeping them out of the primary
// key lets a purge of the URL reach every one of them.
func extraKey(fs parser.Fields, ko *policy.KeyOptions) string {
	if len(ko.Headers) == 0 && len(ko.Cookies) == 0 {
		return ""
	}
	return string(appendExtraKey(nil, fs, ko))
}

func appendExtraKey(dst []byte, fs parser.Fields, ko *policy.KeyOptions) []byte {
	for _, h := range ko.Headers {
		dst = append(dst, h...)
		dst = append(dst, '=')
		dst = appendFieldValue(dst, fs, h)
		dst = append(dst, 0)
	}
	for _, c := range ko.Cookies {
		dst = append(dst, "cookie:"...)
		dst = append(dst, c...)
		dst = append(dst, '=')
		dst = appendCookieValue(dst, fs, c)
		dst = append(dst, 0)
	}
	return dst
}

// absent stands for a field the request does not carry, which must not
// match one it carries empty.
const absent = "\x01"

// appendFieldValue appends the normalised value of every line of the
// field name: list members trimmed and joined by ",", and for the Accept
// family normalised by normalAccept (its tokens are case-insensitive).
// Other values keep their case: lower-casing a Cookie would merge
// distinct users.
func appendFieldValue(dst []byte, fs parser.Fields, name string) []byte {
	start := len(dst)
	found := false
	for _, f := range fs {
		if !parser.EqualFold(f.Name, name) {
			continue
		}
		found = true
		for item := range bytes.SplitSeq(f.Value, []byte{','}) {
			item = bytes.TrimSpace(item)
			if len(item) == 0 {
				continue
			}
			if len(dst) > start {
				dst = append(dst, ',')
			}
			dst = append(dst, item...)
		}
	}
	if !found {
		return append(dst, absent...)
	}
	if len(name) >= 6 && strings.EqualFold(name[:6], "accept") {
		// Accept, Accept-Encoding, Accept-Language, Accept-Charset:
		// order, case and the spelling of weights do not change what the
		// client asks for.
		dst = append(dst[:start], normalAccept(dst[start:])...)
	}
	return dst
}

func appendCookieValue(dst []byte, fs parser.Fields, name string) []byte {
	for _, f := range fs {
		if !parser.EqualFold(f.Name, "cookie") {
			continue
		}
		for pair := range bytes.SplitSeq(f.Value, []byte{';'}) {
			k, v, _ := bytes.Cut(bytes.TrimSpace(pair), []byte{'='})
			if string(k) == name {
				return append(dst, v...)
			}
		}
	}
	return append(dst, absent...)
}

// varyNames lists the field names of the response's Vary lines,
// lower-cased and sorted so that "B, a" and "a,b" select alike. star
// reports Vary: *, which no request ever matches.
func varyNames(fs parser.Fields) (names []string, star bool) {
	for _, f := range fs {
		if !parser.EqualFold(f.Name, "vary") {
			continue
		}
		for item := range bytes.SplitSeq(f.Value, []byte{','}) {
			item = bytes.TrimSpace(item)
			switch {
			case len(item) == 0:
			case string(item) == "*":
				star = true
			default:
				n := strings.ToLower(string(item))
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
	}
	slices.Sort(names)
	return names, star
}

// secondaryKey selects a variant: the route's extras and the request's
// values of the Vary fields (RFC 9111 §4.1).
func secondaryKey(extras string, vary []string, fs parser.Fields) string {
	if len(vary) == 0 {
		return extras
	}
	return string(appendVaryKey([]byte(extras), vary, fs))
}

// appendVaryKey appends the request's values of the Vary fields to a
// secondary key that holds the extras.
func appendVaryKey(dst []byte, vary []string, fs parser.Fields) []byte {
	for _, n := range vary {
		dst = append(dst, n...)
		dst = append(dst, '=')
		dst = appendFieldValue(dst, fs, n)
		dst = append(dst, 0)
	}
	return dst
}
