package accel

import (
	"github.com/accel-proxy/accel/admin"
	"github.com/accel-proxy/accel/cache"
	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
	"github.com/accel-proxy/accel/upstream"
)

// stats is what GET /stats adds to the admin API's own counters (which
// already hold the cache tiers and queue depths).
func (s *Server) stats() any {
	out := map[string]any{}
	if s.sessions != nil {
		out["tls_sessions"] = s.sessions.Stats()
	}
	return out
}

func cacheStats(cs cache.Stats) admin.CacheStats {
	return admin.CacheStats(cs)
}

// serverStates reads a pool's servers for /metrics and the status page.
func serverStates(p *upstream.Pool) func() []admin.ServerState {
	return func() []admin.ServerState {
		var out []admin.ServerState
		for _, sv := range p.Servers() {
			out = append(out, admin.ServerState(sv))
		}
		return out
	}
}

func serverAddrs(p policy.Pool) []string {
	out := make([]string, len(p.Servers))
	for i, sv := range p.Servers {
		out[i] = sv.Address
	}
	return out
}

// rejectionReasons are the values of accel_rejections_total's reason known
// at start: the parser's, and those the listener and connection loops
// name.
func rejectionReasons() []string {
	out := []string{"accept_error", "tls_handshake", "head_timeout"}
	for _, e := range parser.Rejections() {
		out = append(out, e.Name)
	}
	return out
}
