package tlsstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// redisServer is one Redis server. Entries expire by Redis's own TTL.
type redisServer struct {
	c *redis.Client
}

var _ kv = redisServer{}

// newRedisServer connects lazily: go-redis dials on first use and redials
// after failures, so a server that is down at start or restarts later is
// picked up without help.
func newRedisServer(addr string, timeout time.Duration) redisServer {
	return redisServer{c: redis.NewClient(&redis.Options{
		Addr: addr,
		// Every timeout is the handshake deadline, and the context's
		// deadline is honoured too: no call may hold a handshake longer.
		DialTimeout:           timeout,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		ContextTimeoutEnabled: true,
		// A retry would outlive the deadline; the next handshake is the
		// retry. One dial attempt per call for the same reason.
		MaxRetries:    -1,
		DialerRetries: 1,
		// Only plain GET/SET are used; no push notifications to handle.
		Protocol:                 2,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})}
}

func (r redisServer) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := r.c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, errNotFound
	}
	return v, err
}

func (r redisServer) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return r.c.Set(ctx, key, value, ttl).Err()
}

func (r redisServer) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	return r.c.SetNX(ctx, key, value, ttl).Result()
}

func (r redisServer) Close() error { return r.c.Close() }

// redisLogger takes go-redis's own messages (a dial that failed while a
// server is down, pool notices), which it would otherwise print to stderr
// as plain text past log.format. They go to the store's log at debug
// level: each failure is already counted (OnError, the metric) and cost a
// full handshake, and a server that is down would log one per handshake.
type redisLogger struct{ log *slog.Logger }

// setRedisLogger routes go-redis's messages to log. go-redis has one
// logger per process: the last store opened names it.
func setRedisLogger(log *slog.Logger) { redis.SetLogger(redisLogger{log}) }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
