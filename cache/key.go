package cache

import (
	"bytes"
	"slices"
	"strings"

	"accel/parser"
	"accel/policy"
)

// primaryKey is the URI a request's responses are stored under: scheme,
// lower-cased host without the scheme's default port, and the target with
// the route's query options applied.
func primaryKey(scheme string, host, target []byte, ko *policy.KeyOptions) string {
	t := string(target)
	if i := strings.Index(t, "://"); i >= 0 {
		// absolute-form: the authority in the target wins over Host
		// (RFC 9112 §3.2.2).
		rest := t[i+3:]
		j := strings.IndexAny(rest, "/?")
		switch {
		case j < 0:
			host, t = []byte(rest), "/"
		case rest[j] == '?':
			host, t = []byte(rest[:j]), "/"+rest[j:]
		default:
			host, t = []byte(rest[:j]), rest[j:]
		}
	}
	return scheme + "://" + normalHost(scheme, string(host)) + shapeQuery(t, ko)
}

// normalHost lower-cases host and drops the default port of scheme.
func normalHost(scheme, host string) string {
	host = strings.ToLower(host)
	switch {
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	}
	return host
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
	var b strings.Builder
	for _, h := range ko.Headers {
		b.WriteString(h)
		b.WriteByte('=')
		b.WriteString(fieldValue(fs, h))
		b.WriteByte(0)
	}
	for _, c := range ko.Cookies {
		b.WriteString("cookie:")
		b.WriteString(c)
		b.WriteByte('=')
		b.WriteString(cookieValue(fs, c))
		b.WriteByte(0)
	}
	return b.String()
}

// absent stands for a field the request does not carry, which must not
// match one it carries empty.
const absent = "\x01"

// fieldValue is the normalised value of every line of the field name:
// list members trimmed and joined by ",", and for the Accept family
// normalised by normalAccept (its tokens are case-insensitive). Other
// values keep their case: lower-casing a Cookie would merge distinct users.
func fieldValue(fs parser.Fields, name string) string {
	var b []byte
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
			if len(b) > 0 {
				b = append(b, ',')
			}
			b = append(b, item...)
		}
	}
	if !found {
		return absent
	}
	if len(name) >= 6 && strings.EqualFold(name[:6], "accept") {
		// Accept, Accept-Encoding, Accept-Language, Accept-Charset:
		// order, case and the spelling of weights do not change what the
		// client asks for.
		b = normalAccept(b)
	}
	return string(b)
}

func cookieValue(fs parser.Fields, name string) string {
	for _, f := range fs {
		if !parser.EqualFold(f.Name, "cookie") {
			continue
		}
		for pair := range bytes.SplitSeq(f.Value, []byte{';'}) {
			k, v, _ := bytes.Cut(bytes.TrimSpace(pair), []byte{'='})
			if string(k) == name {
				return string(v)
			}
		}
	}
	return absent
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
	var b strings.Builder
	b.WriteString(extras)
	for _, n := range vary {
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(fieldValue(fs, n))
		b.WriteByte(0)
	}
	return b.String()
}
