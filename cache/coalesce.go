package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accel-proxy/accel/parser"
)

// stream is a body that arrives while it is read: one goroutine (the
// flight's filler) reads the origin's body into buf's spare capacity and
// publishes what it read, any number of readers follow at their own pace
// from the start. Published bytes are never rewritten, and the filler
// writes only past them, so a reader may use a slice of buf after dropping
// the lock.
type stream struct {
	mu   sync.Mutex
	buf  []byte
	done bool
	err  error
	// wake is closed when buf grows or done is set; it is made by the
	// first reader that waits, and again after each wake-up, so that
	// storing allocates per object and per wake-up, not per read from the
	// origin, and a body read whole before anyone waits makes none.
	wake chan struct{}
	// end is where the filler reads the end of a body of known length,
	// past buf, which holds exactly that length; here rather than on the
	// filler's stack, which a Read through an interface would move to
	// the heap.
	end [1]byte
}

// init readies s for a body of length bytes (-1: unknown). A known
// length gets its whole buffer at once, exactly: fill reads the end of
// the body past it.
func (s *stream) init(length int64) {
	if length >= 0 {
		s.buf = make([]byte, 0, length)
	}
}

// publish replaces the buffer with b, which extends it (the same bytes
// first), and wakes the readers.
func (s *stream) publish(b []byte) {
	s.mu.Lock()
	s.buf = b
	s.wakeLocked()
	s.mu.Unlock()
}

// wakeLocked wakes the readers waiting for more; s.mu is held.
func (s *stream) wakeLocked() {
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
}

// finish ends the stream; a non-nil err makes every reader fail instead of
// seeing a short body as a whole one.
func (s *stream) finish(err error) {
	s.mu.Lock()
	s.done, s.err = true, err
	s.wakeLocked()
	s.mu.Unlock()
}

// next returns the bytes after off, waiting for some. At the end it returns
// no bytes and io.EOF-free done=true, or the stream's error.
func (s *stream) next(ctx context.Context, off int) (p []byte, done bool, err error) {
	for {
		s.mu.Lock()
		buf, fin, serr := s.buf, s.done, s.err
		var wake chan struct{}
		if len(buf) <= off && !fin && serr == nil {
			if s.wake == nil {
				s.wake = make(chan struct{})
			}
			wake = s.wake
		}
		s.mu.Unlock()
		switch {
		case serr != nil:
			return nil, true, serr
		case len(buf) > off:
			return buf[off:len(buf):len(buf)], false, nil
		case fin:
			return nil, true, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, true, ctx.Err()
		}
	}
}

// result is what a flight produced, for every request that waited on it.
type resultKind int

const (
	// resultStream: a storable response, streaming into head/body.
	resultStream resultKind = iota
	// resultObject: the stored response, revalidated by a 304.
	resultObject
	// resultStale: the origin failed (5xx) and obj is the stale response
	// to serve in its place where stale-if-error allows.
	resultStale
	// resultPass: not storable; only the leader may use pass, the
	// waiters go to the origin themselves.
	resultPass
	// resultError: the origin could not be reached; err says why.
	resultError
)

// flight is one origin fetch for a key, shared by the requests that
// missed on it while it ran. The leader writes the result fields and then
// releases the flight; after that they are read-only.
type flight struct {
	key flightKey
	// ready points to the channel the waiters wait on (wait), made by the
	// first of them: most flights have none, and then cost no channel.
	// release swaps in settledReady, closed.
	ready atomic.Pointer[chan struct{}]

	kind      resultKind
	err       error
	fwdStatus int
	obj       *object
	head      *head
	body      *stream
	pass      *Response // resultPass: the leader's response

	waiters atomic.Int32

	// hd and st are what head and body point to for resultStream: the
	// flight, its head and its stream are one allocation.
	hd head
	st stream
}

// head is a response head shared through a flight, and the freshness it
// will be stored with.
type head struct {
	status     int
	fields     parser.Fields // as served to waiters: no Set-Cookie
	own        parser.Fields // as served to the leader
	length     int64
	vary       []string
	variant    string
	initialAge time.Duration
	lifetime   time.Duration
	received   time.Time
	// storable says the head may announce "stored" (RFC 9211): only
	// what is known when the head goes out, a length within the object
	// size limit that a tier takes. A body of unknown length may turn out
	// too big or be cut off, and the head cannot be taken back.
	storable bool
}

// flightKey names a fetch: the primary and secondary key of what it
// fetches. A pair rather than the two joined: a miss would make a string
// of them just to find its flight.
type flightKey struct{ uri, variant string }

func newFlight(key flightKey) *flight {
	return &flight{key: key}
}

// directFlights holds the flights of fetches that do not coalesce, in
// the main those of hit-for-pass keys, where every request is a miss: a
// flight is 345 bytes, a third of what such a miss allocated.
var directFlights = sync.Pool{New: func() any { return new(flight) }}

// getDirectFlight returns a flight for a fetch that nobody joins.
func getDirectFlight(key flightKey) *flight {
	f := directFlights.Get().(*flight)
	f.key = key
	return f
}

// recycle returns a direct flight once its leader is done with it. A
// stream's is left to the collector: its fill may outlive the leader.
func (f *flight) recycle() {
	if f.kind == resultStream {
		return
	}
	*f = flight{}
	directFlights.Put(f)
}

// settledReady is the ready channel of a released flight.
var settledReady = func() *chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return &ch
}()

// wait returns a channel closed once f's leader released it.
func (f *flight) wait() <-chan struct{} {
	p := f.ready.Load()
	if p == nil {
		ch := make(chan struct{})
		if f.ready.CompareAndSwap(nil, &ch) {
			return ch
		}
		// Released meanwhile, or another waiter made it.
		p = f.ready.Load()
	}
	return *p
}

// release tells f's waiters that the result fields are written.
func (f *flight) release() {
	if p := f.ready.Swap(settledReady); p != nil {
		close(*p)
	}
}

// flights is the set of fetches in progress and the keys remembered as
// hit-for-pass.
type flights struct {
	mu   sync.Mutex
	m    map[flightKey]*flight   // mu guards m and pass
	pass map[flightKey]time.Time // key → until when requests skip coalescing
}

// join returns the flight in progress for key, or registers f as it and
// reports leader.
func (fs *flights) join(key flightKey, f *flight) (cur *flight, leader bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if cur := fs.m[key]; cur != nil {
		return cur, false
	}
	fs.m[key] = f
	return f, true
}

// done unregisters f once its head is known: later requests find the
// stored object, or start a new fetch.
func (fs *flights) done(f *flight) {
	fs.mu.Lock()
	if fs.m[f.key] == f {
		delete(fs.m, f.key)
	}
	fs.mu.Unlock()
}

// hitForPass remembers (until>0) or asks about key.
func (fs *flights) setPass(key flightKey, until time.Time) {
	fs.mu.Lock()
	fs.pass[key] = until
	fs.mu.Unlock()
}

func (fs *flights) clearPass(key flightKey) {
	fs.mu.Lock()
	delete(fs.pass, key)
	fs.mu.Unlock()
}

func (fs *flights) passing(key flightKey, now time.Time) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	until, ok := fs.pass[key]
	if ok && !now.Before(until) {
		delete(fs.pass, key)
		return false
	}
	return ok
}
