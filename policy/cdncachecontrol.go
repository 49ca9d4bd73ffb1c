package policy

import (
	"strconv"
	"strings"
	"time"

	"github.com/accel-proxy/accel/parser"
)

// CDNCacheControl is the targeted field of RFC 9213 that every CDN honours.
const CDNCacheControl = "CDN-Cache-Control"

// ResponseCacheControl is the caching policy a response sets for accel
// (RFC 9213 §2.1): the directives of the first field of the target list
// (own, when a route names one, then CDN-Cache-Control) that the response
// carries with a valid value; failing that, its Cache-Control. Directives
// from a targeted field replace Cache-Control and Expires entirely, so the
// result has Targeted set and Expires is ignored for it.
func ResponseCacheControl(fs parser.Fields, own string) CacheControl {
	if own != "" {
		if cc, ok := parseTargeted(fs, own); ok {
			return cc
		}
	}
	if cc, ok := parseTargeted(fs, CDNCacheControl); ok {
		return cc
	}
	return ParseCacheControl(fs)
}

// parseTargeted reads the targeted field name of fs, a Structured Fields
// Dictionary (RFC 8941 §3.2). ok is false when fs has no such field or its
// value is not a valid Dictionary: the field is then ignored as a whole
// (RFC 9213 §2.1). A directive whose value has the wrong type is ignored.
func parseTargeted(fs parser.Fields, name string) (cc CacheControl, ok bool) {
	var joined []byte
	for _, f := range fs {
		if parser.EqualFold(f.Name, name) {
			if ok {
				joined = append(joined, ',')
			}
			joined, ok = append(joined, f.Value...), true
		}
	}
	if !ok {
		return cc, false
	}
	members, valid := parseDictionary(string(joined))
	if !valid {
		return cc, false
	}
	cc = CacheControl{MaxAge: -1, SMaxAge: -1, MaxStale: -1, MinFresh: -1,
		StaleWhileRevalidate: -1, StaleIfError: -1, Targeted: true}
	for _, m := range members {
		if f := cc.flag(m.key); f != nil {
			*f = *f || m.isTrue()
			continue
		}
		if d := cc.delta(m.key); d != nil {
			setSFDelta(d, m)
			continue
		}
		switch m.key {
		case "no-cache":
			// A String names the fields withheld, as the quoted form of
			// Cache-Control's no-cache does (RFC 9213 §2.2).
			if m.kind == sfString {
				cc.NoCacheFields = append(cc.NoCacheFields, fieldNames([]byte(m.value))...)
			} else {
				cc.NoCache = cc.NoCache || m.isTrue()
			}
		case "private":
			if m.kind == sfString {
				cc.PrivateFields = append(cc.PrivateFields, fieldNames([]byte(m.value))...)
			} else {
				cc.Private = cc.Private || m.isTrue()
			}
		}
	}
	return cc, true
}

func setSFDelta(d *time.Duration, m sfMember) {
	if m.kind != sfInteger {
		return
	}
	n, err := strconv.ParseInt(m.value, 10, 64)
	if err != nil || n < 0 {
		return
	}
	*d = time.Duration(min(n, deltaCap)) * time.Second
}

type sfKind int

const (
	sfBoolean sfKind = iota
	sfInteger
	sfDecimal
	sfString
	sfToken
	sfBytes
	sfInnerList
)

// sfMember is one Dictionary member; value is the bare item's text
// (a String unescaped, a Boolean "0" or "1").
type sfMember struct {
	key   string
	kind  sfKind
	value string
}

func (m sfMember) isTrue() bool { return m.kind == sfBoolean && m.value == "1" }

// parseDictionary parses a Structured Fields Dictionary (RFC 8941 §4.2.2).
// Parameters are checked and dropped: no cache directive uses them. A
// repeated key keeps its last value.
func parseDictionary(s string) (out []sfMember, ok bool) {
	p := sfParser{s: strings.Trim(s, " ")}
	if p.s == "" {
		return nil, false
	}
	for {
		key, ok := p.key()
		if !ok {
			return nil, false
		}
		m := sfMember{key: key, kind: sfBoolean, value: "1"}
		if p.eat('=') {
			if p.peek() == '(' {
				if !p.innerList() {
					return nil, false
				}
				m.kind, m.value = sfInnerList, ""
			} else if m.kind, m.value, ok = p.bareItem(); !ok {
				return nil, false
			}
		}
		if !p.params() {
			return nil, false
		}
		for i := range out {
			if out[i].key == key {
				out = append(out[:i], out[i+1:]...)
				break
			}
		}
		out = append(out, m)
		p.ows()
		if p.done() {
			return out, true
		}
		if !p.eat(',') {
			return nil, false
		}
		p.ows()
		if p.done() {
			return nil, false // trailing comma
		}
	}
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }

func (p *sfParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}

func (p *sfParser) eat(c byte) bool {
	if p.peek() == c && !p.done() {
		p.i++
		return true
	}
	return false
}

func (p *sfParser) ows() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *sfParser) key() (string, bool) {
	c := p.peek()
	if !(c >= 'a' && c <= 'z' || c == '*') {
		return "", false
	}
	start := p.i
	for !p.done() {
		c := p.s[p.i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.i++
	}
	return p.s[start:p.i], true
}

func (p *sfParser) params() bool {
	for p.eat(';') {
		for p.eat(' ') {
		}
		if _, ok := p.key(); !ok {
			return false
		}
		if p.eat('=') {
			if _, _, ok := p.bareItem(); !ok {
				return false
			}
		}
	}
	return true
}

func (p *sfParser) innerList() bool {
	p.i++ // '('
	for {
		for p.eat(' ') {
		}
		if p.eat(')') {
			return p.params()
		}
		if _, _, ok := p.bareItem(); !ok || !p.params() {
			return false
		}
		if c := p.peek(); c != ' ' && c != ')' {
			return false
		}
	}
}

func (p *sfParser) bareItem() (sfKind, string, bool) {
	c := p.peek()
	switch {
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == '"':
		return p.str()
	case c == '?':
		p.i++
		if b := p.peek(); b == '0' || b == '1' {
			p.i++
			return sfBoolean, string(b), true
		}
	case c == ':':
		end := strings.IndexByte(p.s[p.i+1:], ':')
		if end < 0 {
			return 0, "", false
		}
		v := p.s[p.i+1 : p.i+1+end]
		for _, b := range []byte(v) {
			if !(b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '+' || b == '/' || b == '=') {
				return 0, "", false
			}
		}
		p.i += end + 2
		return sfBytes, v, true
	case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '*':
		start := p.i
		for !p.done() && (tchar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
			p.i++
		}
		return sfToken, p.s[start:p.i], true
	}
	return 0, "", false
}

func (p *sfParser) number() (sfKind, string, bool) {
	start := p.i
	p.eat('-')
	digits, dot := 0, -1
	for !p.done() {
		c := p.s[p.i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && dot < 0:
			dot = digits
		default:
			goto end
		}
		p.i++
	}
end:
	v := p.s[start:p.i]
	switch {
	case digits == 0:
		return 0, "", false
	case dot < 0:
		return sfInteger, v, digits <= 15
	case dot == 0 || dot > 12 || digits-dot < 1 || digits-dot > 3:
		return 0, "", false
	}
	return sfDecimal, v, true
}

func (p *sfParser) str() (sfKind, string, bool) {
	p.i++ // '"'
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if n := p.peek(); n == '"' || n == '\\' {
				b.WriteByte(n)
				p.i++
				continue
			}
			return 0, "", false
		case c == '"':
			return sfString, b.String(), true
		case c < 0x20 || c > 0x7e:
			return 0, "", false
		}
		b.WriteByte(c)
	}
	return 0, "", false
}

// tchar is RFC 9110 §5.6.2's token character.
func tchar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
