package accel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"reflect"
	"time"

	"github.com/accel-proxy/accel/admin"
	"github.com/accel-proxy/accel/h2"
	"github.com/accel-proxy/accel/policy"
)

// listenerTLS loads a listener's certificates into a new TLS config that
// uses the shared session store; nil for a cleartext listener.
func (s *Server) listenerTLS(lc policy.Listener) (*tls.Config, error) {
	if lc.TLS == nil {
		return nil, nil
	}
	tc, err := buildTLSConfig(lc.TLS, s.log)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", lc.Address, err)
	}
	if s.sessions != nil {
		s.sessions.Configure(tc)
	}
	return tc, nil
}

// Reload re-reads the config and applies what a running process can
// change: routes, pools and cache rules, the access log, listeners added
// or removed, and every TLS listener's certificates (read again from
// their files). What only a restart changes is kept and named, in the
// answer and in the log. A config that fails to load, validate, bind or
// read its certificates is refused whole and the running one stays.
func (s *Server) Reload() error {
	_, err := s.ReloadReport()
	return err
}

// ReloadReport is Reload, answering what was applied and what needs a
// restart.
func (s *Server) ReloadReport() (admin.Reloaded, error) {
	var rep admin.Reloaded
	if s.source == nil {
		return rep, errors.New("no config file to reload from")
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.released.Load() {
		return rep, errors.New("this process handed its listeners to a new one and is draining; reload that one")
	}
	cfg, err := s.source()
	if err != nil {
		s.log.Error("reload refused, old config keeps serving", "err", err)
		return rep, err
	}
	set, err := wire(cfg)
	if err != nil {
		s.log.Error("reload refused, old config keeps serving", "err", err)
		return rep, err
	}
	old := s.state.Load()
	rep.NeedsRestart = needsRestart(old, cfg, set)
	plan, err := s.planListeners(cfg, set, &rep)
	if err != nil {
		s.log.Error("reload refused, old config keeps serving", "err", err)
		return rep, err
	}
	st, err := s.build(cfg, set)
	if err != nil {
		plan.abort()
		s.log.Error("reload refused, old config keeps serving", "err", err)
		return rep, err
	}
	s.swapState(st)
	s.commitListeners(plan)
	// HTTP/1 limits apply to every listener's next requests.
	for _, l := range plan.next {
		l.h1.Reconfigure(set.h1)
	}
	s.noteCertFiles(cfg)
	rep.Applied = append(rep.Applied, "routes", "pools", "cache rules", "limits (HTTP/1)", "log (access)")
	if len(rep.NeedsRestart) > 0 {
		s.log.Warn("reload: kept at their running values until a restart", "settings", rep.NeedsRestart)
	}
	s.log.Info("config reloaded", "file", cfg.File, "routes", len(cfg.Routes), "pools", len(cfg.Pools), "applied", rep.Applied)
	return rep, nil
}

// needsRestart names the settings that differ between the running
// generation and the new config and that only a start reads: the stores,
// the admin listener, the process log's format, and a kept listener's
// HTTP/2 limits. (The limits section applies to HTTP/1 requests at once.)
// The packages' settings are compared with their defaults filled, so that
// writing out a default is no change.
func needsRestart(old *state, cur *policy.Config, set *settings) []string {
	var out []string
	diff := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, name)
		}
	}
	o := old.set
	diff("cache.memory", o.cache.MemoryBytes, set.cache.MemoryBytes)
	diff("cache.dir", o.cache.Dir, set.cache.Dir)
	diff("cache.disk", o.cache.DiskBytes, set.cache.DiskBytes)
	diff("tls_sessions", o.sessions, set.sessions)
	diff("admin", o.admin, set.admin)
	diff("log.format", old.cfg.Log.Format == "json", cur.Log.Format == "json")
	for i, l := range cur.Listen {
		for j, ol := range old.cfg.Listen {
			if ol.Address == l.Address {
				diff(fmt.Sprintf("listen[%d].http2", i), http2Section(o.h2[j]), http2Section(set.h2[i]))
				diff(fmt.Sprintf("listen[%d].proxy_protocol", i), []any{ol.ProxyProtocol, ol.ProxyFrom}, []any{l.ProxyProtocol, l.ProxyFrom})
			}
		}
	}
	return out
}

// http2Section is the part of an h2 config that the listener's http2
// section sets (the timeouts come from limits).
func http2Section(c h2.Config) h2.Config {
	c.IdleTimeout, c.WriteTimeout, c.ReadTimeout = 0, 0, 0
	return c
}

// listenerPlan is a reload's listener changes, prepared (sockets bound,
// certificates read) before anything is switched, so that a failure
// leaves the running set untouched.
type listenerPlan struct {
	added   []*listener
	removed []*listener
	kept    []*listener
	keptTLS []*tls.Config // new TLS config of kept[i]
	next    []*listener   // the listener set after the reload, in config order
}

func (p *listenerPlan) abort() {
	for _, l := range p.added {
		l.ln.Close()
	}
}

func (s *Server) planListeners(cfg *policy.Config, set *settings, rep *admin.Reloaded) (*listenerPlan, error) {
	s.lnMu.Lock()
	running := append([]*listener(nil), s.listeners...)
	s.lnMu.Unlock()
	p := &listenerPlan{}
	byAddr := map[string]*listener{}
	for _, l := range running {
		byAddr[l.addr] = l
	}
	seen := map[string]bool{}
	for i, lc := range cfg.Listen {
		seen[lc.Address] = true
		if l := byAddr[lc.Address]; l != nil {
			tc, err := s.listenerTLS(lc)
			if err != nil {
				p.abort()
				return nil, fmt.Errorf("%s: %w", cfg.Where("listen", i, "tls"), err)
			}
			p.kept, p.keptTLS, p.next = append(p.kept, l), append(p.keptTLS, tc), append(p.next, l)
			if tc != nil {
				rep.Applied = append(rep.Applied, "listen "+lc.Address+": certificates reloaded")
			}
			continue
		}
		l, err := s.newListener(lc, set.h1, set.h2[i])
		if err != nil {
			p.abort()
			return nil, fmt.Errorf("%s: %w", cfg.Where("listen", i), err)
		}
		p.added, p.next = append(p.added, l), append(p.next, l)
		rep.Applied = append(rep.Applied, "listen "+lc.Address+": added")
	}
	for _, l := range running {
		if !seen[l.addr] {
			p.removed = append(p.removed, l)
			rep.Applied = append(rep.Applied, "listen "+l.addr+": removed")
		}
	}
	return p, nil
}

// commitListeners switches to the planned set: new listeners accept,
// removed ones stop accepting (their connections finish as they would),
// kept ones hand new connections the new certificates.
func (s *Server) commitListeners(p *listenerPlan) {
	for i, l := range p.kept {
		l.tls.Store(p.keptTLS[i])
	}
	s.lnMu.Lock()
	s.listeners = p.next
	s.retiredListeners = append(s.retiredListeners, p.removed...)
	s.lnMu.Unlock()
	for _, l := range p.removed {
		l.ln.Close()
		// HTTP/2 clients of a removed listener are told at once (the
		// two-step GOAWAY of h2.Server.Shutdown; nginx's old workers
		// tell them on reload too): their streams in flight finish, new
		// ones go to a new connection.
		// A final Shutdown still bounds what is left by its drain timeout.
		go l.h2.Shutdown(context.Background())
	}
	for _, l := range p.added {
		s.accepting.Add(1)
		go s.acceptLoop(l)
	}
}

// certWatchInterval is how often certificate files are checked for a
// change; a renewal (certbot, cert-manager) is served within it without a
// reload.
const certWatchInterval = 10 * time.Second

// certStamp is what tells a certificate file changed.
type certStamp struct {
	mod  time.Time
	size int64
}

func certFiles(cfg *policy.Config) map[string]certStamp {
	out := map[string]certStamp{}
	for _, l := range cfg.Listen {
		if l.TLS == nil {
			continue
		}
		for _, c := range l.TLS.Certificates {
			for _, f := range []string{c.Cert, c.Key} {
				if fi, err := os.Stat(f); err == nil {
					out[f] = certStamp{fi.ModTime(), fi.Size()}
				} else {
					out[f] = certStamp{}
				}
			}
		}
	}
	return out
}

// noteCertFiles records the certificate files' state as loaded.
func (s *Server) noteCertFiles(cfg *policy.Config) {
	s.certMu.Lock()
	s.certSeen = certFiles(cfg)
	s.certMu.Unlock()
}

// watchCerts reloads the TLS listeners' certificates when their files
// change, until stop is closed.
func (s *Server) watchCerts(every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		cfg := s.state.Load().cfg
		now := certFiles(cfg)
		s.certMu.Lock()
		changed := !reflect.DeepEqual(now, s.certSeen)
		s.certMu.Unlock()
		if changed {
			s.reloadCerts(cfg, now)
		}
	}
}

// reloadCerts reads every TLS listener's certificates again. A pair that
// does not load (a renewal caught half-written) keeps the running
// certificates and is tried again at the next change.
func (s *Server) reloadCerts(cfg *policy.Config, stamp map[string]certStamp) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.state.Load().cfg != cfg {
		return // a reload came first and loaded them
	}
	s.lnMu.Lock()
	running := append([]*listener(nil), s.listeners...)
	s.lnMu.Unlock()
	for _, lc := range cfg.Listen {
		for _, l := range running {
			if l.addr != lc.Address || lc.TLS == nil {
				continue
			}
			tc, err := s.listenerTLS(lc)
			if err != nil {
				s.log.Error("certificate files changed but do not load; serving the previous ones", "listener", lc.Address, "err", err)
				continue
			}
			l.tls.Store(tc)
			s.log.Info("certificates reloaded after a file change", "listener", lc.Address)
		}
	}
	s.certMu.Lock()
	s.certSeen = stamp
	s.certMu.Unlock()
}
