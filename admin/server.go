package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Purger is what the admin API needs from the cache. Each method returns
// how many objects it purged, or marked stale when soft is set.
type Purger interface {
	// PurgeURL purges every Vary variant stored for rawURL
	// ("http://host/path?query", or "host/path?query" for both schemes).
	PurgeURL(rawURL string, soft bool) (int, error)
	// PurgePrefix purges every URL under prefix: "http://host/path" for one
	// scheme, "host/path" for both.
	PurgePrefix(prefix string, soft bool) (int, error)
	// PurgeTags purges every object tagged (Surrogate-Key, Cache-Tag) with
	// any of tags.
	PurgeTags(tags []string, soft bool) (int, error)
	// PurgeAll purges everything.
	PurgeAll(soft bool) (int, error)
}

// Options are the server's collaborators.
type Options struct {
	// Purger serves the purge endpoints; nil (the cache is off) makes them
	// answer 501.
	Purger Purger
	// Reload re-reads the config, as SIGHUP does; POST /reload calls it and
	// answers 500 with its error, the running config staying in force. Nil
	// makes /reload answer 501.
	Reload func() (Reloaded, error)
	// Stats returns extra values for GET /stats: an object whose keys are
	// added to the answer's top level. A key the API already fills keeps
	// the built-in value, so the documented shape never changes. May be
	// nil.
	Stats func() any
	// Log receives the audit trail (every purge and reload, every refused
	// token). Nil discards it.
	Log *slog.Logger
	// Listener, when set, is the listening socket Start serves on instead
	// of opening Config.Listen: one handed over by the process a seamless
	// restart replaces.
	Listener net.Listener
}

// Reloaded is what a reload did: the changes applied, and the settings
// that differ in the file but only a restart changes (kept at their
// running values, never silently).
type Reloaded struct {
	Applied      []string
	NeedsRestart []string
}

// Server is the admin HTTP API. It listens on its own address, apart from
// client traffic, once Start is called.
type Server struct {
	cfg     Config
	m       *Metrics
	opts    Options
	log     *slog.Logger
	handler http.Handler
	srv     *http.Server

	// hasToken is false when no token was configured; tokenSum is the
	// token's SHA-256, which makes the comparison constant-time whatever
	// the length of what a client sends.
	hasToken bool
	tokenSum [sha256.Size]byte

	// mu guards ln, set once by Start.
	mu sync.Mutex
	ln net.Listener
}

// maxBody bounds a request body: a purge names a URL or some tags, never
// megabytes of them.
const maxBody = 1 << 20

// New checks cfg and builds the server; it opens nothing until Start. m is
// what GET /metrics and GET /stats report; nil gives the server metrics of
// its own that nothing feeds.
func New(cfg Config, m *Metrics, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tok, source, err := cfg.token()
	if err != nil {
		return nil, err
	}
	if m == nil {
		m = NewMetrics()
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, m: m, opts: opts, log: log.With("component", "admin")}
	switch {
	case tok == "":
		s.log.Warn("no admin token: every admin endpoint but /healthz answers 401", "set", "admin.token or $"+cfg.TokenEnv)
	case len(tok) < minTokenLen:
		s.log.Warn("admin token is short; use a random one of 16 characters or more", "from", source)
	}
	if tok != "" {
		s.hasToken = true
		s.tokenSum = sha256.Sum256([]byte(tok))
	}
	s.handler = s.routes()
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Start listens on cfg.Listen and serves in the background.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("admin: already started")
	}
	ln := s.opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Listen); err != nil {
			return err
		}
	}
	s.ln = ln
	s.log.Info("admin API listening", "addr", ln.Addr().String(), "auth", s.hasToken)
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin API stopped", "err", err)
		}
	}()
	return nil
}

// Addr returns the listening address, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Listener returns the listening socket, which a seamless restart hands
// to the next process; nil before Start.
func (s *Server) Listener() net.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln
}

// Shutdown closes the listener and waits, until ctx ends, for requests in
// flight (a purge in progress completes).
func (s *Server) Shutdown(ctx context.Context) error {
	return s.srv.Shutdown(ctx)
}

// Handler returns the API's handler, authentication included, for tests
// and for mounting it elsewhere.
func (s *Server) Handler() http.Handler { return s.handler }

// endpoint is one path of the API.
type endpoint struct {
	method string // "GET" also admits HEAD
	open   bool   // served without a token
	// session admits the status page's session cookie as well as the
	// token: read-only endpoints, so that a cookie can never purge.
	session bool
	h       http.HandlerFunc
}

func (s *Server) routes() http.Handler {
	eps := map[string]endpoint{
		"/":             {method: http.MethodGet, open: true, h: s.statusPage},
		"/login":        {method: http.MethodPost, open: true, h: s.login},
		"/healthz":      {method: http.MethodGet, open: true, h: s.healthz},
		"/stats":        {method: http.MethodGet, session: true, h: s.stats},
		"/metrics":      {method: http.MethodGet, session: true, h: s.metrics()},
		"/reload":       {method: http.MethodPost, h: s.reload},
		"/purge/url":    {method: http.MethodPost, h: s.purge(kindURL)},
		"/purge/prefix": {method: http.MethodPost, h: s.purge(kindPrefix)},
		"/purge/tags":   {method: http.MethodPost, h: s.purge(kindTags)},
		"/purge/all":    {method: http.MethodPost, h: s.purge(kindAll)},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep, ok := eps[r.URL.Path]
		if !ok {
			writeError(w, http.StatusNotFound, "no such endpoint")
			return
		}
		// The token is checked before the method, so that a caller without
		// one learns nothing but 401.
		if !ep.open && !s.authorized(r) && !(ep.session && s.sessionOK(r)) {
			s.log.Warn("admin request refused: missing or wrong token", "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="accel-admin"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		if r.Method != ep.method && (ep.method != http.MethodGet || r.Method != http.MethodHead) {
			allow := ep.method
			if allow == http.MethodGet {
				allow = "GET, HEAD"
			}
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed here; use "+ep.method)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		ep.h(w, r)
	})
}

// authorized reports whether r carries the token. Comparing hashes keeps
// the time taken independent of where, and whether in length, a wrong
// token differs.
func (s *Server) authorized(r *http.Request) bool {
	if !s.hasToken {
		return false
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// healthz needs no token: load balancers and orchestrators probe it
// without secrets, and it reveals only that the process serves HTTP.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if s.opts.Reload == nil {
		writeError(w, http.StatusNotImplemented, "reload is not available")
		return
	}
	rep, err := s.opts.Reload()
	if err != nil {
		s.log.Error("reload via admin API failed, running config unchanged", "err", err, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"reloaded": false, "error": err.Error()})
		return
	}
	s.log.Info("reloaded via admin API", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"reloaded": true, "applied": rep.Applied, "needs_restart": rep.NeedsRestart})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(map[string]string{"error": "encoding the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
