package policy

import (
	"sort"
	"strings"

	"github.com/accel-proxy/accel/parser"
)

// HeaderRules change the fields of a route's messages, as nginx's
// proxy_set_header, add_header and proxy_hide_header and VCL's
// set/unset req.http.* and resp.http.* do: Request towards the origin,
// Response towards the client.
type HeaderRules struct {
	Request  HeaderOps `yaml:"request"`
	Response HeaderOps `yaml:"response"`
}

// HeaderOps are applied in this order: Remove drops every field of each
// name; Set replaces every field of the name with one; Add appends one
// more. Values may use ${client_addr}, ${host}, ${scheme} and
// ${request_id}.
type HeaderOps struct {
	Set    map[string]string `yaml:"set"`
	Add    map[string]string `yaml:"add"`
	Remove []string          `yaml:"remove"`
}

// HeaderOp is one validated rule: Op is 'r' (remove), 's' (set) or 'a'
// (add); Value is split into literal text and variable names.
type HeaderOp struct {
	Op    byte
	Name  []byte
	Value []ValuePart
}

// ValuePart is literal text, or a variable when Var is set.
type ValuePart struct {
	Text string
	Var  string
}

// headerVars are the variables a rule's value may use.
var headerVars = map[string]bool{"client_addr": true, "host": true, "scheme": true, "request_id": true}

// RequestOps and ResponseOps are the route's validated rules, in the order
// they apply; nil when there are none, so that a route without rules costs
// a nil check.
func (r *Route) RequestOps() []HeaderOp  { return r.reqOps }
func (r *Route) ResponseOps() []HeaderOp { return r.respOps }

// checkHeaders validates a route's rules and compiles them.
func checkHeaders(k *checker, path []any, h HeaderOps) []HeaderOp {
	var ops []HeaderOp
	check := func(p []any, name string) bool {
		n := []byte(name)
		// The transfer rules' owner says what each hop sets for itself;
		// Content-Length is the framing the proxy computes.
		if parser.HopByHop(n) || parser.EqualFold(n, "Content-Length") {
			k.failf(p, "%q is a hop-by-hop or framing field; accel sets it for each connection", name)
			return false
		}
		if err := parser.CheckHead(&parser.Request{Method: []byte("GET"), Target: []byte("/"), Fields: parser.Fields{{Name: n}}}); err != nil || name == "" {
			k.failf(p, "%q is not a field name", name)
			return false
		}
		return true
	}
	for j, name := range h.Remove {
		if check(append(path, "remove", j), name) {
			ops = append(ops, HeaderOp{Op: 'r', Name: []byte(name)})
		}
	}
	for _, kind := range []struct {
		op  byte
		key string
		m   map[string]string
	}{{'s', "set", h.Set}, {'a', "add", h.Add}} {
		names := make([]string, 0, len(kind.m))
		for name := range kind.m {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			p := append(path, kind.key, name)
			if !check(p, name) {
				continue
			}
			parts, ok := parseValue(k, p, kind.m[name])
			if ok {
				ops = append(ops, HeaderOp{Op: kind.op, Name: []byte(name), Value: parts})
			}
		}
	}
	return ops
}

// parseValue splits v into text and ${variables}, checking that the text
// is a valid field value.
func parseValue(k *checker, p []any, v string) ([]ValuePart, bool) {
	var parts []ValuePart
	rest := v
	for rest != "" {
		i := strings.Index(rest, "${")
		if i < 0 {
			parts = append(parts, ValuePart{Text: rest})
			break
		}
		if i > 0 {
			parts = append(parts, ValuePart{Text: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			k.failf(p, "%q: ${ without }", v)
			return nil, false
		}
		name := rest[i+2 : i+j]
		if !headerVars[name] {
			k.failf(p, "%q: unknown variable ${%s} (client_addr, host, scheme, request_id)", v, name)
			return nil, false
		}
		parts = append(parts, ValuePart{Var: name})
		rest = rest[i+j+1:]
	}
	if err := parser.CheckHead(&parser.Request{Method: []byte("GET"), Target: []byte("/"), Fields: parser.Fields{{Name: []byte("X"), Value: []byte(v)}}}); err != nil {
		k.failf(p, "%q is not a valid field value (control characters)", v)
		return nil, false
	}
	return parts, true
}
