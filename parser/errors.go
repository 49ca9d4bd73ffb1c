package parser

import "errors"

// ErrIncomplete means the buffer ends before the head does: read more and
// parse again from the start.
var ErrIncomplete = errors.New("parser: incomplete message head")

// Error is a rejection: the message is malformed or ambiguous and the
// connection it came on must close. Status is what a server answers.
type Error struct {
	// Name labels the rejection in metrics ("cl_te", "obs_fold", ...).
	Name   string
	Status int
	msg    string
}

func (e *Error) Error() string { return "parser: " + e.msg }

func newError(name string, status int, msg string) *Error {
	return &Error{Name: name, Status: status, msg: msg}
}

// The rejections. Each is returned as is, so errors.Is and == both match.
var (
	ErrCLTE          = newError("cl_te", 400, "both Content-Length and Transfer-Encoding")
	ErrDupCL         = newError("dup_cl", 400, "several differing Content-Length values")
	ErrBadCL         = newError("bad_cl", 400, "invalid Content-Length")
	ErrTENotChunked  = newError("te_not_chunked", 400, "Transfer-Encoding does not end in chunked")
	ErrObsFold       = newError("obs_fold", 400, "obsolete line folding")
	ErrBareCR        = newError("bare_cr", 400, "CR not followed by LF")
	ErrBareLF        = newError("bare_lf", 400, "LF without CR")
	ErrCtl           = newError("ctl", 400, "NUL or control byte")
	ErrSpaceColon    = newError("space_colon", 400, "whitespace before colon")
	ErrBadMethod     = newError("bad_method", 400, "invalid method token")
	ErrBadFieldName  = newError("bad_field_name", 400, "invalid field name")
	ErrBadTarget     = newError("bad_target", 400, "invalid request-target")
	ErrBadVersion    = newError("bad_version", 400, "invalid HTTP version")
	ErrBadStatus     = newError("bad_status", 400, "invalid status line")
	ErrNoHost        = newError("no_host", 400, "HTTP/1.1 request without Host")
	ErrDupHost       = newError("dup_host", 400, "several Host fields")
	ErrBadChunk      = newError("bad_chunk", 400, "invalid chunk size or framing")
	ErrChunkOverflow = newError("chunk_overflow", 400, "chunk size overflows")
	ErrHeadTooLarge  = newError("head_too_large", 431, "message head over the limit")
	ErrTargetTooLong = newError("target_too_long", 414, "request-target over the limit")
	ErrTooManyFields = newError("too_many_fields", 431, "too many header fields")
	ErrVersionUnsupp = newError("version", 505, "HTTP version not supported")

	ErrBadHost         = newError("bad_host", 400, "invalid Host")
	ErrTEUnsupported   = newError("te_unsupported", 501, "transfer coding other than chunked")
	ErrExpectation     = newError("expectation", 417, "unsupported Expect")
	ErrBadTrailer      = newError("bad_trailer", 400, "Trailer declares a framing field")
	ErrTrailerTooLarge = newError("trailer_too_large", 431, "chunked trailer section over the limit")
)

// Status returns the status a server answers for err: the Error's own, or
// 400 for anything else.
func Status(err error) int {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Status
	}
	return 400
}
