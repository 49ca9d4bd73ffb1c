package upstream

import (
	"context"
	"slices"
	"time"
)

// lease is the right to one connection to srv, taken by acquire and given
// back by release.
type lease struct {
	srv *server
	// probe is set when this request is the one let through after srv's
	// cooldown: its outcome decides whether srv rejoins.
	probe bool
	// rescue is set when srv is ejected but every server is failing, so
	// that requests went to it anyway: a success brings it back too.
	rescue bool
	// queued is set when the request waited for the lease.
	queued bool
	err    error
}

// waiter is a request queued for a connection. ready is buffered so that
// whoever hands over a lease under Pool.mu never blocks.
type waiter struct {
	exclude uint64
	ready   chan lease
}

// acquire leases a connection to a server the request has not tried yet. When
// every such server is at MaxConnsPerServer it queues for at most wait.
func (p *Pool) acquire(ctx context.Context, exclude uint64, wait time.Duration) (lease, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return lease{}, ErrClosed
	}
	f := p.filter(exclude)
	if l, ok := p.tryLeaseLocked(f); ok {
		p.mu.Unlock()
		return l, nil
	}
	if !p.anyHealthyLocked(f) {
		p.mu.Unlock()
		return lease{}, errNoServer
	}
	if len(p.waiters) >= p.cfg.QueueSize {
		p.mu.Unlock()
		return lease{}, ErrQueueFull
	}
	w := &waiter{exclude: exclude, ready: make(chan lease, 1)}
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	var err error
	select {
	case l := <-w.ready:
		l.queued = true
		return l, l.err
	case <-t.C:
		err = ErrQueueTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.mu.Lock()
	if i := slices.Index(p.waiters, w); i >= 0 {
		p.waiters = slices.Delete(p.waiters, i, i+1)
		p.mu.Unlock()
		return lease{}, err
	}
	p.mu.Unlock()
	// The lease was handed over while we gave up: use it unless the
	// caller is gone.
	l := <-w.ready
	if l.err == nil && ctx.Err() != nil {
		p.abandon(l)
		return lease{}, ctx.Err()
	}
	l.queued = true
	return l, l.err
}

func (p *Pool) filter(exclude uint64) filter {
	return filter{now: p.now(), exclude: exclude, maxConns: p.cfg.MaxConnsPerServer, all: p.failing}
}

// tryLeaseLocked picks a server f admits and leases a connection to it.
func (p *Pool) tryLeaseLocked(f filter) (lease, bool) {
	s := p.pick.pick(p.servers, f)
	if s == nil {
		return lease{}, false
	}
	s.active++
	l := lease{srv: s}
	switch {
	case s.ejected && f.all:
		l.rescue = true
	case s.ejected:
		s.probing = true
		l.probe = true
	}
	return l, true
}

// anyHealthyLocked reports whether some server not yet tried takes requests,
// busy or not.
func (p *Pool) anyHealthyLocked(f filter) bool {
	for _, s := range p.servers {
		if s.bit&f.exclude == 0 && f.healthy(s) {
			return true
		}
	}
	return false
}

// dispatchLocked hands freed connections to the queue in FIFO order, each to
// the first waiter that may use it, and fails at once the waiters for which
// no healthy server is left.
func (p *Pool) dispatchLocked() {
	for i := 0; i < len(p.waiters); {
		w := p.waiters[i]
		f := p.filter(w.exclude)
		l, ok := p.tryLeaseLocked(f)
		if !ok && p.anyHealthyLocked(f) {
			i++
			continue
		}
		if !ok {
			l.err = errNoServer
		}
		w.ready <- l
		p.waiters = slices.Delete(p.waiters, i, i+1)
	}
}

// release gives back a connection lease. After Close the connection just
// given back to the keep-alive pool is closed.
func (p *Pool) release(s *server) {
	p.mu.Lock()
	s.active--
	p.dispatchLocked()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		s.hc.CloseIdleConnections()
	}
}

// abandon gives back a lease that was never used.
func (p *Pool) abandon(l lease) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l.srv.active--
	if l.probe {
		l.srv.probing = false
	}
	p.dispatchLocked()
}
