package tlsstore

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	hrw "github.com/accel-proxy/accel/internal/rendezvous"
)

// After breakerFailures consecutive failures a server is skipped for
// breakerPause: while it is down (or blackholed), handshakes then fail over
// to a full handshake at once instead of each waiting out the deadline.
const (
	breakerFailures = 3
	breakerPause    = time.Second
)

// errServerSkipped is returned without a network call while a server is
// being skipped.
var errServerSkipped = errors.New("tlsstore: server skipped after repeated failures")

// rendezvous spreads keys over remote servers by rendezvous (highest random
// weight) hashing: every instance picks the same server for a key whatever
// the order of its server list, and removing a server moves only its keys.
type rendezvous struct {
	servers []*server
	addrs   []string // of servers, in the same order
}

var _ kv = (*rendezvous)(nil)

// server is one remote backend with its failure bookkeeping.
type server struct {
	addr      string
	kv        kv
	fails     atomic.Int32
	skipUntil atomic.Int64 // Unix nanoseconds
}

func newRendezvous(addrs []string, dial func(addr string) kv) *rendezvous {
	r := &rendezvous{}
	for _, a := range addrs {
		r.servers = append(r.servers, &server{addr: a, kv: dial(a)})
		r.addrs = append(r.addrs, a)
	}
	return r
}

// pick returns the server rendezvous hashing gives key.
func (r *rendezvous) pick(key string) *server {
	return r.servers[hrw.Pick(r.addrs, key)]
}

// do runs op against s unless s is being skipped, and keeps s's count of
// consecutive failures.
func (s *server) do(op func(kv) error) error {
	if time.Now().UnixNano() < s.skipUntil.Load() {
		return errServerSkipped
	}
	err := op(s.kv)
	if err == nil || errors.Is(err, errNotFound) {
		s.fails.Store(0)
		return err
	}
	if s.fails.Add(1) >= breakerFailures {
		s.skipUntil.Store(time.Now().Add(breakerPause).UnixNano())
	}
	return err
}

func (r *rendezvous) Get(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := r.pick(key).do(func(c kv) (err error) {
		v, err = c.Get(ctx, key)
		return err
	})
	return v, err
}

func (r *rendezvous) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return r.pick(key).do(func(c kv) error { return c.Set(ctx, key, value, ttl) })
}

func (r *rendezvous) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	var added bool
	err := r.pick(key).do(func(c kv) (err error) {
		added, err = c.Add(ctx, key, value, ttl)
		return err
	})
	return added, err
}

func (r *rendezvous) Close() error {
	var errs []error
	for _, s := range r.servers {
		errs = append(errs, s.kv.Close())
	}
	return errors.Join(errs...)
}
