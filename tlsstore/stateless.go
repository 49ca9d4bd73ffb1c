package tlsstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// The ticket key of epoch e (Unix time divided by RotationPeriod) is
// stored under ringKeyPrefix + period + ":" + e; the period is part of the
// name so that instances configured with different periods never mistake
// each other's epochs.
const ringKeyPrefix = "accel:tls:k:"

// expiryTag starts the SessionState.Extra entry in which a stateless ticket
// carries its expiry, because crypto/tls does not expose the creation time.
var expiryTag = []byte("accel-exp1")

// keyRing keeps the stateless mode's ticket keys in step with the fleet.
// The keys live in a tls.Config of its own, installed with
// SetSessionTicketKeys as [current, previous KeyWindow..., next]; tickets
// are encrypted with crypto/tls's own format through that config's
// EncryptTicket and DecryptTicket.
type keyRing struct {
	s    *Store
	keys *tls.Config // holds only the ring; SetSessionTicketKeys makes swaps safe during handshakes

	// The fields below are owned by refresh, which runs in Open and then
	// only in the rotation goroutine.
	known map[int64][32]byte // epoch keys last read from the store, the fallback when it errs
	// replaced holds keys this instance used for an epoch before the store
	// came back with another one (it lost its keys and a peer created a
	// new one): they still decrypt this instance's tickets for the window.
	replaced  map[int64][32]byte
	installed bool
	current   [32]byte
	local     *[32]byte // used while the store has never answered

	stopOnce sync.Once
	stopc    chan struct{}
	done     chan struct{}
}

// startKeyRing installs a first ring before returning, so that handshakes
// never see an empty one, and starts rotating.
func startKeyRing(s *Store) *keyRing {
	r := &keyRing{
		s:        s,
		keys:     &tls.Config{},
		known:    make(map[int64][32]byte),
		replaced: make(map[int64][32]byte),
		stopc:    make(chan struct{}),
		done:     make(chan struct{}),
	}
	r.refresh(time.Now())
	go r.loop()
	return r
}

// loop refreshes four times per period (at least once a minute), on a
// grid aligned with the epoch boundaries, so a new epoch's key becomes
// current within moments of the boundary on every instance, having been
// staged as next a full period earlier; the extra refreshes retry a store
// that missed one and put back keys a store lost.
func (r *keyRing) loop() {
	defer close(r.done)
	step := int64(min(r.s.cfg.RotationPeriod/4, time.Minute))
	for {
		now := time.Now().UnixNano()
		t := time.NewTimer(time.Duration(step - now%step))
		select {
		case <-r.stopc:
			t.Stop()
			return
		case <-t.C:
			r.refresh(time.Now())
		}
	}
}

func (r *keyRing) stop() {
	r.stopOnce.Do(func() { close(r.stopc) })
	<-r.done
}

// refresh reads (creating if absent) the keys around now's epoch and
// installs them. If the current key cannot be had, the installed ring
// stays; if none was ever installed, a local key serves this instance
// alone until the store answers.
func (r *keyRing) refresh(now time.Time) {
	period := r.s.cfg.RotationPeriod
	epoch := now.UnixNano() / int64(period)
	// A key is staged one period before it encrypts, encrypts for one,
	// then decrypts for KeyWindow more; one period of slack on top.
	ttl := time.Duration(r.s.cfg.KeyWindow+3) * period

	cur, ok := r.ensure(epoch, ttl)
	if !ok {
		if !r.installed {
			if r.local == nil {
				r.local = new([32]byte)
				rand.Read(r.local[:])
			}
			r.keys.SetSessionTicketKeys([][32]byte{*r.local})
		}
		return
	}
	ring := [][32]byte{cur}
	for i := int64(0); i <= int64(r.s.cfg.KeyWindow); i++ {
		if i > 0 {
			if k, ok := r.lookup(epoch - i); ok {
				ring = append(ring, k)
			}
		}
		if k, ok := r.replaced[epoch-i]; ok {
			ring = append(ring, k)
		}
	}
	if next, ok := r.ensure(epoch+1, ttl); ok {
		ring = append(ring, next)
	}
	r.keys.SetSessionTicketKeys(ring)
	if (r.installed || r.local != nil) && cur != r.current {
		r.s.keyRotations.Add(1)
	}
	r.installed, r.current = true, cur

	for e := range r.known {
		if e < epoch-int64(r.s.cfg.KeyWindow) {
			delete(r.known, e)
			delete(r.replaced, e)
		}
	}
}

// ensure returns epoch's key, creating it if the fleet has none yet: Add
// lets exactly one instance's candidate win, and the others read it.
func (r *keyRing) ensure(epoch int64, ttl time.Duration) ([32]byte, bool) {
	name := r.keyName(epoch)
	// A key this instance already uses is offered again: after the store
	// lost its keys (a flush, a memcached restart) the fleet keeps the one
	// its running instances encrypt with, instead of splitting on a new one.
	candidate, known := r.known[epoch]
	if !known {
		rand.Read(candidate[:])
	}
	var added bool
	err := r.s.call("create ticket key", func(ctx context.Context) (err error) {
		added, err = r.s.backend.Add(ctx, name, candidate[:], ttl)
		return err
	})
	if err != nil {
		k, ok := r.known[epoch]
		return k, ok
	}
	if added {
		r.known[epoch] = candidate
		return candidate, true
	}
	return r.lookup(epoch)
}

// lookup returns epoch's key from the store, or the one last read if the
// store errs.
func (r *keyRing) lookup(epoch int64) ([32]byte, bool) {
	var v []byte
	err := r.s.call("read ticket key", func(ctx context.Context) (err error) {
		v, err = r.s.backend.Get(ctx, r.keyName(epoch))
		return err
	})
	var k [32]byte
	if err != nil || len(v) != len(k) {
		k, ok := r.known[epoch]
		return k, ok
	}
	copy(k[:], v)
	if old, ok := r.known[epoch]; ok && old != k {
		r.replaced[epoch] = old
	}
	r.known[epoch] = k
	return k, true
}

func (r *keyRing) keyName(epoch int64) string {
	return fmt.Sprintf("%s%s%d:%d", ringKeyPrefix, r.s.cfg.namespacePrefix(), r.s.cfg.RotationPeriod.Milliseconds(), epoch)
}

// wrap is tls.Config.WrapSession for the stateless mode: crypto/tls's own
// ticket encryption with the ring's current key, the expiry added first.
func (r *keyRing) wrap(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	bindName(ss, cs.ServerName)
	ss.Extra = append(ss.Extra, binary.BigEndian.AppendUint64(bytes.Clone(expiryTag), uint64(time.Now().Add(r.s.cfg.Lifetime).UnixNano())))
	ticket, err := r.keys.EncryptTicket(cs, ss)
	if err == nil {
		r.s.stored.Add(1)
	}
	return ticket, err
}

// unwrap is tls.Config.UnwrapSession for the stateless mode. A ticket that
// no ring key decrypts, or that has expired, gives (nil, nil): a full
// handshake.
func (r *keyRing) unwrap(ticket []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	ss, _ := r.keys.DecryptTicket(ticket, cs) // documented to fail only as (nil, nil)
	if ss == nil || !unexpired(ss, time.Now()) || !boundTo(ss, cs.ServerName) {
		r.s.misses.Add(1)
		return nil, nil
	}
	r.s.resumed.Add(1)
	return ss, nil
}

// unexpired reports whether ss carries an expiry after now.
func unexpired(ss *tls.SessionState, now time.Time) bool {
	for _, e := range ss.Extra {
		if len(e) == len(expiryTag)+8 && bytes.HasPrefix(e, expiryTag) {
			return now.UnixNano() < int64(binary.BigEndian.Uint64(e[len(expiryTag):]))
		}
	}
	return false
}
