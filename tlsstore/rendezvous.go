package tlsstore

import (
	"context"
	"errors"
	"hash/fnv"
	"sync/atomic"
	"time"
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
	}
	return r
}

// pick returns the server with the highest score for key; a tie, however
// unlikely, goes to the greater address so that list order never matters.
func (r *rendezvous) pick(key string) *server {
	var best *server
	var bestScore uint64
	for _, s := range r.servers {
		sc := score(s.addr, key)
		if best == nil || sc > bestScore || (sc == bestScore && s.addr > best.addr) {
			best, bestScore = s, sc
		}
	}
	return best
}

// score is the weight of addr for key: FNV-1a over both, finished with the
// SplitMix64 mixer so that nearby inputs spread evenly.
func score(addr, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(addr))
	h.Write([]byte{0})
	h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
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
