package upstream

// ServerState is one server of a pool as metrics and the status page show
// it.
type ServerState struct {
	Addr string
	// Up is false while the server is ejected for failing or marked down
	// by its active health check.
	Up bool
	// InFlight counts the connections leased to it: requests it is
	// answering now.
	InFlight int
}

// Servers reports each server's state, in config order.
func (p *Pool) Servers() []ServerState {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ServerState, len(p.servers))
	for i, s := range p.servers {
		out[i] = ServerState{Addr: s.addr, Up: !s.ejected && !s.checkDown, InFlight: s.active}
	}
	return out
}
