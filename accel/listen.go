package accel

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/accel-proxy/accel/h1"
	"github.com/accel-proxy/accel/h2"
	"github.com/accel-proxy/accel/policy"
)

// h2Preface is the client connection preface of RFC 9113 §3.4.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2PrefaceLine is the part of the preface no HTTP/1 request starts with.
const h2PrefaceLine = "PRI * HTTP/2.0"

// listener is one client-facing socket and the HTTP/2 server behind it.
type listener struct {
	// addr is the configured address, the listener's identity across
	// reloads.
	addr string
	ln   net.Listener
	// tls is nil for cleartext only; a reload or a renewed certificate
	// swaps it, for the connections accepted from then on.
	tls atomic.Pointer[tls.Config]
	h1  *h1.Server
	h2  *h2.Server
	// handshakeTimeout bounds the sniffing and the TLS handshake.
	handshakeTimeout time.Duration
	// proxyFrom, when set, makes every connection start with a PROXY
	// protocol header from one of its networks (proxyproto.go).
	proxyFrom func(netip.Addr) bool
}

// newListener opens lc's socket with the fronts configured by h1c and
// h2c (the wired settings of its config generation).
func (s *Server) newListener(lc policy.Listener, h1c h1.Config, h2c h2.Config) (*listener, error) {
	l := &listener{addr: lc.Address, handshakeTimeout: h1c.HeaderTimeout}
	if lc.ProxyProtocol {
		l.proxyFrom = lc.ProxyAllowed
	}
	tc, err := s.listenerTLS(lc)
	if err != nil {
		return nil, err
	}
	l.tls.Store(tc)
	// A socket handed over by a seamless restart keeps its queue of
	// connections not yet accepted.
	ln := s.takeAdopted("listen", lc.Address)
	if ln == nil {
		if ln, err = net.Listen("tcp", lc.Address); err != nil {
			return nil, fmt.Errorf("listen %s: %w", lc.Address, err)
		}
	}
	l.ln = ln
	l.h1 = h1.New(h1c, h1Handler{s})
	h2c.Log = s.log
	h2c.Count = s.metrics.IncHTTP2Error
	l.h2 = h2.New(h2c, h2Handler{s})
	return l, nil
}

// acceptLogEvery spaces the log lines of a failing accept. At the
// descriptor limit every accept fails, pending connection or not (Linux
// takes the descriptor first), so a process that hovers at the limit
// would log once per connection it manages to accept.
const acceptLogEvery = 10 * time.Second

// acceptLoop accepts until the listener closes. Running out of file
// descriptors is logged (at most once per acceptLogEvery, with the count
// of failures since), counted, and waited out with a backoff: the process
// keeps serving the connections it has, and the waiting ones are accepted
// as descriptors free.
func (s *Server) acceptLoop(l *listener) {
	defer s.accepting.Done()
	backoff := time.Duration(0)
	var logged time.Time
	failed := 0
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(5*time.Millisecond, 2*backoff), time.Second)
			s.metrics.IncRejection("accept_error")
			failed++
			if now := time.Now(); now.Sub(logged) >= acceptLogEvery {
				logged = now
				msg := "accept failed"
				if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
					msg = "accept failed: out of file descriptors; raise the limit (ulimit -n) or lower load"
				}
				s.log.Error(msg, "listener", l.ln.Addr().String(), "err", err, "failures", failed)
				failed = 0
			}
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		// Under openMu, against Shutdown: once it set draining and waits
		// on conns, no connection is added (a WaitGroup must not grow
		// from zero while waited on).
		s.openMu.Lock()
		if s.draining.Load() {
			s.openMu.Unlock()
			c.Close()
			continue
		}
		s.conns.Add(1)
		s.openMu.Unlock()
		go func() {
			defer s.conns.Done()
			s.serveConn(l, c)
		}()
	}
}

// serveConn sniffs the protocol and hands the connection on.
func (s *Server) serveConn(l *listener, c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		// Small writes (a handshake flight, a response head) must not wait
		// for an ACK: Go sets this by default, we rely on it explicitly.
		tc.SetNoDelay(true)
	}
	if l.proxyFrom != nil {
		pc, err := acceptProxy(c, l.proxyFrom, time.Now().Add(l.handshakeTimeout))
		if err != nil {
			s.refuseProxy(c, err)
			return
		}
		c = pc
	}
	st := &connState{}
	st.idle.Store(true)
	s.track(c, st)
	defer s.track(c, nil)
	c.SetReadDeadline(time.Now().Add(l.handshakeTimeout))
	var first [len(h2Preface)]byte
	n, err := c.Read(first[:1])
	st.idle.Store(false)
	if err != nil || n == 0 || s.draining.Load() {
		c.Close()
		return
	}
	if tc := l.tls.Load(); first[0] == 0x16 && tc != nil {
		s.serveTLS(l, tc, c, st, first[0])
		return
	}
	// Read as much of the h2c preface as matches: an HTTP/1 request
	// differs from it within its first bytes.
	for n < len(first) && bytes.HasPrefix([]byte(h2Preface), first[:n]) {
		m, err := c.Read(first[n:])
		n += m
		if err != nil {
			break
		}
	}
	if string(first[:n]) == h2Preface {
		c.SetReadDeadline(time.Time{})
		s.track(c, nil)
		s.metrics.ConnOpened("h2")
		l.h2.Serve(c, first[:n], false)
		s.metrics.ConnClosed("h2")
		return
	}
	if bytes.HasPrefix(first[:n], []byte(h2PrefaceLine)) {
		// An HTTP/2 preface gone wrong is not an HTTP/1 request: it is
		// closed unanswered (RFC 9113 §3.4).
		s.metrics.IncHTTP2Error("bad_preface")
		c.Close()
		return
	}
	s.metrics.ConnOpened("h1")
	l.h1.Serve(c, first[:n])
	c.Close()
	s.metrics.ConnClosed("h1")
}

// serveTLS runs the handshake and dispatches by ALPN.
func (s *Server) serveTLS(l *listener, config *tls.Config, c net.Conn, st *connState, first byte) {
	rc := &replayConn{Conn: c, pre: []byte{first}}
	tc := tls.Server(rc, config)
	ctx, cancel := context.WithTimeout(context.Background(), l.handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.metrics.IncRejection("tls_handshake")
		c.Close()
		return
	}
	cs := tc.ConnectionState()
	s.metrics.IncHandshake(cs.DidResume)
	c.SetReadDeadline(time.Time{})
	if cs.NegotiatedProtocol == "h2" {
		s.track(c, nil)
		s.metrics.ConnOpened("h2")
		l.h2.Serve(tc, nil, true)
		s.metrics.ConnClosed("h2")
		return
	}
	s.metrics.ConnOpened("h1")
	l.h1.Serve(tc, nil)
	tc.Close()
	s.metrics.ConnClosed("h1")
}

// replayConn gives back the bytes read while sniffing before reading the
// socket again.
type replayConn struct {
	net.Conn
	pre []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pre) > 0 {
		n := copy(p, r.pre)
		r.pre = r.pre[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}
