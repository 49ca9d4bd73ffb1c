package upstream

import "time"

// picker chooses the server for the next request among those f admits, or
// returns nil. Pool.mu is held: implementations may keep state in the
// servers' fields and must not allocate.
type picker interface {
	pick(servers []*server, f filter) *server
}

// filter says which servers may take a request now.
type filter struct {
	now      time.Time
	exclude  uint64 // servers this request already tried
	maxConns int
	// all is set while every server is failing (Pool.failing): each may
	// take requests, so that a pool never refuses everything.
	all bool
}

// healthy reports whether s takes requests at all: not marked down by
// active checks and not ejected, unless its cooldown is over and its one
// probe is not in flight yet, or every server is failing.
func (f *filter) healthy(s *server) bool {
	if f.all {
		return true
	}
	if s.checkDown {
		return false
	}
	return !s.ejected || (!s.probing && !f.now.Before(s.downUntil))
}

// admits reports whether s may take this request now.
func (f *filter) admits(s *server) bool {
	return s.bit&f.exclude == 0 && s.active < f.maxConns && f.healthy(s)
}

// smoothRR is nginx's smooth weighted round-robin: every pick adds each
// candidate's weight to its current value, takes the largest, and subtracts
// the candidates' total from the winner. Weights 5:3:2 give abcaabacba rather
// than aaaaabbbcc.
type smoothRR struct{}

func (smoothRR) pick(servers []*server, f filter) *server {
	var best *server
	total := 0
	for _, s := range servers {
		if !f.admits(s) {
			continue
		}
		s.current += s.weight
		total += s.weight
		if best == nil || s.current > best.current {
			best = s
		}
	}
	if best != nil {
		best.current -= total
	}
	return best
}

// leastConn picks the server with the fewest leased connections per unit of
// weight; among equals it falls back to smooth round-robin, so that an idle
// pool still spreads its requests by weight.
type leastConn struct{}

func (leastConn) pick(servers []*server, f filter) *server {
	var low *server
	for _, s := range servers {
		if !f.admits(s) {
			continue
		}
		// active/weight < low.active/low.weight without division.
		if low == nil || s.active*low.weight < low.active*s.weight {
			low = s
		}
	}
	if low == nil {
		return nil
	}
	var best *server
	total := 0
	for _, s := range servers {
		if !f.admits(s) || s.active*low.weight != low.active*s.weight {
			continue
		}
		s.current += s.weight
		total += s.weight
		if best == nil || s.current > best.current {
			best = s
		}
	}
	best.current -= total
	return best
}
