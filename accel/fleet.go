package accel

import (
	"path/filepath"

	"github.com/accel-proxy/accel/admin"
	"github.com/accel-proxy/accel/fleet"
	"github.com/accel-proxy/accel/policy"
)

// startFleet follows the fleet's purge stream when fleet.redis is set,
// after replaying what this instance missed: before any listener opens.
func (s *Server) startFleet(cfg *policy.Config) error {
	if cfg.Fleet.Redis == "" {
		return nil
	}
	state := ""
	if dir := dirOrOff(cfg.Cache.Dir); dir != "" {
		// Beside the cache it is about, in the data directory.
		state = filepath.Join(filepath.Dir(dir), "fleet-purges.id")
	}
	p, err := fleet.Open(fleet.Config{
		Addr:      cfg.Fleet.Redis,
		Stream:    cfg.Fleet.Stream,
		MaxLen:    cfg.Fleet.StreamMaxLen,
		StateFile: state,
	}, s.cache, s.log)
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
