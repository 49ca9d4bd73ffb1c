// Package parser owns the HTTP/1.x wire format: request and response heads
// parsed by a single-pass state machine, chunked body decoding, and the
// header-field model every other accel package shares.
//
// The parser never guesses. Where RFC 9112 leaves room for two readings of
// the same bytes (Content-Length next to Transfer-Encoding, differing
// Content-Length values, obs-fold, bare CR, whitespace before a colon), the
// message is rejected with a sentinel error, so that accel and the origin
// can never disagree about where one request ends and the next begins.
// Parsed heads are slices into the caller's buffer: a typical GET costs no
// allocation, and the slices stay valid only as long as that buffer does.
//
// ParseRequest and ParseResponse work on a buffer the caller owns and
// refills: ErrIncomplete asks for more bytes, Limits bounds how many. Bodies
// are the caller's to read, framed as ResponseFraming decides for a response;
// ChunkedReader and ChunkedWriter carry the chunked ones. The transfer rules
// every hop shares live here too (transfer.go): hop-by-hop fields, which
// statuses carry a body. Every rejection is an *Error sentinel that names its metrics
// label and the status a server answers.
package parser
