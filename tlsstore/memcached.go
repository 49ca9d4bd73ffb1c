package tlsstore

import (
	"context"
	"errors"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// memcachedServer is one memcached server. gomemcache takes no context; its
// client timeout, set to the handshake deadline, bounds every call instead.
type memcachedServer struct {
	c *memcache.Client
}

var _ kv = memcachedServer{}

// idleConns keeps enough connections open for a burst of handshakes
// without a dial each; gomemcache's default of 2 is too few.
const idleConns = 64

func newMemcachedServer(addr string, timeout time.Duration) memcachedServer {
	c := memcache.New(addr)
	c.Timeout = timeout
	c.MaxIdleConns = idleConns
	return memcachedServer{c: c}
}

func (m memcachedServer) Get(_ context.Context, key string) ([]byte, error) {
	it, err := m.c.Get(key)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	return it.Value, nil
}

func (m memcachedServer) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	return m.c.Set(&memcache.Item{Key: key, Value: value, Expiration: expiration(ttl, time.Now())})
}

func (m memcachedServer) Add(_ context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	err := m.c.Add(&memcache.Item{Key: key, Value: value, Expiration: expiration(ttl, time.Now())})
	if errors.Is(err, memcache.ErrNotStored) {
		return false, nil
	}
	return err == nil, err
}

func (m memcachedServer) Close() error { return m.c.Close() }

// relativeLimit is memcached's cut-off: an expiration above 30 days is read
// as an absolute Unix time.
const relativeLimit = 30 * 24 * time.Hour

// expiration converts ttl to memcached's field, rounding up to whole
// seconds so an entry never expires early (0 would mean never).
func expiration(ttl time.Duration, now time.Time) int32 {
	if ttl > relativeLimit {
		return int32(now.Add(ttl).Unix())
	}
	return int32((ttl + time.Second - 1) / time.Second)
}
