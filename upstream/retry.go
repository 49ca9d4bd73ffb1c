package upstream

import (
	"context"
	"errors"
	"syscall"
	"time"
)

// Do sends req to a server of the pool and returns its response head with the
// body streaming. A failed try is retried on a server not tried yet, up to
// Retries times and only while RetryBudget lasts, when that cannot send the
// request twice (see retryable). Two failures that say nothing of the
// request are retried on the same servers: a kept-alive connection the
// origin closed as we used it (once, every idle connection checked first),
// and refused connections from every server left (an origin restarting: dialled again
// with a growing pause, within RedialWindow). The error is ErrQueueFull,
// ErrQueueTimeout, ErrClosed, or the last try's *Error; Status maps it to
// the answer for the client.
func (p *Pool) Do(ctx context.Context, req *Request) (*Response, error) {
	start := time.Now()
	var body *requestBody
	if req.Body != nil && req.Head.ContentLength != 0 {
		body = &requestBody{r: req.Body}
	}
	var tried uint64
	var last error
	redials, staleRetried := 0, false
	for n := 0; ; n++ {
		wait := p.cfg.QueueTimeout
		if n > 0 || redials > 0 {
			wait = min(wait, p.cfg.RetryBudget-time.Since(start))
		}
		l, err := p.acquire(ctx, tried, wait)
		if err != nil {
			if last == nil {
				return nil, err
			}
			if errors.Is(err, errNoServer) && refused(last) && p.pauseRedial(ctx, start, redials) {
				redials++
				tried, n = 0, -1
				continue
			}
			// No other server to go to: the failure that made us look
			// for one is the answer.
			return nil, last
		}
		// A request that cannot be sent twice, and the retry of one that
		// met a closed connection, check each idle connection first.
		check := !req.Retryable || body != nil || staleRetried
		// The first try, leased without a wait, starts when Do did:
		// one clock read fewer per request.
		var began time.Time
		if last == nil && !l.queued {
			began = start
		}
		resp, err := p.try(ctx, l, req, body, check, began)
		if err == nil {
			return resp, nil
		}
		last = err
		if ctx.Err() != nil || !retryable(req, body, err) {
			return nil, err
		}
		if !staleRetried && stale(err) {
			staleRetried = true
			n--
			continue
		}
		if n >= p.cfg.Retries || time.Since(start) >= p.cfg.RetryBudget {
			return nil, err
		}
		tried |= l.srv.bit
		if p.cfg.OnRetry != nil {
			p.cfg.OnRetry(l.srv.addr)
		}
	}
}

// refused reports whether a try's connection was refused: nothing was sent
// and the server's host is up but nothing listens, as while an origin
// restarts.
func refused(err error) bool {
	var e *Error
	return errors.As(err, &e) && !e.Sent && errors.Is(err, syscall.ECONNREFUSED)
}

// stale reports whether a try failed on a kept-alive connection that the
// origin closed before answering a byte: what a client library retries at
// once, since the request most likely met the origin's idle close.
func stale(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.stale
}

// pauseRedial waits before the servers are dialled again, 10ms doubling up
// to 500ms, and reports false when that would end past RedialWindow or the
// caller gave up.
func (p *Pool) pauseRedial(ctx context.Context, start time.Time, redials int) bool {
	d := min(10*time.Millisecond<<min(redials, 6), 500*time.Millisecond)
	if time.Since(start)+d > p.cfg.RedialWindow {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// retryable reports whether a failed try may be sent again elsewhere. A
// request that was never written may always go elsewhere, a Retryable one
// may after any failure before its response head (all tries fail there), but
// never once its body was read in part or the client's body was what failed.
func retryable(req *Request, body *requestBody, err error) bool {
	var e *Error
	if !errors.As(err, &e) || errors.Is(err, ErrRequestBody) {
		return false
	}
	if body != nil && body.n > 0 {
		return false
	}
	return !e.Sent || req.Retryable
}

// try runs one exchange on a leased connection and records its outcome.
// start is when it began, zero to read the clock.
func (p *Pool) try(ctx context.Context, l lease, req *Request, body *requestBody, check bool, start time.Time) (*Response, error) {
	s := l.srv
	if start.IsZero() {
		start = time.Now()
	}
	c := newCall(s.hc, s.addr, p.cfg.FirstByteTimeout, p, s)
	c.interim, c.check, c.began = req.Interim, check, start
	resp, err := exchange(ctx, c, req.Head, body)
	status := 0
	switch {
	case err == nil:
		status = resp.Head.Status
		p.report(l, success)
		if p.cfg.BufferMemory > 0 && c.holdsConn() {
			p.startSpool(c)
		}
	case ctx.Err() != nil || errors.Is(err, ErrRequestBody) || stale(err):
		// A kept-alive connection the origin had closed says nothing of
		// the server: the retry on a checked connection will.
		p.report(l, neutral)
		p.release(s)
	default:
		p.report(l, outcomeOf(err))
		p.release(s)
	}
	if p.cfg.OnTry != nil {
		p.cfg.OnTry(s.addr, time.Since(start), status, err)
	}
	return resp, err
}

// outcomeOf says what a failed try or body read tells of its server: a
// timeout after the request was sent is a silence that may be the URL's
// (see report); anything else, a connect timeout included, is the server's.
func outcomeOf(err error) outcome {
	var e *Error
	if errors.As(err, &e) && e.Timeout && e.Sent {
		return silent
	}
	return failure
}
