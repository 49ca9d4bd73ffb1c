// Package accel owns the running proxy: the listeners and the protocol
// dispatch on each connection, the request pipeline from route to cache to
// origin pool, the TLS setup with its shared session store, and the
// wiring (wiring.go): the config schema of package policy mapped onto
// each package's own Config, whose defaults and checks that package owns.
//
// One listener serves every protocol. Each accepted connection is sniffed:
// a TLS record (0x16) is handshaken and goes by ALPN to the HTTP/2 front
// (package h2) or to the HTTP/1 front (package h1); a cleartext connection
// that starts with the h2c preface goes to the HTTP/2 front, anything else
// to the HTTP/1 front, which parses with package parser. Both fronts hand
// the same neutral request to one pipeline, so caching and proxying behave
// the same whatever the client speaks.
//
// A seamless restart hands the listening sockets and the data directory
// to a new process (handover.go): the old one gives its sockets out
// (ListenerFiles), stops accepting and closes its stores (Release), then
// retires its connections (Retire); the new one serves the sockets it was
// given (Adopt) and opens the stores. cmd/accel carries the sockets
// between the two.
package accel
