package upstream

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/accel-proxy/accel/parser"
)

// outcome is what a try says about its server's health.
type outcome int

const (
	// neutral: the try proves nothing, as when the client went away.
	neutral outcome = iota
	// success: a response head arrived, whatever its status.
	success
	// failure: refused, reset, or a malformed answer; a connect timeout.
	failure
	// silent: a sent request met a timeout. It is a failure only if the
	// server answered nothing else meanwhile (see report).
	silent
)

// report records a try's outcome for passive health. A probe's outcome
// decides alone: success brings its server back, failure starts another
// cooldown. Otherwise FailThreshold failures within FailWindow eject, except
// the only server of a pool, which has nowhere to send its requests.
func (p *Pool) report(l lease, o outcome) {
	s := l.srv
	p.mu.Lock()
	now := p.now()
	if o == silent {
		// The server timed out on this request. If it answered others
		// within the same silence, it is alive and this URL is slow:
		// ejecting it would fail every other URL it serves.
		o = failure
		if now.Sub(s.lastOK) < p.cfg.FirstByteTimeout {
			o = neutral
		}
	}
	ejected := false
	switch o {
	case success:
		s.lastOK = now
		if l.probe {
			s.probing = false
		}
		if s.ejected && (l.probe || l.rescue) {
			s.ejected, s.nfail = false, 0
		}
	case failure:
		s.fails[s.nfail%len(s.fails)] = now
		s.nfail++
		switch {
		case l.probe:
			s.probing = false
			s.downUntil = now.Add(p.cfg.Cooldown)
		case l.rescue:
			s.downUntil = now.Add(p.cfg.Cooldown)
		case !s.ejected && len(p.servers) > 1 && s.nfail >= len(s.fails) &&
			now.Sub(s.fails[s.nfail%len(s.fails)]) <= p.cfg.FailWindow:
			// fails[nfail%len] is the oldest of the last FailThreshold.
			s.ejected = true
			s.downUntil = now.Add(p.cfg.Cooldown)
			ejected = true
		}
	case neutral:
		if l.probe {
			s.probing = false
		}
	}
	changed := p.updateFailingLocked()
	failing := p.failing
	p.dispatchLocked()
	p.mu.Unlock()
	if ejected && p.cfg.OnEject != nil {
		p.cfg.OnEject(s.addr)
	}
	if changed && p.cfg.OnAllFailing != nil {
		p.cfg.OnAllFailing(failing, s.addr)
	}
}

// updateFailingLocked sets p.failing from the servers' states and reports
// whether it changed.
func (p *Pool) updateFailingLocked() bool {
	all := true
	for _, s := range p.servers {
		if !s.ejected && !s.checkDown {
			all = false
			break
		}
	}
	changed := all != p.failing
	p.failing = all
	return changed
}

// setChecked records an active check. A passing check also ends a passive
// ejection: the server answers again.
func (p *Pool) setChecked(s *server, up bool) {
	p.mu.Lock()
	wentDown := !up && !s.checkDown
	s.checkDown = !up
	if up && s.ejected && !s.probing {
		s.ejected, s.nfail = false, 0
	}
	changed := p.updateFailingLocked()
	failing := p.failing
	p.dispatchLocked()
	p.mu.Unlock()
	if wentDown && p.cfg.OnEject != nil {
		p.cfg.OnEject(s.addr)
	}
	if changed && p.cfg.OnAllFailing != nil {
		p.cfg.OnAllFailing(failing, s.addr)
	}
}

// startChecks runs the active checks: every HealthInterval each server is
// fetched once, concurrently, each check bounded by the interval.
func (p *Pool) startChecks() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(p.cfg.HealthInterval)
		defer t.Stop()
		for {
			var round sync.WaitGroup
			for _, s := range p.servers {
				round.Go(func() {
					up := p.check(ctx, s)
					if ctx.Err() == nil { // not a check cut short by Close
						p.setChecked(s, up)
					}
				})
			}
			round.Wait()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	p.stopChecks = func() {
		cancel()
		wg.Wait()
	}
}

// check fetches HealthPath from s and reports whether it answered 2xx or 3xx.
func (p *Pool) check(ctx context.Context, s *server) bool {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.HealthInterval)
	defer cancel()
	head := &parser.Request{
		Method: []byte("GET"),
		Target: []byte(p.cfg.HealthPath),
		Host:   []byte(s.addr),
		Major:  1, Minor: 1,
		Fields: parser.Fields{{Name: []byte("Host"), Value: []byte(s.addr)}},
	}
	resp, err := exchange(ctx, newCall(s.health, s.addr, p.cfg.FirstByteTimeout, nil, nil), head, nil)
	if err != nil {
		return false
	}
	up := resp.Head.Status >= 200 && resp.Head.Status < 400
	// Drain a little so that the check's connection can be kept.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	return up
}
