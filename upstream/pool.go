package upstream

import (
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accel-proxy/accel/internal/cfgerr"
	"github.com/valyala/fasthttp"
)

// maxServers bounds a pool because the servers a request already tried are
// kept in one uint64, so that the pick path allocates nothing.
const maxServers = 64

// ServerConfig is one origin server of a pool.
type ServerConfig struct {
	Addr   string // host:port
	Weight int    // share of requests relative to the others; default 1
	// TLS makes connections to this server TLS (an https:// origin),
	// under the pool's TLS settings.
	TLS bool
}

// Config is one pool. The zero value of every field but Servers is usable:
// Validate fills the defaults.
type Config struct {
	Name    string
	Servers []ServerConfig
	// Balance is "round_robin" (default: smooth weighted round-robin, the
	// interleaving nginx uses) or "least_conn" (weighted least connections,
	// ties broken by smooth round-robin).
	Balance string
	// MaxConnsPerServer bounds the connections to each server; default 256.
	MaxConnsPerServer int
	// QueueSize bounds the requests waiting for a free connection; default
	// 1024. A full queue refuses at once (ErrQueueFull).
	QueueSize int
	// QueueTimeout is the longest a request waits in the queue; default 1s.
	QueueTimeout time.Duration
	// ConnectTimeout bounds a dial; default 3s.
	ConnectTimeout time.Duration
	// FirstByteTimeout is the longest the server may stay silent: waiting for
	// the response head, between two reads of the body, and between two
	// writes of the request; default 60s. It never bounds a whole transfer.
	FirstByteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle for longer; default
	// 60s. Keep it below the origins' own idle timeout, or a non-retryable
	// request may meet a connection the origin is closing (a 502).
	IdleTimeout time.Duration
	// Retries is the number of further tries on other servers; default 2.
	// Negative means none (zero is the default, so Validate stays
	// idempotent).
	Retries int
	// RedialWindow is how long a request whose every server refused the
	// connection keeps dialling them again, pausing 10ms doubling up to
	// 500ms, so that an origin restarting on its port costs a delay, not
	// errors; default 2s. Past it, the refusal is the answer (502).
	RedialWindow time.Duration
	// RetryBudget bounds the time from the start of Do after which no new
	// try starts; default 10s. A running try is not cut by it.
	RetryBudget time.Duration
	// FailThreshold failures within FailWindow eject a server for Cooldown;
	// defaults 3, 10s, 10s. A failure is a refused, reset or timed-out
	// connect, a connection reset or closed before a complete response, or
	// a malformed response head; an HTTP status is never one. A request
	// that timed out on an established connection (first byte, or a pause
	// in the body) counts only if the server answered nothing else within
	// FirstByteTimeout: one hanging URL of a live server is the URL's
	// problem, and ejecting the server for it would fail all its other
	// URLs. The only server of a pool is never ejected, and when every
	// server is ejected or down the pool sends to all of them (see
	// OnAllFailing), so that a flaky origin never becomes an outage.
	FailThreshold int
	FailWindow    time.Duration
	Cooldown      time.Duration
	// BufferMemory is the memory a response body is read into ahead of
	// its reader, per response; default 64 KiB (nginx's proxy_buffers on
	// x86-64). Beyond it the body goes to a temp file of at most
	// BufferFile bytes (default 1 GiB, nginx's proxy_max_temp_file_size;
	// negative: none) in TempDir (default the system's). So the origin
	// connection is free as soon as the origin sent the body, however
	// slowly the client takes it; past both bounds the body moves at the
	// client's pace. Negative BufferMemory turns buffering off: bodies
	// stream straight from the connection.
	BufferMemory int
	BufferFile   int64
	TempDir      string
	// OnBufferFileError is called when a temp file cannot be made or
	// written (a full or read-only disk). The pool then keeps off its
	// temp directory for 10s, buffering in memory only; the response
	// in flight completes.
	OnBufferFileError func(err error)

	// HealthPath, when set, is fetched with GET from every server each
	// HealthInterval (default 5s); an error or a status outside 2xx/3xx marks
	// the server down until a check passes.
	HealthPath     string
	HealthInterval time.Duration
	// TLS applies to the servers with TLS set.
	TLS TLS

	// Observer hooks, any may be nil. They run on the request's goroutine
	// (OnTry, OnRetry) or the goroutine that saw the failure (OnEject), never
	// under a pool lock.
	//
	// OnTry is called when a try has its response head (err nil) or failed.
	OnTry func(server string, d time.Duration, status int, err error)
	// OnRetry is called with the server whose failed try is being retried.
	OnRetry func(server string)
	// OnEject is called when a server is taken out, passively or by checks.
	OnEject func(server string)
	// OnAllFailing is called with true when the last server still in use
	// is ejected or marked down, from when on requests go to every server
	// again, and with false and the server that answered when one
	// recovers. It is called once per change, never per request.
	OnAllFailing func(failing bool, server string)
}

// Balance values.
const (
	RoundRobin = "round_robin"
	LeastConn  = "least_conn"
)

// maxBufferMemory bounds BufferMemory: each response in flight may hold
// that much, so a typo in its unit would exhaust memory under load.
const maxBufferMemory = 64 << 20

// Validate fills the defaults and reports the first invalid field, named
// as the config file's pool section spells it (a *cfgerr.Error).
func (c *Config) Validate() error {
	field := func(path []any, format string, args ...any) error {
		return cfgerr.Errorf(path, format, args...)
	}
	if len(c.Servers) == 0 {
		return field([]any{"servers"}, "at least one server is required")
	}
	if len(c.Servers) > maxServers {
		return field([]any{"servers"}, "at most %d servers per pool", maxServers)
	}
	seen := make(map[string]bool, len(c.Servers))
	for i := range c.Servers {
		s := &c.Servers[i]
		host, port, err := net.SplitHostPort(s.Addr)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || strings.ContainsAny(host, " /") || perr != nil || n < 1 || n > 65535 {
			return field([]any{"servers", i, "address"}, "%q is not host:port", s.Addr)
		}
		if seen[s.Addr] {
			// Two entries for one server would double its weight and its
			// connections behind one health state.
			return field([]any{"servers", i, "address"}, "%q is listed twice", s.Addr)
		}
		seen[s.Addr] = true
		if s.Weight < 0 {
			return field([]any{"servers", i, "weight"}, "weight %d is negative", s.Weight)
		}
		if s.Weight == 0 {
			s.Weight = 1
		}
	}
	if _, err := c.tlsConfigs(); err != nil {
		return field([]any{"tls"}, "%v", err)
	}
	switch c.Balance {
	case "":
		c.Balance = RoundRobin
	case RoundRobin, LeastConn:
	default:
		return field([]any{"balance"}, "%q is neither %q nor %q", c.Balance, RoundRobin, LeastConn)
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"max_conns_per_server", &c.MaxConnsPerServer, 256},
		{"queue_size", &c.QueueSize, 1024},
		{"fail_threshold", &c.FailThreshold, 3},
	}
	for _, f := range ints {
		if *f.v < 0 {
			return field([]any{f.name}, "must not be negative")
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	durs := []struct {
		path []any
		v    *time.Duration
		def  time.Duration
	}{
		{[]any{"queue_timeout"}, &c.QueueTimeout, time.Second},
		{[]any{"connect_timeout"}, &c.ConnectTimeout, 3 * time.Second},
		{[]any{"first_byte_timeout"}, &c.FirstByteTimeout, 60 * time.Second},
		{[]any{"idle_timeout"}, &c.IdleTimeout, 60 * time.Second},
		{[]any{"retry_budget"}, &c.RetryBudget, 10 * time.Second},
		{[]any{"redial_window"}, &c.RedialWindow, 2 * time.Second},
		{[]any{"fail_window"}, &c.FailWindow, 10 * time.Second},
		{[]any{"cooldown"}, &c.Cooldown, 10 * time.Second},
		{[]any{"health", "interval"}, &c.HealthInterval, 5 * time.Second},
	}
	for _, f := range durs {
		if *f.v < 0 {
			return field(f.path, "must not be negative")
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if c.Retries == 0 {
		c.Retries = 2
	}
	if c.BufferMemory > maxBufferMemory {
		return field([]any{"buffer", "memory"}, "%d is over 64MiB per response", c.BufferMemory)
	}
	if c.BufferMemory == 0 {
		c.BufferMemory = 64 << 10
	}
	if c.BufferFile == 0 {
		c.BufferFile = 1 << 30
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	} else if fi, err := os.Stat(c.TempDir); err != nil || !fi.IsDir() {
		return field([]any{"buffer", "temp_dir"}, "%q is not a directory", c.TempDir)
	}
	if c.HealthPath != "" && c.HealthPath[0] != '/' {
		return field([]any{"health", "path"}, "%q does not start with /", c.HealthPath)
	}
	return nil
}

// server is one origin of a pool.
type server struct {
	addr   string
	weight int
	bit    uint64 // this server in a set of tried servers
	hc     *fasthttp.HostClient
	health *fasthttp.HostClient // active checks; nil without HealthPath

	// Pool.mu guards the fields below.
	active  int       // leased connections
	current int       // smooth round-robin state
	lastOK  time.Time // the last response head from this server
	// fails holds the times of the last FailThreshold failures, nfail
	// counts all of them, so fails[nfail%len] is the oldest.
	fails     []time.Time
	nfail     int
	ejected   bool
	downUntil time.Time // end of the cooldown while ejected
	probing   bool      // the one probe after a cooldown is in flight
	checkDown bool      // the last active check failed
}

// Pool is a set of origin servers answering one route's requests.
type Pool struct {
	cfg     Config
	servers []*server
	pick    picker

	// now is time.Now; tests advance a clock of their own.
	now func() time.Time
	// checkIdleAfter is the const of that name; tests make it long, to
	// reuse connections unchecked whatever the machine's pace.
	checkIdleAfter time.Duration

	// mu guards the servers' mutable fields and the fields below.
	mu      sync.Mutex
	waiters []*waiter
	closed  bool
	// failing is set while every server is ejected or marked down: then
	// each request may go to any of them, as nginx does when all servers
	// of an upstream have failed and Envoy below its panic threshold.
	failing bool

	// fileOffUntil is the UnixNano time until which responses buffer in
	// memory only, after a temp file failed; fileErrors counts those.
	fileOffUntil atomic.Int64
	fileErrors   atomic.Int64

	// stopChecks stops the active checks and waits for them; nil without a
	// HealthPath.
	stopChecks func()
}

// NewPool validates cfg and builds its pool. With a HealthPath it starts the
// active checks, which run until Close.
func NewPool(cfg Config) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, now: time.Now, checkIdleAfter: checkIdleAfter}
	if cfg.Balance == LeastConn {
		p.pick = new(leastConn)
	} else {
		p.pick = new(smoothRR)
	}
	tc, err := cfg.tlsConfigs()
	if err != nil {
		return nil, err
	}
	for i, sc := range cfg.Servers {
		s := &server{
			addr:   sc.Addr,
			weight: sc.Weight,
			bit:    1 << i,
			hc:     newHostClient(sc.Addr, &cfg, tc[i], cfg.MaxConnsPerServer),
			fails:  make([]time.Time, cfg.FailThreshold),
		}
		if cfg.HealthPath != "" {
			s.health = newHostClient(sc.Addr, &cfg, tc[i], 1)
		}
		p.servers = append(p.servers, s)
	}
	if cfg.HealthPath != "" {
		p.startChecks()
	}
	return p, nil
}

// Stats is a snapshot of a pool, for the metrics.
type Stats struct {
	Servers int // configured
	Ejected int // taken out by passive health
	Down    int // marked down by active checks
	// AllFailing is set while every server is ejected or down and requests
	// go to all of them.
	AllFailing bool
	Active     int // connections leased to requests
	Open       int // connections open, leased or idle
	Queued     int // requests waiting for a connection
	// BufferFileErrors counts the temp files that could not be made or
	// written (each starts a while of memory-only buffering).
	BufferFileErrors int64
}

// Stats reads the pool's state.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	st := Stats{Servers: len(p.servers), AllFailing: p.failing, Queued: len(p.waiters), BufferFileErrors: p.fileErrors.Load()}
	for _, s := range p.servers {
		if s.ejected {
			st.Ejected++
		}
		if s.checkDown {
			st.Down++
		}
		st.Active += s.active
	}
	p.mu.Unlock()
	for _, s := range p.servers {
		st.Open += s.hc.ConnsCount()
	}
	return st
}

// Close stops the active checks, fails the queued requests with ErrClosed
// and closes the idle connections. Responses in flight stay readable; their
// connections are closed when their bodies are.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for _, w := range p.waiters {
		w.ready <- lease{err: ErrClosed}
	}
	clear(p.waiters)
	p.waiters = p.waiters[:0]
	p.mu.Unlock()
	if p.stopChecks != nil {
		p.stopChecks()
	}
	for _, s := range p.servers {
		s.hc.CloseIdleConnections()
		if s.health != nil {
			s.health.CloseIdleConnections()
		}
	}
}
