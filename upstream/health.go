package upstream

import (
	"context"
	"io"
	"sync"
	"time"

	"accel/parser"
)

// outcome is what a try says about its server's health.
type outcome int

const (
	// neutral: the try proves nothing, as when the client went away.
	neutral outcome = iota
	// success: a response head arrived, whatever its status.
	success
	// failure: refused, reset, timed out or malformed.
	failure
)

// report records a try's outcome for passive health. A probe's outcome
// decides alone: success brings its server back, failure starts another
// cooldown. Otherwise FailThreshold failures within FailWindow eject.
func (p *Pool) report(l lease, o outcome) {
	s := l.srv
	p.mu.Lock()
	now := time.Now()
	ejected := false
	switch o {
	case success:
		if l.probe {
			s.ejected, s.probing, s.nfail = false, false, 0
		}
	case failure:
		s.fails[s.nfail%len(s.fails)] = now
		s.nfail++
		switch {
		case l.probe:
			s.probing = false
			s.downUntil = now.Add(p.cfg.Cooldown)
		case !s.ejected && s.nfail >= len(s.fails) && now.Sub(s.fails[s.nfail%len(s.fails)]) <= p.cfg.FailWindow:
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
	p.dispatchLocked()
	p.mu.Unlock()
	if ejected && p.cfg.OnEject != nil {
		p.cfg.OnEject(s.addr)
	}
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
	p.dispatchLocked()
	p.mu.Unlock()
	if wentDown && p.cfg.OnEject != nil {
		p.cfg.OnEject(s.addr)
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
	resp, err := exchange(ctx, s.health, s.addr, head, nil, p.cfg.FirstByteTimeout, nil)
	if err != nil {
		return false
	}
	// Drain a little so that the check's connection can be kept.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	return resp.Head.Status >= 200 && resp.Head.Status < 400
}
