package accel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// A seamless restart moves a running accel's listening sockets and data
// directory to a new process without refusing a connection. The sockets
// travel as descriptors (cmd/accel passes them over a Unix socket), so the
// kernel's queue of connections not yet accepted goes with them: the old
// process stops accepting and the new one accepts what was queued. (Two
// processes binding one port with SO_REUSEPORT instead would each have a
// queue of their own, and closing the old one resets what waits in it.)
//
// The old process: ListenerFiles, then Release once the new process holds
// them, then Retire. The new process: Adopt before Start.

// handoverName is how a listening socket is named between the two
// processes: by what the config says it listens for, so that the new
// config's listeners find theirs whatever port ":0" gave.
func handoverName(kind, addr string) string { return kind + " " + addr }

// ListenerFiles returns the listening sockets a seamless restart hands to
// the new process, as duplicated descriptors the caller closes, each named
// by what it listens for ("listen 127.0.0.1:8080", "admin 127.0.0.1:9090").
func (s *Server) ListenerFiles() (names []string, files []*os.File, err error) {
	type filer interface{ File() (*os.File, error) }
	add := func(name string, ln net.Listener) {
		fl, ok := ln.(filer)
		if !ok || err != nil {
			return
		}
		f, ferr := fl.File()
		if ferr != nil {
			err = fmt.Errorf("%s: %w", name, ferr)
			return
		}
		names, files = append(names, name), append(files, f)
	}
	s.lnMu.Lock()
	for _, l := range s.listeners {
		add(handoverName("listen", l.addr), l.ln)
	}
	s.lnMu.Unlock()
	if s.admin != nil {
		add(handoverName("admin", s.adminListen), s.admin.Listener())
	}
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		return nil, nil, err
	}
	return names, files, nil
}

// Adopt gives the server, before Start, the listening sockets a seamless
// restart took over, named as ListenerFiles names them, and binds the
// addresses of the config the old process did not listen on: a port that
// cannot be bound fails the takeover here, while the old process still
// serves, rather than in Start, after it let go. Start serves each
// listener of the config on its socket, with the connections queued in
// it; sockets the config no longer names are closed once Start has opened
// everything. Adopt takes ownership of files.
func (s *Server) Adopt(names []string, files []*os.File) error {
	if len(names) != len(files) {
		for _, f := range files {
			f.Close()
		}
		return fmt.Errorf("handover: %d names for %d sockets", len(names), len(files))
	}
	var errs []error
	s.adopted = map[string]net.Listener{}
	for i, f := range files {
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("handover: %s: %w", names[i], err))
			continue
		}
		s.adopted[names[i]] = ln
	}
	st := s.state.Load()
	bind := func(kind, addr string) {
		if _, ok := s.adopted[handoverName(kind, addr)]; ok {
			return
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", kind, addr, err))
			return
		}
		s.adopted[handoverName(kind, addr)] = ln
	}
	for _, lc := range st.cfg.Listen {
		bind("listen", lc.Address)
	}
	if st.set.admin != nil {
		bind("admin", st.set.admin.Listen)
	}
	if len(errs) > 0 {
		s.closeAdopted(false)
		return errors.Join(errs...)
	}
	return nil
}

// takeAdopted returns the adopted socket of that name, or nil.
func (s *Server) takeAdopted(kind, addr string) net.Listener {
	name := handoverName(kind, addr)
	ln := s.adopted[name]
	delete(s.adopted, name)
	return ln
}

// closeAdopted closes the adopted sockets no listener took: once Start
// opened everything, those the new config dropped (unused says so in the
// log); after a failure, all of them.
func (s *Server) closeAdopted(unused bool) {
	for name, ln := range s.adopted {
		if unused {
			s.log.Info("handover: socket not in the config, closed", "socket", name, "addr", ln.Addr().String())
		}
		ln.Close()
	}
	s.adopted = nil
}

// Release is the old process's step of a seamless restart once the new
// process holds the listening sockets: it stops accepting (what is queued
// in the sockets is the new process's to accept) and closes what holds
// the data directory, so that the new process can open it: the fleet's
// purge follower, the cache's persistent tier (requests still running
// here go on from memory) and the TLS session store (handshakes still
// running here end as full ones). Reloads are refused from then on.
// Retire then ends the connections this process still serves.
func (s *Server) Release() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.released.Swap(true) {
		return nil
	}
	if s.stopWatch != nil {
		s.stopOnce.Do(func() { close(s.stopWatch) })
	}
	s.closeListeners()
	if s.admin != nil {
		// Shutdown with an ended context closes the admin listener now
		// and leaves its requests in flight alone; Retire's Shutdown
		// waits for them.
		ended, cancel := context.WithCancel(context.Background())
		cancel()
		s.admin.Shutdown(ended)
	}
	// A connection accepted from here on would be this process's to
	// serve: wait until no accept loop runs.
	s.accepting.Wait()
	var errs []error
	if s.purges != nil {
		errs = append(errs, s.purges.Close())
	}
	if s.cache != nil {
		errs = append(errs, s.cache.ReleaseDisk())
	}
	if s.sessions != nil {
		errs = append(errs, s.sessions.Close())
	}
	return errors.Join(errs...)
}

// Retire ends a released server's connections: every HTTP/1 response says
// Connection: close and ends its connection, so keep-alive clients
// reconnect, to the new process, after an answer rather than on a closed
// socket; HTTP/2 connections get the graceful two-step GOAWAY at once.
// For grace, connections idle now are waited for (a client may be sending
// its next request already), and one whose TLS handshake was still
// running is served. Then Shutdown: what is still idle closes, and
// requests in flight finish until ctx ends.
func (s *Server) Retire(ctx context.Context, grace time.Duration) error {
	s.lnMu.Lock()
	all := append(append([]*listener(nil), s.listeners...), s.retiredListeners...)
	s.lnMu.Unlock()
	for _, l := range all {
		l.h1.Retire()
		l.h2.GoAway()
	}
	done := make(chan struct{})
	go func() {
		// No connection is added any more: Release waited for the
		// accept loops.
		s.conns.Wait()
		close(done)
	}()
	t := time.NewTimer(grace)
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	return s.Shutdown(ctx)
}
