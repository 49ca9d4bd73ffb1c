package tlsstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accel-proxy/accel/internal/cfgerr"
)

// Modes and backends accepted by [Config].
const (
	ModeStateful  = "stateful"
	ModeStateless = "stateless"

	BackendMemory    = "memory"
	BackendRedis     = "redis"
	BackendMemcached = "memcached"
)

// Defaults applied by [Open] to zero fields of [Config].
const (
	DefaultLifetime       = 12 * time.Hour
	DefaultTimeout        = 50 * time.Millisecond
	DefaultLocalCacheSize = 10000
	DefaultRotationPeriod = time.Hour
	DefaultKeyWindow      = 2
)

// maxLifetime is crypto/tls's own cap on how long a session secret is
// reused; a longer Lifetime would be silently cut short, so it is refused.
const maxLifetime = 7 * 24 * time.Hour

// Config says where sessions live and for how long. The zero value is usable:
// stateful sessions in process memory, not persisted.
type Config struct {
	// Mode is "stateful" (default) or "stateless". Stateful tickets are
	// random identities that are worthless without the backend; stateless
	// tickets carry the session encrypted under the fleet's ticket keys, so
	// the backend holds only those keys.
	Mode string

	// Backend is "memory" (default), "redis" or "memcached". Memory serves
	// one instance only; a fleet shares Redis or memcached.
	Backend string

	// Addrs are the Redis or memcached servers as host:port. With several,
	// each entry goes to one server chosen by rendezvous hashing, so every
	// instance picks the same server whatever the order of Addrs, and losing
	// a server loses only its share of the sessions.
	Addrs []string

	// Dir, for the memory backend only, is a directory where sessions and
	// ticket keys are persisted (pebble) so that a restart keeps them. The
	// directory holds session secrets: it must be private to accel.
	Dir string

	// Lifetime is how long an issued ticket can be resumed; default 12h,
	// at most 7 days. Each resumption issues a new ticket; crypto/tls itself
	// stops reusing a TLS 1.2 master secret after 7 days. In the stateless
	// mode tickets also stop decrypting once their key leaves the ring,
	// about (KeyWindow+1)*RotationPeriod after it became current.
	Lifetime time.Duration

	// Timeout bounds each backend call on the handshake path; default 50ms.
	// A call that takes longer gives a full handshake.
	Timeout time.Duration

	// LocalCacheSize is the number of sessions kept in process in front of
	// a Redis or memcached backend; default 10000, negative disables it. A
	// hit saves a round trip and survives a backend outage.
	LocalCacheSize int

	// RotationPeriod is how long one ticket key encrypts (stateless mode);
	// default 1h, at least 1s.
	RotationPeriod time.Duration

	// KeyWindow is how many previous ticket keys still decrypt (stateless
	// mode); default 2.
	KeyWindow int

	// Namespace separates fleets that share one backend: the sessions and
	// ticket keys of one are invisible to the other. Letters, digits, '-',
	// '_' and '.', at most 64; empty is a namespace of its own.
	Namespace string
	// OnError, if set, is called on each store error or timeout, so that
	// the caller's metrics count them as they happen.
	OnError func()
}

// Validate reports the first problem with c, naming the field as the
// config file's tls_sessions section spells it (a *cfgerr.Error), and
// fills the zero fields with their defaults.
func (c *Config) Validate() error {
	field := cfgerr.Errorf
	if !validNamespace(c.Namespace) {
		return field([]any{"namespace"}, "%q is not up to 64 letters, digits, '-', '_' or '.'", c.Namespace)
	}
	switch c.Mode {
	case "", ModeStateful, ModeStateless:
	default:
		return field([]any{"mode"}, "unknown mode %q (want %q or %q)", c.Mode, ModeStateful, ModeStateless)
	}
	switch c.Backend {
	case "", BackendMemory:
		if len(c.Addrs) > 0 {
			return field([]any{"addrs"}, "the memory backend takes no servers")
		}
	case BackendRedis, BackendMemcached:
		if len(c.Addrs) == 0 {
			return field([]any{"addrs"}, "the %s backend needs at least one server", c.Backend)
		}
		if c.Dir != "" {
			return field([]any{"dir"}, "only the memory backend persists to a directory")
		}
	default:
		return field([]any{"backend"}, "unknown backend %q (want %q, %q or %q)", c.Backend, BackendMemory, BackendRedis, BackendMemcached)
	}
	seen := make(map[string]bool, len(c.Addrs))
	for i, a := range c.Addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return field([]any{"addrs", i}, "%q is not host:port", a)
		}
		if seen[a] {
			return field([]any{"addrs", i}, "%q is listed twice", a)
		}
		seen[a] = true
	}
	switch {
	case c.Lifetime < 0:
		return field([]any{"lifetime"}, "must not be negative")
	case c.Lifetime > 0 && c.Lifetime < time.Second:
		return field([]any{"lifetime"}, "must be at least 1s (backends expire entries by the second)")
	case c.Lifetime > maxLifetime:
		return field([]any{"lifetime"}, "must be at most 7 days, crypto/tls's own limit")
	case c.Timeout < 0:
		return field([]any{"timeout"}, "must not be negative")
	case c.RotationPeriod < 0:
		return field([]any{"rotation_period"}, "must not be negative")
	case c.RotationPeriod > 0 && c.RotationPeriod < time.Second:
		return field([]any{"rotation_period"}, "must be at least 1s")
	case c.KeyWindow < 0:
		return field([]any{"key_window"}, "must not be negative")
	}
	*c = c.withDefaults()
	return nil
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeStateful
	}
	if c.Backend == "" {
		c.Backend = BackendMemory
	}
	if c.Lifetime == 0 {
		c.Lifetime = DefaultLifetime
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.LocalCacheSize == 0 {
		c.LocalCacheSize = DefaultLocalCacheSize
	}
	if c.RotationPeriod == 0 {
		c.RotationPeriod = DefaultRotationPeriod
	}
	if c.KeyWindow == 0 {
		c.KeyWindow = DefaultKeyWindow
	}
	return c
}

// kv is what sessions and the key ring need from a backend. Get returns
// errNotFound for an absent or expired entry; Add stores only if the key is
// absent and reports whether it did, which is how the fleet agrees on one
// ticket key per epoch.
type kv interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	Close() error
}

// errNotFound is a miss, not a failure: it never counts as a store error.
var errNotFound = errors.New("tlsstore: not found")

// Stats are counters since Open.
type Stats struct {
	Stored       uint64 // sessions written (stateful) or tickets issued (stateless)
	Resumed      uint64 // lookups that found a live session
	Misses       uint64 // unknown, expired or forged tickets
	StoreErrors  uint64 // backend errors and timeouts, each giving a full handshake or a kept key ring
	KeyRotations uint64 // times the encrypting ticket key changed (stateless)
}

// Store resumes TLS sessions through a backend shared by the fleet. It is
// safe for concurrent use by any number of handshakes.
type Store struct {
	cfg     Config
	log     *slog.Logger
	backend kv
	local   *lru     // stateful sessions in front of a remote backend; nil for memory or when disabled
	ring    *keyRing // stateless mode only

	stored, resumed, misses, storeErrors, keyRotations atomic.Uint64
	// closed turns every store call into a failure, so handshakes after
	// Close fall back to full ones instead of touching a closed backend.
	closed atomic.Bool
	// closeMu is held shared by every call to the backend and alone by
	// Close: a handshake still running when the store closes (a seamless
	// restart closes it while this process finishes its connections)
	// never meets a closed pebble.
	closeMu sync.RWMutex

	// failing is set while the backend errs, so that an outage is logged
	// once when it starts and once when it ends, not per handshake.
	failing atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// Open validates cfg, connects the backend and, in the stateless mode,
// loads or creates the fleet's ticket keys and starts rotating them. Remote
// servers are not required to be up: until they answer, handshakes are full
// (stateful) or use a local ticket key (stateless). log may be nil.
func Open(cfg Config, log *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tlsstore: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{cfg: cfg, log: log.With("component", "tlsstore", "mode", cfg.Mode, "backend", cfg.Backend)}

	var err error
	switch cfg.Backend {
	case BackendMemory:
		s.backend, err = openMemory(cfg.Dir, s.log)
	case BackendRedis:
		setRedisLogger(s.log)
		s.backend = newRendezvous(cfg.Addrs, func(addr string) kv { return newRedisServer(addr, cfg.Timeout) })
	case BackendMemcached:
		s.backend = newRendezvous(cfg.Addrs, func(addr string) kv { return newMemcachedServer(addr, cfg.Timeout) })
	}
	if err != nil {
		return nil, err
	}
	if cfg.Backend != BackendMemory && cfg.LocalCacheSize > 0 && cfg.Mode == ModeStateful {
		s.local = newLRU(cfg.LocalCacheSize)
	}
	if cfg.Mode == ModeStateless {
		s.ring = startKeyRing(s)
	}
	return s, nil
}

// Configure makes tc resume sessions through s by setting tc.WrapSession and
// tc.UnwrapSession; it changes nothing else, so a caller that set
// SessionTicketsDisabled keeps resumption off.
//
// Both hooks are closures over s, and [tls.Config.Clone] copies them, so
// clones of a configured config resume through s as well, whether cloned
// before or after a key rotation. A config returned by GetConfigForClient
// that is not such a clone must be passed to Configure itself, or its
// clients will get tickets no other instance can read. In the stateless
// mode the ticket keys live in a tls.Config private to s (kept current with
// SetSessionTicketKeys), never in tc, so no clone can hold a stale ring and
// the caller never installs keys.
func (s *Store) Configure(tc *tls.Config) {
	if s.ring != nil {
		tc.WrapSession = s.ring.wrap
		tc.UnwrapSession = s.ring.unwrap
		return
	}
	tc.WrapSession = s.wrap
	tc.UnwrapSession = s.unwrap
}

// Stats returns the counters since Open.
func (s *Store) Stats() Stats {
	return Stats{
		Stored:       s.stored.Load(),
		Resumed:      s.resumed.Load(),
		Misses:       s.misses.Load(),
		StoreErrors:  s.storeErrors.Load(),
		KeyRotations: s.keyRotations.Load(),
	}
}

var errStoreClosed = errors.New("tlsstore: store closed")

// Close stops key rotation and closes the backend. Configured tls.Configs
// must not handshake afterwards.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeMu.Lock()
		s.closed.Store(true)
		s.closeMu.Unlock()
		if s.ring != nil {
			s.ring.stop()
		}
		s.closeErr = s.backend.Close()
	})
	return s.closeErr
}

// call runs op with the handshake deadline and books its outcome: a miss is
// not an error, anything else is counted and logged when an outage starts.
// what names the operation for the log; it never includes a key.
func (s *Store) call(what string, op func(ctx context.Context) error) error {
	s.closeMu.RLock()
	if s.closed.Load() {
		s.closeMu.RUnlock()
		// A handshake still running at shutdown fails open, like any
		// other store failure.
		return errStoreClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	err := op(ctx)
	cancel()
	s.closeMu.RUnlock()
	switch {
	case err == nil || errors.Is(err, errNotFound):
		if s.failing.CompareAndSwap(true, false) {
			s.log.Info("session store reachable again")
		}
	default:
		s.storeErrors.Add(1)
		if s.cfg.OnError != nil {
			s.cfg.OnError()
		}
		if s.failing.CompareAndSwap(false, true) {
			s.log.Warn("session store failing; handshakes are full until it recovers", "op", what, "err", err)
		} else {
			s.log.Debug("session store call failed", "op", what, "err", err)
		}
	}
	return err
}

func validNamespace(ns string) bool {
	if len(ns) > 64 {
		return false
	}
	for _, c := range ns {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// namespacePrefix is the part of every backend key that names the fleet.
func (c *Config) namespacePrefix() string {
	if c.Namespace == "" {
		return ""
	}
	return c.Namespace + ":"
}
