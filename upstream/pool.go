package upstream

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// maxServers bounds a pool because the servers a request already tried are
// kept in one uint64, so that the pick path allocates nothing.
const maxServers = 64

// ServerConfig is one origin server of a pool.
type ServerConfig struct {
	Addr   string // host:port
	Weight int    // share of requests relative to the others; default 1
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
	// RetryBudget bounds the time from the start of Do after which no new
	// try starts; default 10s. A running try is not cut by it.
	RetryBudget time.Duration
	// FailThreshold failures within FailWindow eject a server for Cooldown;
	// defaults 3, 10s, 10s. A failure is a refused or failed connect, a reset,
	// a timeout or a malformed response; an HTTP status is never one.
	FailThreshold int
	FailWindow    time.Duration
	Cooldown      time.Duration
	// HealthPath, when set, is fetched with GET from every server each
	// HealthInterval (default 5s); an error or a status outside 2xx/3xx marks
	// the server down until a check passes.
	HealthPath     string
	HealthInterval time.Duration

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
}

// Balance values.
const (
	RoundRobin = "round_robin"
	LeastConn  = "least_conn"
)

// Validate fills the defaults and reports the first invalid field by name.
func (c *Config) Validate() error {
	field := func(name, msg string) error {
		if c.Name != "" {
			return fmt.Errorf("upstream: pools.%s.%s: %s", c.Name, name, msg)
		}
		return fmt.Errorf("upstream: %s: %s", name, msg)
	}
	if len(c.Servers) == 0 {
		return field("servers", "at least one server is required")
	}
	if len(c.Servers) > maxServers {
		return field("servers", "at most "+strconv.Itoa(maxServers)+" servers per pool")
	}
	seen := make(map[string]bool, len(c.Servers))
	for i := range c.Servers {
		s := &c.Servers[i]
		name := "servers[" + strconv.Itoa(i) + "]"
		host, port, err := net.SplitHostPort(s.Addr)
		if err != nil || host == "" || port == "" {
			return field(name+".addr", fmt.Sprintf("%q is not host:port", s.Addr))
		}
		if seen[s.Addr] {
			return field(name+".addr", fmt.Sprintf("%q is listed twice", s.Addr))
		}
		seen[s.Addr] = true
		if s.Weight < 0 {
			return field(name+".weight", "must not be negative")
		}
		if s.Weight == 0 {
			s.Weight = 1
		}
	}
	switch c.Balance {
	case "":
		c.Balance = RoundRobin
	case RoundRobin, LeastConn:
	default:
		return field("balance", fmt.Sprintf("%q is neither %q nor %q", c.Balance, RoundRobin, LeastConn))
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
			return field(f.name, "must not be negative")
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"queue_timeout", &c.QueueTimeout, time.Second},
		{"connect_timeout", &c.ConnectTimeout, 3 * time.Second},
		{"first_byte_timeout", &c.FirstByteTimeout, 60 * time.Second},
		{"idle_timeout", &c.IdleTimeout, 60 * time.Second},
		{"retry_budget", &c.RetryBudget, 10 * time.Second},
		{"fail_window", &c.FailWindow, 10 * time.Second},
		{"cooldown", &c.Cooldown, 10 * time.Second},
		{"health_interval", &c.HealthInterval, 5 * time.Second},
	}
	for _, f := range durs {
		if *f.v < 0 {
			return field(f.name, "must not be negative")
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if c.Retries == 0 {
		c.Retries = 2
	}
	if c.HealthPath != "" && c.HealthPath[0] != '/' {
		return field("health_path", fmt.Sprintf("%q must start with /", c.HealthPath))
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
	active  int // leased connections
	current int // smooth round-robin state
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

	// mu guards the servers' mutable fields, waiters and closed.
	mu      sync.Mutex
	waiters []*waiter
	closed  bool

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
	p := &Pool{cfg: cfg}
	if cfg.Balance == LeastConn {
		p.pick = new(leastConn)
	} else {
		p.pick = new(smoothRR)
	}
	for i, sc := range cfg.Servers {
		s := &server{
			addr:   sc.Addr,
			weight: sc.Weight,
			bit:    1 << i,
			hc:     newHostClient(sc.Addr, &cfg, cfg.MaxConnsPerServer),
			fails:  make([]time.Time, cfg.FailThreshold),
		}
		if cfg.HealthPath != "" {
			s.health = newHostClient(sc.Addr, &cfg, 1)
		}
		p.servers = append(p.servers, s)
	}
	if cfg.HealthPath != "" {
		p.startChecks()
	}
	return p, nil
}

// QueueDepth is the number of requests waiting for a connection.
func (p *Pool) QueueDepth() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters)
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
