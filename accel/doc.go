// Package accel owns the running proxy: the listeners and the protocol
// dispatch on each connection, the HTTP/1 connection loop, the request
// pipeline from route to cache to origin pool, the TLS setup with its
// shared session store, and the wiring of the admin API.
//
// One listener serves every protocol. Each accepted connection is sniffed:
// a TLS record (0x16) is handshaken and goes by ALPN to the HTTP/2 server
// (package h2) or to the HTTP/1 loop; a cleartext connection that starts
// with the h2c preface goes to the HTTP/2 server, anything else to the
// HTTP/1 loop, which parses with package parser. Both fronts hand the same
// neutral request to one pipeline, so caching and proxying behave the same
// whatever the client speaks.
package accel
