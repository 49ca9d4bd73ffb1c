package tlsstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"
)

// A stateful ticket is an identity: a version byte and 32 random bytes, the
// identity secret. The secret never reaches the backend. The backend key is
// a hash of it and the session state is sealed (AES-256-GCM) under another
// hash of it, so whoever reads the backend can neither resume a session nor
// learn its secrets, and a forged or tampered entry fails to open.
const (
	identityVersion = 1
	identityLen     = 1 + 32

	sessionKeyPrefix = "accel:tls:s:"
)

// entryHeaderLen is the sealed entry's clear header: the version and the
// expiry (Unix nanoseconds), both authenticated as additional data.
const entryHeaderLen = 1 + 8

// wrap is tls.Config.WrapSession for the stateful mode: it stores the
// session under a fresh identity and returns the identity as the ticket.
// A store failure still returns the ticket: the handshake in progress is
// unaffected, and the ticket merely misses later unless the local cache
// keeps it.
func (s *Store) wrap(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	bindName(ss, cs.ServerName)
	state, err := ss.Bytes()
	if err != nil {
		// Only an unencodable state from crypto/tls itself lands here;
		// crypto/tls fails the same way when it wraps tickets on its own.
		return nil, err
	}
	identity := make([]byte, identityLen)
	identity[0] = identityVersion
	rand.Read(identity[1:])
	expires := time.Now().Add(s.cfg.Lifetime)

	key, entry := s.sessionKey(identity), seal(identity, expires, state)
	err = s.call("store session", func(ctx context.Context) error {
		return s.backend.Set(ctx, key, entry, s.cfg.Lifetime)
	})
	if err == nil {
		s.stored.Add(1)
	}
	if s.local != nil {
		s.local.put(string(identity), state, expires)
	}
	return identity, nil
}

// unwrap is tls.Config.UnwrapSession for the stateful mode. Whatever goes
// wrong, unknown, expired or forged ticket, store error or timeout, it
// returns (nil, nil): a full handshake, never a failed one.
func (s *Store) unwrap(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	if len(identity) != identityLen || identity[0] != identityVersion {
		s.misses.Add(1)
		return nil, nil
	}
	now := time.Now()
	state, ok := []byte(nil), false
	if s.local != nil {
		state, ok = s.local.get(string(identity), now)
	}
	if !ok {
		var entry []byte
		err := s.call("look up session", func(ctx context.Context) (err error) {
			entry, err = s.backend.Get(ctx, s.sessionKey(identity))
			return err
		})
		if err != nil {
			if errors.Is(err, errNotFound) {
				s.misses.Add(1)
			}
			return nil, nil
		}
		var expires time.Time
		expires, state, ok = unseal(identity, entry)
		if !ok || !now.Before(expires) {
			s.misses.Add(1)
			return nil, nil
		}
		if s.local != nil {
			s.local.put(string(identity), state, expires)
		}
	}
	ss, err := tls.ParseSessionState(state)
	if err != nil || !boundTo(ss, cs.ServerName) {
		// A state written by another Go version may not parse; one made
		// for another server name must not resume here.
		s.misses.Add(1)
		return nil, nil
	}
	s.resumed.Add(1)
	return ss, nil
}

// sessionKey is the backend key of identity, in the fleet's namespace.
func (s *Store) sessionKey(identity []byte) string {
	h := derive("lookup", identity)
	return sessionKeyPrefix + s.cfg.namespacePrefix() + hex.EncodeToString(h[:])
}

// derive hashes the identity secret under a purpose label, so the lookup
// key and the sealing key are unrelated.
func derive(purpose string, identity []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("accel tlsstore v1 " + purpose + "\x00"))
	h.Write(identity[1:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func sealer(identity []byte) cipher.AEAD {
	k := derive("seal", identity)
	block, err := aes.NewCipher(k[:])
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err) // AES always has a GCM mode
	}
	return aead
}

// seal builds the backend entry: header, nonce, sealed state. Each sealing
// key seals one entry only, but a random nonce costs nothing.
func seal(identity []byte, expires time.Time, state []byte) []byte {
	aead := sealer(identity)
	out := make([]byte, entryHeaderLen+aead.NonceSize(), entryHeaderLen+aead.NonceSize()+len(state)+aead.Overhead())
	out[0] = identityVersion
	binary.BigEndian.PutUint64(out[1:], uint64(expires.UnixNano()))
	rand.Read(out[entryHeaderLen:])
	return aead.Seal(out, out[entryHeaderLen:], state, out[:entryHeaderLen])
}

// unseal reverses seal; ok is false for anything not sealed under identity.
func unseal(identity, entry []byte) (expires time.Time, state []byte, ok bool) {
	aead := sealer(identity)
	if len(entry) < entryHeaderLen+aead.NonceSize() || entry[0] != identityVersion {
		return time.Time{}, nil, false
	}
	nonce := entry[entryHeaderLen : entryHeaderLen+aead.NonceSize()]
	state, err := aead.Open(nil, nonce, entry[entryHeaderLen+aead.NonceSize():], entry[:entryHeaderLen])
	if err != nil {
		return time.Time{}, nil, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(entry[1:]))), state, true
}
