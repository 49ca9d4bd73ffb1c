package h2

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/accel-proxy/accel/internal/cfgerr"
	"github.com/accel-proxy/accel/parser"
)

// Config holds the HTTP/2 settings and limits of one listener. The zero
// value is usable: New fills every unset field with its default.
type Config struct {
	// MaxConcurrentStreams is advertised in SETTINGS and also bounds the
	// streams whose work is still running (a stream reset while its origin
	// fetch runs still counts); 0 means 250. nginx uses 128, HAProxy 100.
	MaxConcurrentStreams int
	// MaxHeaderListSize bounds a decoded header list (RFC 9113 §6.5.2,
	// name + value + 32 per field): larger requests are answered 431. It
	// is what stops an HPACK bomb, a small block that decodes into a huge
	// list. 0 means 64 KiB.
	MaxHeaderListSize int
	// MaxHeaderBlockSize bounds the encoded bytes of one header block,
	// HEADERS plus its CONTINUATION frames: a connection going past it is
	// cut with ENHANCE_YOUR_CALM (the CONTINUATION flood of
	// CVE-2024-27316). 0 means MaxHeaderListSize.
	MaxHeaderBlockSize int
	// MaxFrameSize is the largest frame accepted; 0 means 16 KiB.
	MaxFrameSize int
	// MaxResets is how many streams may end in a reset, by either side,
	// within AbuseWindow (rapid reset, CVE-2023-44487; MadeYouReset,
	// CVE-2025-8671; streams refused over the limit); one more and the
	// connection gets GOAWAY ENHANCE_YOUR_CALM. 0 means 100.
	MaxResets int
	// MaxIdleFrames is how many frames that produce no response (SETTINGS,
	// PING, PRIORITY, RST_STREAM, small WINDOW_UPDATE, small or empty DATA
	// and CONTINUATION, unknown types) a connection may send within
	// AbuseWindow before GOAWAY ENHANCE_YOUR_CALM. 0 means 1000.
	MaxIdleFrames int
	// AbuseWindow is the period MaxResets and MaxIdleFrames count over;
	// 0 means 10s.
	AbuseWindow time.Duration
	// IdleTimeout closes a connection with no stream at work; 0 means 75s.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to the client and each wait for
	// flow-control window; 0 means 30s. A stream stalled longer is reset; a
	// connection that does not take its bytes is closed.
	WriteTimeout time.Duration
	// ReadTimeout bounds each wait for request body bytes; 0 means 30s.
	ReadTimeout time.Duration
	// Log receives one line per connection cut by a limit, naming the
	// peer; nil means slog.Default().
	Log *slog.Logger
	// Count is called with a fixed reason name ("rapid_reset",
	// "idle_frames", "malformed_request", ...) for every frame, stream or
	// connection refused, for metrics; nil counts nothing.
	Count func(reason string)
}

// Validate refuses what RFC 9113 or the abuse limits cannot take, naming
// the field as the config file's http2 section spells it (a
// *cfgerr.Error), and fills the zero fields with their defaults.
func (cfg *Config) Validate() error {
	// RFC 9113 §6.5.2: SETTINGS_MAX_FRAME_SIZE lies between 2^14 and
	// 2^24-1; zero is the default.
	if fs := cfg.MaxFrameSize; fs != 0 && (fs < 16<<10 || fs > 1<<24-1) {
		return cfgerr.Errorf([]any{"max_frame_size"}, "%d is outside 16KiB..16MiB", fs)
	}
	if cfg.MaxResets < 0 {
		return cfgerr.Errorf([]any{"max_resets"}, "must not be negative")
	}
	if cfg.MaxIdleFrames < 0 {
		return cfgerr.Errorf([]any{"max_idle_frames"}, "must not be negative")
	}
	cfg.setDefaults()
	return nil
}

func (cfg *Config) setDefaults() {
	setInt(&cfg.MaxConcurrentStreams, 250)
	setInt(&cfg.MaxHeaderListSize, 64<<10)
	setInt(&cfg.MaxHeaderBlockSize, cfg.MaxHeaderListSize)
	setInt(&cfg.MaxFrameSize, 16<<10)
	setInt(&cfg.MaxResets, 100)
	setInt(&cfg.MaxIdleFrames, 1000)
	setDur(&cfg.AbuseWindow, 10*time.Second)
	setDur(&cfg.IdleTimeout, 75*time.Second)
	setDur(&cfg.WriteTimeout, 30*time.Second)
	setDur(&cfg.ReadTimeout, 30*time.Second)
}

func setInt(p *int, v int) {
	if *p <= 0 {
		*p = v
	}
}

func setDur(p *time.Duration, v time.Duration) {
	if *p <= 0 {
		*p = v
	}
}

// Conn carries what the pipeline needs to know about the connection a
// request came on.
type Conn struct {
	Remote net.Addr
	TLS    bool
	// Fast is the handler's own, for the requests ServeFast answers on
	// the connection's goroutine (state it reuses from one to the next);
	// h2 never touches it.
	Fast any
}

// Handler is the pipeline as the HTTP/2 front needs it.
type Handler interface {
	// ServeFast answers req without waiting (a fresh cached hit, a
	// refusal) on the connection's goroutine and reports true; false
	// means it wrote nothing and the request goes to Serve. The bytes it
	// gives w.Write must stay unchanged until the stream ends (stored
	// bodies are immutable): they may be written from where they are. Only
	// requests without a body are offered to ServeFast.
	ServeFast(req *parser.Request, w *Writer, c *Conn) bool
	// Serve runs in a goroutine of its own for a request that must wait
	// (an origin fetch, a request body, a coalesced waiter). body is nil
	// when the request has none. ctx ends when the stream is reset by
	// either side or the connection closes.
	Serve(ctx context.Context, req *parser.Request, body io.Reader, w *Writer, c Conn)
	// Refused is told of a request refused before it reached ServeFast or
	// Serve, by a fixed reason name ("malformed_request",
	// "refused_stream", a parser error's name, ...). status is the answer
	// sent (431, a parser refusal's), or for a stream reset unanswered
	// the one HTTP/1 would have sent (400 malformed, 503 over the stream
	// limit). As h1's Refused, so that the access log shows what either
	// front turned away.
	Refused(remote net.Addr, status int, reason string)
}

// Server is an HTTP/2 server that takes its connections from Serve.
type Server struct {
	cfg Config
	h   Handler

	mu       sync.Mutex
	conns    map[*conn]struct{}
	shutdown bool
	// drained is closed when shutdown is set and the last conn ended.
	drained chan struct{}
}

// New returns a server; it serves nothing until given connections.
func New(cfg Config, h Handler) *Server {
	cfg.setDefaults()
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Count == nil {
		cfg.Count = func(string) {}
	}
	return &Server{cfg: cfg, h: h, conns: map[*conn]struct{}{}, drained: make(chan struct{})}
}

var errClosed = errors.New("h2: server closed")

// Serve runs the HTTP/2 connection nc until it ends, on the caller's
// goroutine. nc is a *tls.Conn that completed its handshake with ALPN
// "h2", or a cleartext conn; pre holds the bytes the caller already read
// from it (the h2c preface, when it sniffed one). Serve closes nc.
func (s *Server) Serve(nc net.Conn, pre []byte, isTLS bool) error {
	c := newConn(s, nc, pre, isTLS)
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		nc.Close()
		return errClosed
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		if s.shutdown && len(s.conns) == 0 {
			close(s.drained)
		}
		s.mu.Unlock()
	}()
	c.serve()
	return nil
}

// GoAway starts the graceful GOAWAY on the connections open now, as
// Shutdown does, but goes on serving connections given to it later. A seamless restart moves clients off the old process at once
// this way, while a connection whose TLS handshake was still running
// there gets its answers rather than being closed unanswered; Shutdown
// ends those later.
func (s *Server) GoAway() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.startShutdown()
	}
}

// Shutdown sends every connection the two-step GOAWAY of RFC 9113 §6.8:
// first with the largest stream id and a PING, then, once the PING is
// acked or after a second, with the last stream id, so that a stream the
// client opened while the first was on the wire is served rather than
// refused. It lets their streams finish and closes them as they become
// idle; when ctx ends first, it closes the rest and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.shutdown {
		s.shutdown = true
		if len(s.conns) == 0 {
			close(s.drained)
		}
	}
	for c := range s.conns {
		c.startShutdown()
	}
	s.mu.Unlock()
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// readerPool holds the connections' read buffers: 16 KiB takes a full
// default-size frame, and a batch of small frames, in one read.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10+9) }}
