package accel

import (
	"accel/admin"
	"accel/cache"
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
