package h2

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"accel/parser"
)

// Config holds the HTTP/2 limits (RFC 9113 §6.5.2).
type Config struct {
	// MaxConcurrentStreams per connection; 0 means 250.
	MaxConcurrentStreams int
	// MaxHeaderListSize bounds a decoded header list; 0 means 64 KiB.
	MaxHeaderListSize int
	// MaxFrameSize is the largest frame accepted; 0 means 16 KiB.
	MaxFrameSize int
	// IdleTimeout closes a connection with no open stream; 0 means 75s.
	IdleTimeout time.Duration
	// WriteTimeout bounds each wait to send response bytes, flow-control
	// window included; 0 means 30s.
	WriteTimeout time.Duration
	// ReadTimeout bounds each wait for request body bytes; 0 means 30s.
	ReadTimeout time.Duration
	Log         *slog.Logger
}

// Conn carries what the pipeline needs to know about the connection a
// request came on.
type Conn struct {
	Remote net.Addr
	TLS    bool
}

// Handler serves one request. body is nil when the request has none. The
// request head and its fields are valid only until Handler returns.
type Handler func(ctx context.Context, req *parser.Request, body io.Reader, w *Writer, c Conn)

// Server is an HTTP/2 server that takes its connections from Serve.
type Server struct {
	cfg     Config
	srv     *http.Server
	ln      *chanListener
	handler Handler
	done    chan struct{}
}

// New returns a running server; it serves nothing until given connections.
func New(cfg Config, h Handler) *Server {
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = 250
	}
	if cfg.MaxHeaderListSize == 0 {
		cfg.MaxHeaderListSize = 64 << 10
	}
	if cfg.MaxFrameSize == 0 {
		cfg.MaxFrameSize = 16 << 10
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 75 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, ln: newChanListener(), handler: h, done: make(chan struct{})}
	var protos http.Protocols
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(true)
	s.srv = &http.Server{
		Handler:        s,
		Protocols:      &protos,
		MaxHeaderBytes: cfg.MaxHeaderListSize,
		IdleTimeout:    cfg.IdleTimeout,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: cfg.MaxConcurrentStreams,
			MaxReadFrameSize:     cfg.MaxFrameSize,
			WriteByteTimeout:     cfg.WriteTimeout,
			// A peer that opens streams and never reads them is caught by
			// the write timeout; pings find the ones that just vanish.
			SendPingTimeout: cfg.IdleTimeout,
			PingTimeout:     15 * time.Second,
		},
		ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	go func() {
		defer close(s.done)
		// Serve returns only once the listener is closed by Shutdown.
		_ = s.srv.Serve(s.ln)
	}()
	return s
}

// Serve hands c, which speaks HTTP/2, to the server. c is a *tls.Conn that
// completed its handshake with ALPN "h2", or a cleartext conn whose first
// bytes (possibly replayed by a wrapper) are the h2c preface.
func (s *Server) Serve(c net.Conn) error {
	return s.ln.give(c)
}

// Shutdown stops taking connections, sends GOAWAY on the open ones and
// waits for their in-flight streams, or until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// connKey keys the net.Conn a request came on in its context: net/http
// keeps the peer address only as text.
type connKey struct{}

// chanListener is a net.Listener whose connections come from give, so that
// net/http's server runs behind accel's own accept loop.
type chanListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

var errClosed = errors.New("h2: server closed")

func newChanListener() *chanListener {
	return &chanListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) give(c net.Conn) error {
	select {
	case l.conns <- c:
		return nil
	case <-l.closed:
		return errClosed
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return chanAddr{} }

type chanAddr struct{}

func (chanAddr) Network() string { return "accel" }
func (chanAddr) String() string  { return "accel-h2" }
