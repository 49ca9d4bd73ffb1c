// Package h2 owns accel's HTTP/2 front: net/http's built-in HTTP/2 server,
// fed connections by accel's own accept loop, held to the configured
// limits, and adapted to the protocol-neutral request the pipeline serves.
//
// The server doesn't listen on its own: accel sniffs each connection and
// gives h2 the ones that speak HTTP/2 (a *tls.Conn that negotiated "h2",
// or a cleartext conn that starts with the h2c preface) through Serve.
// Field translation follows RFC 9113 §8.2.2 and §8.3.1: connection-specific
// fields never cross, :authority becomes Host, and cookie crumbs are joined
// back into one field for HTTP/1.1 origins.
package h2
