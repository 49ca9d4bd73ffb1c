// Package h2 owns accel's HTTP/2 front: a server connection loop of its own
// on golang.org/x/net/http2's Framer (frame headers and the control frames)
// and hpack (the response encoder, Huffman coding), adapted to the
// protocol-neutral request head the pipeline serves. Request heads are
// decoded by our own HPACK decoder (hpack.go), which hands the loop bytes
// instead of strings, so that a hit allocates nothing however the client
// encodes its heads.
//
// The server doesn't listen on its own: accel sniffs each connection and
// gives h2 the ones that speak HTTP/2 (a *tls.Conn that negotiated "h2", or
// a cleartext conn that starts with the h2c preface) through Serve, which
// runs the connection on the caller's goroutine until it ends.
//
// The model: one goroutine per connection reads frames. A request whose
// answer needs no waiting (a fresh cached hit, a refusal) is answered on
// that goroutine through Handler.ServeFast, its frames appended to the
// connection's output buffer; everything produced while handling what one
// read returned goes out in one write. Only a request that must wait (an
// origin fetch, a request body, a coalesced waiter) gets a goroutine of its
// own (Handler.Serve), whose writer appends to the same buffer under the
// connection's lock and writes it out itself, within flow control and
// write_timeout. The HPACK encoder keeps its dynamic table across responses.
//
// Field translation follows RFC 9113 §8.2 and §8.3: a request with a
// connection-specific field, a bad pseudo-header, an upper-case name or
// CR/LF/NUL in a value is reset with PROTOCOL_ERROR; then parser.CheckHead
// applies the HTTP/1 rules, since the request goes on to an HTTP/1.1 origin.
// :authority becomes Host, cookie crumbs are joined into one field.
//
// Abuse limits (limits.go) are counted through Config.Count and logged with
// the peer's address.
package h2
