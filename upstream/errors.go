package upstream

import (
	"context"
	"errors"
	"net/http"
	"os"
)

var (
	// ErrQueueFull is returned at once when every eligible server is at
	// MaxConnsPerServer and QueueSize requests already wait.
	ErrQueueFull = errors.New("upstream: queue full")
	// ErrQueueTimeout is returned when a queued request got no connection
	// within QueueTimeout.
	ErrQueueTimeout = errors.New("upstream: timed out waiting for a connection")
	// errNoServer is acquire's answer, without waiting, when every server a
	// retry could go to is ejected or already tried; Do then returns the
	// failure that made it look for one. A first try always finds a
	// server: when all are failing, all take requests.
	errNoServer = errors.New("upstream: no server left to try")
	// ErrClosed is returned by Do after Close.
	ErrClosed = errors.New("upstream: pool closed")
	// ErrRequestBody marks a failure to read the request body from the
	// client: the server is not to blame and the request is not retried.
	ErrRequestBody = errors.New("upstream: reading the request body failed")
	// errDirtyConn means even a freshly dialed connection was readable
	// before we wrote: nothing was sent.
	errDirtyConn = errors.New("upstream: connection readable before the request was written")
)

// Error is a failed try on one server. Sent and Timeout carry the decisions
// made from it: a request with Sent false was never written and may go to
// another server whatever its method; Timeout makes the answer a 504.
type Error struct {
	Server string
	// Sent is true when some byte of the request may have left for the
	// server; false only when the connection was never made.
	Sent    bool
	Timeout bool
	Err     error
	// stale is set when a kept-alive connection broke before any byte of
	// the answer (see Do).
	stale bool
}

func (e *Error) Error() string {
	return "upstream " + e.Server + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// DialError is a failed connect: nothing of the request was written.
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string { return "dial " + e.Addr + ": " + e.Err.Error() }

func (e *DialError) Unwrap() error { return e.Err }

// Status maps an error of Do to the status the client should get: 503 for a
// full queue or an expired wait (answer with Retry-After), 504 for a timeout,
// 408 when the client's own request body stalled, 400 when it was malformed, and 502 for anything else.
// Status(nil) is 200.
func Status(err error) int {
	var e *Error
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrQueueFull), errors.Is(err, ErrQueueTimeout):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrRequestBody) && errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusRequestTimeout
	case errors.Is(err, ErrRequestBody):
		return http.StatusBadRequest
	case errors.As(err, &e) && e.Timeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// isTimeout reports whether err is a deadline: a connect, first-byte or read
// timeout of ours, or the caller's context deadline.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	// fasthttp's ErrTimeout has Timeout but is no net.Error.
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
