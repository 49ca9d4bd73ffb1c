package accel

import (
	"accel/admin"
	"accel/cache"
)

// stats is what GET /stats adds to the admin API's own counters.
func (s *Server) stats() any {
	out := map[string]any{}
	if s.cache != nil {
		out["cache"] = s.cache.Stats()
	}
	if s.sessions != nil {
		out["tls_sessions"] = s.sessions.Stats()
	}
	st := s.state.Load()
	queues := map[string]int{}
	for name, p := range st.pools {
		queues[name] = p.QueueDepth()
	}
	out["queue_depth"] = queues
	return out
}

func cacheStats(cs cache.Stats) admin.CacheStats {
	return admin.CacheStats(cs)
}
