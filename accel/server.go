package accel

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accel-proxy/accel/accesslog"
	"github.com/accel-proxy/accel/admin"
	"github.com/accel-proxy/accel/cache"
	"github.com/accel-proxy/accel/fleet"
	"github.com/accel-proxy/accel/policy"
	"github.com/accel-proxy/accel/tlsstore"
	"github.com/accel-proxy/accel/upstream"
)

// Server is a running accel: its listeners, pipeline, cache, session store
// and admin API.
type Server struct {
	log     *slog.Logger
	metrics *admin.Metrics

	// state is the config in force and what was built from it; a reload
	// swaps it whole, so a request sees one config from start to end.
	state atomic.Pointer[state]
	// reloadMu serialises reloads.
	reloadMu sync.Mutex
	// source re-reads the config for a reload; nil keeps the config.
	source func() (*policy.Config, error)

	cache *cache.Cache
	// purges shares purges with the fleet; nil without fleet.redis.
	purges   *fleet.Purges
	sessions *tlsstore.Store
	admin    *admin.Server
	// adminListen is the admin address admin was started with, its
	// default filled: the name its socket is handed over under, which a
	// new process computes the same way from its own config.
	adminListen string

	// fetches bounds the origin fetches of each client address.
	fetches fetchLimiter

	// lnMu guards listeners and retiredListeners, which a reload
	// changes.
	lnMu      sync.Mutex
	listeners []*listener
	// retiredListeners were removed by a reload: closed, but their
	// HTTP/2 connections are still drained at shutdown.
	retiredListeners []*listener
	// certMu guards certSeen, the certificate files as last loaded.
	certMu   sync.Mutex
	certSeen map[string]certStamp
	// stopWatch ends the certificate watcher; Shutdown may run twice.
	stopWatch chan struct{}
	stopOnce  sync.Once
	draining  atomic.Bool
	// accepting counts the accept loops running, which Release waits
	// out.
	accepting sync.WaitGroup
	// adopted holds, from Adopt until Start, the listening sockets taken
	// over from the process a seamless restart replaces (handover.go).
	adopted map[string]net.Listener
	// released is set by Release: the listeners and the data directory
	// belong to the next process.
	released atomic.Bool
	// conns counts client connections being served, for a graceful stop.
	conns sync.WaitGroup
	// open tracks client connections so a stop can close idle ones.
	openMu sync.Mutex
	open   map[net.Conn]*connState
}

// connState is what Shutdown needs to know of a client connection.
type connState struct {
	// idle is set while the connection waits for a request to start: only
	// those may be cut by a stop; one mid-request (reading an upload, say)
	// finishes first.
	idle atomic.Bool
}

// state is one generation of config: routes and the pools they send to.
type state struct {
	cfg *policy.Config
	// set is cfg as each package takes it (wiring.go).
	set    *settings
	pools  map[string]*upstream.Pool
	access *accesslog.Log
	// refs counts requests using this generation; the pools of a retired
	// generation close when the last one ends.
	refs    atomic.Int64
	retired atomic.Bool
	closed  sync.Once
}

// New builds a server from a validated config. It opens nothing until
// Start.
func New(cfg *policy.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	// Every value is checked here, by the package that owns it, so that
	// a bad one stops the start with its file:line before anything opens
	// or logs, not later from the component that would use it.
	set, err := check(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{log: log, metrics: admin.NewMetrics(), open: map[net.Conn]*connState{}}
	s.metrics.InitRejections(rejectionReasons()...)
	st, err := s.build(cfg, set)
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	return s, nil
}

// CacheMemory is the size of the cache's memory tier, its default
// filled.
func (s *Server) CacheMemory() int64 { return s.state.Load().set.cache.MemoryBytes }

// SetConfigSource sets how Reload reads the config (the file, usually).
func (s *Server) SetConfigSource(f func() (*policy.Config, error)) { s.source = f }

// build makes the pools of a config generation.
func (s *Server) build(cfg *policy.Config, set *settings) (*state, error) {
	var prev *accesslog.File
	if old := s.state.Load(); old != nil {
		prev = old.access.File()
	}
	al, err := accesslog.New(set.access, s.log, prev)
	if err != nil {
		return nil, placed(cfg, err, []any{"log"})
	}
	st := &state{cfg: cfg, set: set, pools: map[string]*upstream.Pool{}, access: al}
	for i, p := range cfg.Pools {
		pool, err := upstream.NewPool(s.poolConfig(set.pools[i]))
		if err != nil {
			st.close()
			return nil, placed(cfg, err, []any{"pools", i})
		}
		st.pools[p.Name] = pool
		s.metrics.SetPoolStatsFunc(p.Name, func() admin.PoolStats { return admin.PoolStats(pool.Stats()) })
		s.metrics.InitPool(p.Name, serverAddrs(p))
		s.metrics.SetServersFunc(p.Name, serverStates(pool))
	}
	if err := buildPeers(cfg, set, st); err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

// poolConfig adds the running server's callbacks to a pool's config.
func (s *Server) poolConfig(uc upstream.Config) upstream.Config {
	name := uc.Name
	uc.OnTry = func(server string, d time.Duration, status int, err error) {
		s.metrics.ObserveUpstream(name, server, d, status, err)
	}
	uc.OnRetry = func(server string) { s.metrics.IncRetry(name, server) }
	uc.OnEject = func(server string) {
		s.metrics.IncEjection(name, server)
		s.log.Warn("origin server ejected", "pool", name, "server", server)
	}
	uc.OnAllFailing = func(failing bool, server string) {
		if failing {
			s.metrics.IncAllFailing(name)
			s.log.Error("every server of the pool is failing; sending requests to all of them", "pool", name)
			return
		}
		s.log.Warn("origin server recovered; the pool leaves its all-failing state", "pool", name, "server", server)
	}
	uc.OnBufferFileError = func(err error) {
		s.log.Warn("response buffering: no temp file; buffering in memory only for 10s", "pool", name, "dir", uc.TempDir, "err", err)
	}
	return uc
}

// acquire pins the current config generation for one request.
func (s *Server) acquire() *state {
	for {
		st := s.state.Load()
		st.refs.Add(1)
		if !st.retired.Load() {
			return st
		}
		st.release()
	}
}

func (st *state) release() {
	if st.refs.Add(-1) == 0 && st.retired.Load() {
		st.close()
	}
}

func (st *state) close() {
	st.closed.Do(func() {
		for _, p := range st.pools {
			p.Close()
		}
		// The last line of this generation is written: its file closes
		// unless the next generation writes it too.
		st.access.Release()
	})
}

// Start opens the cache, the session store, the client listeners and the
// admin listener, and begins serving.
func (s *Server) Start() error {
	st := s.state.Load()
	cfg, set := st.cfg, st.set
	cc := set.cache
	cc.Log = s.log
	c, err := cache.Open(cc)
	if err != nil {
		// The usual cause is another accel holding the directory's lock:
		// name the directory so the operator sees which.
		return fmt.Errorf("cache: %s: %w", cfg.Cache.Dir, err)
	}
	s.cache = c
	s.metrics.SetCacheStatsFunc(func() admin.CacheStats { return cacheStats(c.Stats()) })
	if err := s.startFleet(set); err != nil {
		s.stopStores()
		return err
	}
	if err := s.startTLSSessions(cfg, set); err != nil {
		s.stopStores()
		return err
	}
	for i, lc := range cfg.Listen {
		l, err := s.newListener(lc, set.h1, set.h2[i])
		if err != nil {
			s.closeListeners()
			s.closeAdopted(false)
			s.stopStores()
			return err
		}
		s.listeners = append(s.listeners, l)
	}
	if err := s.startAdmin(set); err != nil {
		s.closeListeners()
		s.closeAdopted(false)
		s.stopStores()
		return err
	}
	s.closeAdopted(true)
	for _, l := range s.listeners {
		s.accepting.Add(1)
		go s.acceptLoop(l)
	}
	s.noteCertFiles(cfg)
	s.stopWatch = make(chan struct{})
	go s.watchCerts(certWatchInterval, s.stopWatch)
	return nil
}

func (s *Server) startTLSSessions(cfg *policy.Config, set *settings) error {
	needTLS := false
	for _, l := range cfg.Listen {
		needTLS = needTLS || l.TLS != nil
	}
	if !needTLS {
		return nil
	}
	sc := set.sessions
	sc.OnError = s.metrics.IncSessionStoreError
	store, err := tlsstore.Open(sc, s.log)
	if err != nil {
		return fmt.Errorf("tls_sessions: %w", err)
	}
	s.sessions = store
	return nil
}

func (s *Server) startAdmin(set *settings) error {
	if set.admin == nil {
		return nil
	}
	a, err := admin.New(*set.admin, s.metrics, admin.Options{
		Purger: s.purger(),
		Reload: s.ReloadReport,
		Stats:  s.stats,
		Log:    s.log,
		// A socket handed over by a seamless restart, if there is one.
		Listener: s.takeAdopted("admin", set.admin.Listen),
	})
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if err := a.Start(); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	s.admin, s.adminListen = a, set.admin.Listen
	return nil
}

// Addrs returns the client listeners' addresses, in config order.
func (s *Server) Addrs() []net.Addr {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	out := make([]net.Addr, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.ln.Addr()
	}
	return out
}

// AdminAddr returns the admin listener's address, or nil when it is off.
func (s *Server) AdminAddr() net.Addr {
	if s.admin == nil {
		return nil
	}
	return s.admin.Addr()
}

// swapState puts st in force and retires the running generation.
func (s *Server) swapState(st *state) {
	old := s.state.Swap(st)
	for name := range old.pools {
		if _, ok := st.pools[name]; !ok {
			s.metrics.SetPoolStatsFunc(name, nil)
			s.metrics.SetServersFunc(name, nil)
		}
	}
	old.retired.Store(true)
	old.refs.Add(1)
	old.release()
}

// Shutdown stops accepting, lets in-flight requests finish (idle
// keep-alive connections close at once), then closes the stores. It
// returns ctx's error if requests were still running when ctx ended.
func (s *Server) Shutdown(ctx context.Context) error {
	s.openMu.Lock()
	s.draining.Store(true)
	s.openMu.Unlock()
	if s.stopWatch != nil {
		s.stopOnce.Do(func() { close(s.stopWatch) })
	}
	s.closeListeners()
	s.closeIdle()
	s.lnMu.Lock()
	all := append(append([]*listener(nil), s.listeners...), s.retiredListeners...)
	s.lnMu.Unlock()
	for _, l := range all {
		l.h1.Shutdown()
	}
	done := make(chan struct{})
	go func() {
		for _, l := range all {
			l.h2.Shutdown(ctx)
		}
		s.conns.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.openMu.Lock()
		for c := range s.open {
			c.Close()
		}
		s.openMu.Unlock()
	}
	if s.admin != nil {
		s.admin.Shutdown(ctx)
	}
	st := s.state.Load()
	st.retired.Store(true)
	st.refs.Add(1)
	st.release()
	// The stores get what is left of ctx: a stuck disk must not hold the
	// stop past the drain timeout.
	stopped := make(chan struct{})
	go func() {
		s.stopStores()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.log.Warn("stores not closed within the drain timeout")
		err = ctx.Err()
	}
	if f := st.access.File(); f != nil {
		f.Close()
	}
	return err
}

func (s *Server) closeListeners() {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	for _, l := range s.listeners {
		l.ln.Close()
	}
}

// closeIdle wakes every client connection waiting for a request to start,
// so it sees the drain and closes. Connections mid-request are left alone:
// they close after their response because the server drains.
func (s *Server) closeIdle() {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	for c, st := range s.open {
		if st.idle.Load() {
			c.SetReadDeadline(time.Now())
		}
	}
}

func (s *Server) stopStores() {
	if s.purges != nil && !s.released.Load() {
		s.purges.Close()
	}
	if s.cache != nil {
		if err := s.cache.Close(); err != nil {
			s.log.Error("closing cache", "err", err)
		}
	}
	if s.sessions != nil {
		if err := s.sessions.Close(); err != nil {
			s.log.Error("closing TLS session store", "err", err)
		}
	}
}

func (s *Server) track(c net.Conn, st *connState) {
	s.openMu.Lock()
	if st != nil {
		s.open[c] = st
	} else {
		delete(s.open, c)
	}
	s.openMu.Unlock()
}
