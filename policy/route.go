package policy

import (
	"net/netip"
	"strings"
)

// Match returns the route for a request to host (port already removed,
// lower case) and path, or nil. Exact hosts beat wildcards, wildcards beat
// the empty host, and among those the longest path prefix wins: the order
// routes are written in does not matter, as with nginx's server_name and
// location.
func (c *Config) Match(host, path string) *Route {
	var best *Route
	bestRank, bestLen := -1, -1
	for i := range c.Routes {
		r := &c.Routes[i]
		rank := r.hostRank(host)
		if rank < 0 || !strings.HasPrefix(path, r.Path) {
			continue
		}
		if rank > bestRank || rank == bestRank && len(r.Path) > bestLen {
			best, bestRank, bestLen = r, rank, len(r.Path)
		}
	}
	return best
}

// hostRank is 2 for an exact host match, 1 for a wildcard, 0 for a route
// without host, -1 for no match.
func (r *Route) hostRank(host string) int {
	switch {
	case r.Host == "":
		return 0
	case strings.HasPrefix(r.Host, "*."):
		suffix := r.Host[1:]
		if len(host) > len(suffix) && strings.HasSuffix(host, suffix) {
			return 1
		}
	case strings.EqualFold(r.Host, host):
		return 2
	}
	return -1
}

// PurgeAllowed reports whether a PURGE from addr may act on this route.
func (r *Route) PurgeAllowed(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range r.purgeNets {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
