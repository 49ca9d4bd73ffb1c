package tlsstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// The harness: real TLS servers on loopback addresses, one per instance of
// a fleet, each with its own tls.Config configured by its own Store, and
// clients that share a session cache as a returning browser would.

const serverName = "accel.test"

// fleetStoreTimeout is the store deadline of fleet tests: far above any
// answer of a loopback Redis or memcached, busy cores included.
const fleetStoreTimeout = 10 * time.Second

var versions = []struct {
	name string
	v    uint16
}{{"TLS12", tls.VersionTLS12}, {"TLS13", tls.VersionTLS13}}

var testCert = sync.OnceValues(func() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: serverName},
		DNSNames:     []string{serverName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
})

func cert(t testing.TB) tls.Certificate {
	t.Helper()
	c, err := testCert()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// serve runs a TLS server for s on ip (a loopback address) and returns its
// address. Each connection handshakes, gets "ok\n" (which makes the client
// read any TLS 1.3 ticket sent before it) and is drained until the client
// closes.
func serve(t testing.TB, ip string, s *Store) string {
	t.Helper()
	return serveCert(t, ip, s, cert(t))
}

// client is a returning visitor: one TLS version, one session cache.
type client struct {
	v     uint16
	cache tls.ClientSessionCache
}

func newClient(v uint16) *client {
	return &client{v: v, cache: &recordingCache{ClientSessionCache: tls.NewLRUClientSessionCache(8)}}
}

// dial handshakes with addr and reports whether the session was resumed.
func (c *client) dial(t testing.TB, addr string) (bool, error) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(cert(t).Leaf)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		RootCAs:            roots,
		ServerName:         serverName,
		ClientSessionCache: c.cache,
		MinVersion:         c.v,
		MaxVersion:         c.v,
	})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var ok [3]byte
	if _, err := io.ReadFull(conn, ok[:]); err != nil {
		return false, err
	}
	if string(ok[:]) != "ok\n" {
		return false, errors.New("unexpected greeting " + string(ok[:]))
	}
	if got := conn.ConnectionState().Version; got != c.v {
		return false, errors.New("negotiated another TLS version")
	}
	return conn.ConnectionState().DidResume, nil
}

// mustDial fails the test if the handshake fails and returns DidResume.
func (c *client) mustDial(t testing.TB, addr string) bool {
	t.Helper()
	resumed, err := c.dial(t, addr)
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	return resumed
}

// recordingCache remembers the last cache key written, so a test can swap
// the ticket stored under it.
type recordingCache struct {
	tls.ClientSessionCache
	mu      sync.Mutex
	lastKey string
}

func (c *recordingCache) Put(key string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	if cs != nil {
		c.lastKey = key
	}
	c.mu.Unlock()
	c.ClientSessionCache.Put(key, cs)
}

// replaceTicket keeps the client's session secrets but makes it offer
// ticket instead of the one the server issued.
func (c *client) replaceTicket(t *testing.T, ticket []byte) {
	t.Helper()
	rc := c.cache.(*recordingCache)
	rc.mu.Lock()
	key := rc.lastKey
	rc.mu.Unlock()
	cs, ok := rc.Get(key)
	if !ok {
		t.Fatal("client has no session to tamper with")
	}
	_, state, err := cs.ResumptionState()
	if err != nil {
		t.Fatal(err)
	}
	forged, err := tls.NewResumptionState(ticket, state)
	if err != nil {
		t.Fatal(err)
	}
	rc.Put(key, forged)
}

// currentTicket returns the ticket the client would offer next.
func (c *client) currentTicket(t *testing.T) []byte {
	t.Helper()
	rc := c.cache.(*recordingCache)
	rc.mu.Lock()
	key := rc.lastKey
	rc.mu.Unlock()
	cs, ok := rc.Get(key)
	if !ok {
		t.Fatal("client has no session")
	}
	ticket, _, err := cs.ResumptionState()
	if err != nil {
		t.Fatal(err)
	}
	return ticket
}

// fleet is three instances on 127.0.0.1, 127.0.0.2 and 127.0.0.3.
type fleet struct {
	stores []*Store
	addrs  []string
}

// openFleet opens one Store per instance with cfg(i) and serves each.
func openFleet(t *testing.T, cfg func(i int) Config) *fleet {
	t.Helper()
	f := &fleet{}
	for i, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		c := cfg(i)
		if c.Timeout == 0 {
			// A fleet test checks that sessions travel, so it waits for
			// the store's answer: the 50ms handshake-path deadline is
			// missed on a loaded machine, and a missed one is a full
			// handshake, which the test would count as a failure.
			c.Timeout = fleetStoreTimeout
		}
		s := openStore(t, c)
		f.stores = append(f.stores, s)
		f.addrs = append(f.addrs, serve(t, ip, s))
	}
	return f
}

func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func (f *fleet) total() Stats {
	var sum Stats
	for _, s := range f.stores {
		st := s.Stats()
		sum.Stored += st.Stored
		sum.Resumed += st.Resumed
		sum.Misses += st.Misses
		sum.StoreErrors += st.StoreErrors
		sum.KeyRotations += st.KeyRotations
	}
	return sum
}

// resumesAcross has a client handshake with instance A, then reconnect n
// times round robin over B, C, A, ..., and requires every reconnect to
// resume.
func (f *fleet) resumesAcross(t *testing.T, v uint16, n int) {
	t.Helper()
	c := newClient(v)
	if c.mustDial(t, f.addrs[0]) {
		t.Fatal("first handshake resumed with an empty client cache")
	}
	resumed := 0
	for i := range n {
		if c.mustDial(t, f.addrs[(i+1)%len(f.addrs)]) {
			resumed++
		}
	}
	if resumed != n {
		t.Fatalf("%d of %d reconnects resumed; stats %+v", resumed, n, f.total())
	}
}
