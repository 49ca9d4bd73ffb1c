package accel

import (
	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
)

// headerVars are the values a route's header rules may use, taken when
// the request starts: the cache's background refreshes run after the
// front reused its exchange.
type headerVars struct {
	client, host, scheme, requestID string
}

func newHeaderVars(ex *exchange) *headerVars {
	return &headerVars{
		client:    ex.clientIP(),
		host:      string(ex.req.Host),
		scheme:    schemeOf(ex),
		requestID: string(ex.requestID()),
	}
}

func (v *headerVars) get(name string) string {
	switch name {
	case "client_addr":
		return v.client
	case "host":
		return v.host
	case "scheme":
		return v.scheme
	case "request_id":
		return v.requestID
	}
	return ""
}

// applyHeaderOps returns fields changed by ops, in a new slice (fields
// may be a stored object's, shared with other readers).
func applyHeaderOps(fields parser.Fields, ops []policy.HeaderOp, v *headerVars) parser.Fields {
	out := make(parser.Fields, 0, len(fields)+len(ops))
	for _, f := range fields {
		if !replaced(ops, f.Name) {
			out = append(out, f)
		}
	}
	for _, op := range ops {
		if op.Op == 'r' {
			continue
		}
		var val []byte
		for _, p := range op.Value {
			if p.Var != "" {
				val = append(val, v.get(p.Var)...)
			} else {
				val = append(val, p.Text...)
			}
		}
		out = append(out, parser.Field{Name: op.Name, Value: val})
	}
	return out
}

// replaced reports whether a remove or set rule names the field.
func replaced(ops []policy.HeaderOp, name []byte) bool {
	for _, op := range ops {
		if op.Op != 'a' && parser.EqualFold(name, string(op.Name)) {
			return true
		}
	}
	return false
}

// withRequestOps returns the origin's head with the route's request
// rules applied; h itself is left as the cache keyed it.
func withRequestOps(h *parser.Request, ops []policy.HeaderOp, v *headerVars) *parser.Request {
	c := *h
	c.Fields = applyHeaderOps(h.Fields, ops, v)
	return &c
}

// respRules are the response rules a countingWriter applies; nil for a
// route without any.
type respRules struct {
	ops  []policy.HeaderOp
	vars *headerVars
}

// responseRules returns the route's response rules for ex, or nil.
func responseRules(route *policy.Route, ex *exchange) *respRules {
	ops := route.ResponseOps()
	if ops == nil {
		return nil
	}
	return &respRules{ops: ops, vars: newHeaderVars(ex)}
}
