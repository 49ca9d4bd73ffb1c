package accel

import (
	"context"
	"fmt"
	"time"

	hrw "github.com/accel-proxy/accel/internal/rendezvous"
	"github.com/accel-proxy/accel/parser"
	"github.com/accel-proxy/accel/policy"
	"github.com/accel-proxy/accel/upstream"
)

// One origin fetch per fleet (routes with fleet_fetch): rendezvous
// hashing of the request's key names the member that owns it; another
// member sends its miss to the owner, whose cache coalesces and asks the
// origin once, and stores the answer itself as well, so that its next hit
// is local. The request to the owner carries peerMark, so that the owner
// never forwards it again, and the mark never reaches an origin. An owner
// that is down or slower than fleet.peer_timeout is passed over for the
// origin (counted as a fallback), as Varnish's shard director and
// nginx's consistent-hash upstream with proxy_next_upstream do.

const peerMark = "Accel-Fleet-Fetch"

// defaultPeerTimeout is fleet.peer_timeout's default: the connect to the
// owner of a key and its silence, past which the origin is asked.
const defaultPeerTimeout = 500 * time.Millisecond

// peerPool is the name of the pool that reaches member m.
func peerPool(m string) string { return "fleet:" + m }

// buildPeers adds a pool per other member to a config generation: plain
// keep-alive HTTP/1.1, no retries, the peer timeout for connect and
// silence.
func buildPeers(cfg *policy.Config, set *settings, st *state) error {
	f := cfg.Fleet
	for _, m := range f.Members {
		if m == f.Self {
			continue
		}
		pool, err := upstream.NewPool(upstream.Config{
			Name:             peerPool(m),
			Servers:          []upstream.ServerConfig{{Addr: m}},
			Retries:          -1,
			ConnectTimeout:   set.peerTimeout,
			FirstByteTimeout: set.peerTimeout,
		})
		if err != nil {
			return fmt.Errorf("%s: %w", cfg.Where("fleet", "members"), err)
		}
		st.pools[peerPool(m)] = pool
	}
	return nil
}

// fleetDo sends ureq to the owner of its key when the route asks for it
// and this member is not the owner, and to pool otherwise or when the
// owner fails.
func (s *Server) fleetDo(ctx context.Context, g *state, route *policy.Route, ureq *upstream.Request, pool *upstream.Pool) (*upstream.Response, error) {
	h := ureq.Head
	if !h.Fields.Has(peerMark) {
		if route.FleetFetch && ureq.Body == nil && (string(h.Method) == "GET" || string(h.Method) == "HEAD") {
			if owner := g.owner(h); owner != nil {
				pr := *ureq
				ph := *h
				ph.Fields = append(append(parser.Fields(nil), h.Fields...), parser.Field{Name: []byte(peerMark), Value: []byte("1")})
				pr.Head = &ph
				resp, err := owner.Do(ctx, &pr)
				if err == nil {
					s.metrics.IncFleetFetch("peer")
					return resp, nil
				}
				if ctx.Err() != nil {
					return nil, err
				}
				s.metrics.IncFleetFetch("fallback")
				s.log.Warn("fleet: owner of the key failed, asking the origin", "err", err)
			}
		}
		return pool.Do(ctx, ureq)
	}
	// From a peer: answered here, from this member's cache or its origin,
	// and the mark stays between members.
	oh := *h
	oh.Fields = make(parser.Fields, 0, len(h.Fields))
	for _, f := range h.Fields {
		if !parser.EqualFold(f.Name, peerMark) {
			oh.Fields = append(oh.Fields, f)
		}
	}
	or := *ureq
	or.Head = &oh
	return pool.Do(ctx, &or)
}

// owner returns the pool reaching the member that owns h's key, nil when
// that is this member or there is no fleet.
func (st *state) owner(h *parser.Request) *upstream.Pool {
	f := st.cfg.Fleet
	if len(f.Members) == 0 {
		return nil
	}
	m := f.Members[hrw.Pick(f.Members, string(h.Host)+string(h.Target))]
	if m == f.Self {
		return nil
	}
	return st.pools[peerPool(m)]
}
