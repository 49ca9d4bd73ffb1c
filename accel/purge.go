package accel

import (
	"encoding/json"
	"net/netip"
	"strings"

	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
)

// purge answers the PURGE method on the client listener (the Varnish and
// nginx habit): allowed only from the route's purge_from networks. It
// removes every variant of the URL; "Soft-Purge: 1" marks them stale
// instead.
func (s *Server) purge(w responseWriter, ex *exchange, route *policy.Route, target []byte) {
	if len(route.PurgeFrom) == 0 {
		writeError(w, 405, "PURGE is not allowed on this route")
		return
	}
	ip, _ := netip.ParseAddr(ex.clientIP())
	if !route.PurgeAllowed(ip) {
		writeError(w, 403, "PURGE is not allowed from this address")
		return
	}
	if s.cache == nil {
		writeError(w, 404, "no cache")
		return
	}
	soft := string(ex.req.Fields.Get("Soft-Purge")) == "1"
	// The cache keys by the Host as sent (port included), not by the
	// port-less name routes match on.
	n, err := s.purger().PurgeURL(schemeOf(ex)+"://"+strings.ToLower(string(ex.req.Host))+string(target), soft)
	if err != nil {
		writeError(w, 500, err.Error())
		return
	}
	s.metrics.IncPurge("url")
	body, _ := json.Marshal(map[string]any{"purged": n, "soft": soft})
	body = append(body, '\n')
	w.SetContentLength(int64(len(body)))
	w.WriteHead(200, parser.Fields{{Name: []byte("Content-Type"), Value: []byte("application/json")}})
	w.Write(body)
}
