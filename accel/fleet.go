package accel

import (
	"github.com/accel-proxy/accel/admin"
	"github.com/accel-proxy/accel/fleet"
)

// startFleet follows the fleet's purge stream when fleet.redis is set,
// after replaying what this instance missed: before any listener opens.
func (s *Server) startFleet(set *settings) error {
	if set.fleet == nil {
		return nil
	}
	p, err := fleet.Open(*set.fleet, s.cache, s.log)
	if err != nil {
		return err
	}
	s.purges = p
	return nil
}

// purger is where purges go: the fleet when there is one, else the cache.
func (s *Server) purger() admin.Purger {
	if s.purges != nil {
		return s.purges
	}
	return s.cache
}
