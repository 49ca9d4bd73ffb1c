package h1

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// abortWatchDelay is how long a bodiless request runs before the
// connection is watched for an aborting client. Most answers are done
// sooner and pay for the watch only a clock reading: no goroutine, read,
// deadline or timer change. A client that leaves is noticed this much
// later at worst, which matters only for origin requests that run longer.
var abortWatchDelay = 50 * time.Millisecond

// watchClock is the watch's clock: the time since the process started,
// from the monotonic clock alone (time.Since reads nothing else). Tests
// skew it.
var watchClock = func() time.Duration { return time.Since(watchBase) }

var watchBase = time.Now()

// reqCtx is the context of the request a connection serves. The
// connection keeps one and reuses it for every request, so that a request
// that goes to an origin allocates no context: begin and end bracket each
// request, and cancel ends it early (the client went away). Nothing may
// keep it past the request's Serve: context.WithoutCancel, the way work
// that outlives a request detaches, keeps only its Value, which is nil.
type reqCtx struct {
	// mu guards the fields below; the abort watch's goroutine cancels.
	mu sync.Mutex
	// done is made by the first Done of a request, closed when it ends.
	done chan struct{}
	err  error
	// onCancel is the func OnCancel registered, run by cancel; one at a
	// time, which is all an origin exchange needs.
	onCancel func()
	// stopFn is stop as a func value, made once.
	stopFn func() bool
}

func newReqCtx() *reqCtx {
	c := &reqCtx{}
	c.stopFn = c.stop
	return c
}

func (c *reqCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *reqCtx) Value(any) any               { return nil }

func (c *reqCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	return c.done
}

func (c *reqCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// OnCancel makes cancel run f, as context.AfterFunc does without its
// allocations (upstream looks for this method). ok is false when another
// func is registered: the caller then uses context.AfterFunc. stop
// reports whether it kept f from running.
func (c *reqCtx) OnCancel(f func()) (stop func() bool, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.onCancel != nil {
		return nil, false
	}
	if c.err != nil {
		go f()
		return func() bool { return false }, true
	}
	c.onCancel = f
	return c.stopFn, true
}

func (c *reqCtx) stop() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ok := c.onCancel != nil
	c.onCancel = nil
	return ok
}

// cancel ends the request's context and runs what OnCancel registered.
func (c *reqCtx) cancel() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	if c.done != nil {
		close(c.done)
	}
	f := c.onCancel
	c.onCancel = nil
	c.mu.Unlock()
	if f != nil {
		f()
	}
}

// end ends the request's context as cancel does, which releases anything
// still waiting on it, and makes it ready for the next request.
func (c *reqCtx) end() {
	c.cancel()
	c.mu.Lock()
	c.done, c.err = nil, nil
	c.mu.Unlock()
}

// abortWatch reads the connection while a bodiless request is served, so
// that a client that goes away cancels the origin request instead of
// leaving it to run (as net/http's background read does). A byte that
// arrives meanwhile is the start of the next request and is kept. The
// connection keeps one; its reading starts only once the request has run
// for abortWatchDelay, on the timer's goroutine.
//
// The timer is not reset for every request nor stopped after it: once
// set, it stays set, and when it fires it sets itself again for the
// request then running, if that one is younger than the delay. A
// connection busy with short requests pays a timer change per delay, not
// two per request.
type abortWatch struct {
	c     net.Conn
	ctx   *reqCtx
	timer *time.Timer
	// mu guards timer and the fields below up to b: the timer's
	// goroutine and the connection's meet here.
	mu    sync.Mutex
	state watchState
	// since is when the request now watched was armed (watchClock);
	// set is whether the timer is set.
	since time.Duration
	set   bool
	done  chan struct{} // closed when the read of a started watch ends
	// b, n and err are the read's, owned by its goroutine until done.
	b   [1]byte
	n   int
	err error
}

type watchState uint8

const (
	watchIdle watchState = iota
	watchArmed
	watchReading
)

// arm starts the delay before the watch reads.
func (a *abortWatch) arm() {
	now := watchClock()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.state, a.since = watchArmed, now
	switch {
	case a.set:
	case a.timer == nil:
		a.timer = time.AfterFunc(abortWatchDelay, a.read)
	default:
		a.timer.Reset(abortWatchDelay)
	}
	a.set = true
}

// read runs on the timer's goroutine: it waits for a byte or the end of
// the connection, and cancels the request on the end.
func (a *abortWatch) read() {
	a.mu.Lock()
	a.set = false
	if a.state != watchArmed {
		// No request runs: the one it was set for ended.
		a.mu.Unlock()
		return
	}
	if wait := a.since + abortWatchDelay - watchClock(); wait > 0 {
		// The timer was set for an earlier request.
		a.set = true
		a.timer.Reset(wait)
		a.mu.Unlock()
		return
	}
	a.state = watchReading
	a.done = make(chan struct{})
	// Under mu, so that stop's deadline in the past comes after this one.
	a.c.SetReadDeadline(time.Time{})
	a.mu.Unlock()
	a.n, a.err = a.c.Read(a.b[:])
	if a.n == 0 && !errors.Is(a.err, os.ErrDeadlineExceeded) {
		a.ctx.cancel()
	}
	close(a.done)
}

// stop ends the watch and hands a byte it read to rb. good reports
// whether the connection is still good for another request, and moved
// whether the read deadline was changed.
func (a *abortWatch) stop(rb *rbuf) (good, moved bool) {
	a.mu.Lock()
	st := a.state
	a.state = watchIdle
	if st == watchReading {
		a.c.SetReadDeadline(time.Unix(1, 0))
	}
	a.mu.Unlock()
	if st != watchReading {
		return true, false
	}
	<-a.done
	if a.n > 0 {
		rb.unread(a.b[:a.n])
		return true, true
	}
	return errors.Is(a.err, os.ErrDeadlineExceeded), true
}
