// Package tlsstore owns TLS session resumption across a fleet: where the
// state that lets a returning client skip a full handshake lives, and how
// every instance of the fleet finds it.
//
// The listener builds its *tls.Config and hands it to [Store.Configure],
// which installs crypto/tls's WrapSession and UnwrapSession hooks. Two modes
// exist. In the stateful mode (the default) the ticket a client receives is
// only an opaque, random identity; the session state is sealed under a key
// derived from that identity and kept in a backend (in-process, optionally
// persisted with pebble; Redis; memcached) for the session lifetime, so any
// instance that shares the backend can resume it and the backend alone
// reveals nothing. In the stateless mode the session state travels inside
// the ticket, encrypted by crypto/tls with a ring of ticket keys that the
// instances agree on through the same backend: one key per rotation epoch,
// created if absent, with previous and pre-staged next keys still decrypting
// so that instances whose clocks or refresh times differ never reject each
// other's tickets.
//
// The backend sits on the handshake path, so every call has a short
// deadline, a small local cache sits in front of remote backends, a failing
// server is skipped for a moment instead of being waited on, and any error
// gives a full handshake, never a failed one. Go's TLS server resumes only
// by ticket (TLS 1.2) and PSK (TLS 1.3): it has no session-ID resumption and
// no 0-RTT over TCP, so clients without ticket support always get a full
// handshake.
package tlsstore
