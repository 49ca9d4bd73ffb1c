package tlsstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/accel-proxy/accel/internal/testproc"
)

// nameCert makes a self-signed ECDSA certificate for one DNS name.
func nameCert(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serveCert is serve with a chosen certificate: what accel's newListener
// does for each listener, every one configured by the same Store.
func serveCert(t testing.TB, ip string, s *Store, c tls.Certificate) string {
	t.Helper()
	tc := &tls.Config{
		Certificates: []tls.Certificate{c},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	s.Configure(tc)
	ln, err := tls.Listen("tcp", net.JoinHostPort(ip, "0"), tc)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return // the client reports it
				}
				if _, err := c.Write([]byte("ok\n")); err != nil {
					return
				}
				io.Copy(io.Discard, c)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// oneSessionCache hands the last session to any server name: a client that
// offers the ticket it got for one name when connecting for another.
type oneSessionCache struct {
	mu sync.Mutex
	cs *tls.ClientSessionState
}

func (c *oneSessionCache) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cs, c.cs != nil
}

func (c *oneSessionCache) Put(_ string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cs != nil {
		c.cs = cs
	}
}

func dialName(t *testing.T, addr, sni string, v uint16, cache tls.ClientSessionCache) (resumed bool, peer string) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{
		ServerName:         sni,
		InsecureSkipVerify: true, // a client that does not re-check the name on resumption
		ClientSessionCache: cache,
		MinVersion:         v,
		MaxVersion:         v,
	})
	if err != nil {
		t.Fatalf("dial %s (%s): %v", addr, sni, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var ok [3]byte
	if _, err := io.ReadFull(conn, ok[:]); err != nil {
		t.Fatal(err)
	}
	cs := conn.ConnectionState()
	return cs.DidResume, cs.PeerCertificates[0].Subject.CommonName
}

// A session established for SNI a.example (certificate A) must not resume
// on a connection for SNI b.example served with certificate B: RFC 6066 §3
// says the server MUST NOT resume with a different server_name, and the
// resumed connection for b.example never proves possession of B's key.
// crypto/tls does not check the name itself (SessionState has none), so
// the WrapSession/UnwrapSession hooks have to. One Store configures every
// listener in accel, so the hooks bind each session to its name.
func TestCrossSNINoResumption(t *testing.T) {
	certA, certB := nameCert(t, "a.example"), nameCert(t, "b.example")
	for _, mode := range []string{ModeStateful, ModeStateless} {
		for _, v := range versions {
			t.Run(mode+"/"+v.name, func(t *testing.T) {
				s := openStore(t, Config{Mode: mode})
				addrA := serveCert(t, "127.0.0.1", s, certA)
				addrB := serveCert(t, "127.0.0.1", s, certB)
				cache := &oneSessionCache{}
				if r, _ := dialName(t, addrA, "a.example", v.v, cache); r {
					t.Fatal("first handshake resumed")
				}
				if r, _ := dialName(t, addrA, "a.example", v.v, cache); !r {
					t.Fatal("same-name reconnect did not resume")
				}
				if r, peer := dialName(t, addrB, "b.example", v.v, cache); r {
					t.Fatalf("session for a.example resumed on the b.example listener (client still sees certificate %q)", peer)
				}
			})
		}
	}
}

// Stateless mode: the store loses its keys (memcached restart, Redis
// without persistence, FLUSHALL) and a new instance starts, creating a new
// key for the current epoch. At its next refresh a running instance takes
// that key for new tickets and keeps its own for decryption, so tickets of
// both resume on it. (Tickets issued before the flush cannot resume on the
// newcomer, which never saw their key: one full handshake each.)
func TestStatelessStoreFlushKeepsFleetTogether(t *testing.T) {
	r := testproc.Redis(t)
	cfg := Config{Mode: ModeStateless, Backend: BackendRedis, Addrs: []string{r.Addr}, RotationPeriod: time.Hour}
	a := openStore(t, cfg)
	addrA := serve(t, "127.0.0.1", a)
	before := newClient(tls.VersionTLS13)
	before.mustDial(t, addrA)
	if !before.mustDial(t, addrA) {
		t.Fatal("no resumption on A")
	}

	r.Command("FLUSHALL")
	newcomer := openStore(t, cfg)
	addrC := serve(t, "127.0.0.3", newcomer)
	fromNewcomer := newClient(tls.VersionTLS13)
	fromNewcomer.mustDial(t, addrC)
	a.ring.refresh(time.Now()) // what A's loop does at its next tick

	var failures []string
	if !before.mustDial(t, addrA) {
		failures = append(failures, "A's own ticket from before the flush rejected by A")
	}
	if !fromNewcomer.mustDial(t, addrA) {
		failures = append(failures, "the newcomer's ticket rejected by A")
	}
	after := newClient(tls.VersionTLS13)
	after.mustDial(t, addrA)
	if !after.mustDial(t, addrC) {
		failures = append(failures, "A's ticket after its refresh rejected by the newcomer")
	}
	if len(failures) > 0 {
		t.Fatalf("after a store flush: %v", failures)
	}
}

// The data directory of a persisted store holds sessions and ticket keys:
// it is the owner's alone, whatever the umask, so that no other local user
// can read the files in it.
func TestPersistedDirectoryOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sessions")
	openStore(t, Config{Mode: ModeStateless, Dir: dir})
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("session directory mode %v, want drwx------", perm)
	}
}

// accel's Shutdown calls Store.Close when its context ends even though
// handshake goroutines may still be running (closing their sockets does not
// stop one that is between reading the ClientHello and wrapping the
// ticket). With a persisted memory backend the next WrapSession panics in
// pebble and takes the process down instead of failing open.
func TestWrapAfterCloseFailsOpen(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{}
	s.Configure(tc)
	s.Close()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("WrapSession after Close panicked: %v", p)
		}
	}()
	ss, err := tls.ParseSessionState(mustSessionBytes(t))
	if err != nil {
		t.Fatal(err)
	}
	tc.WrapSession(tls.ConnectionState{}, ss)
}

// mustSessionBytes gets a real server-side session state from a handshake.
func mustSessionBytes(t *testing.T) []byte {
	t.Helper()
	var got []byte
	var mu sync.Mutex
	tc := &tls.Config{Certificates: []tls.Certificate{cert(t)}}
	tc.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		b, err := ss.Bytes()
		mu.Lock()
		got = b
		mu.Unlock()
		return []byte("x"), err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Write([]byte("ok\n"))
			c.Close()
		}
	}()
	newClient(tls.VersionTLS13).mustDial(t, ln.Addr().String())
	mu.Lock()
	defer mu.Unlock()
	if got == nil {
		t.Fatal("no session state")
	}
	return got
}

// TestNamespacesSeparateFleets: two fleets on one Redis, each in its own
// namespace, never resume each other's sessions, in either mode; within a
// namespace they do.
func TestNamespacesSeparateFleets(t *testing.T) {
	r := testproc.Redis(t)
	for _, mode := range []string{ModeStateful, ModeStateless} {
		t.Run(mode, func(t *testing.T) {
			cfg := func(ns string) Config {
				return Config{Mode: mode, Backend: BackendRedis, Addrs: []string{r.Addr}, Namespace: ns, RotationPeriod: time.Hour}
			}
			a1 := serve(t, "127.0.0.1", openStore(t, cfg("fleet-a")))
			a2 := serve(t, "127.0.0.2", openStore(t, cfg("fleet-a")))
			b := serve(t, "127.0.0.3", openStore(t, cfg("fleet-b")))
			c := newClient(tls.VersionTLS13)
			c.mustDial(t, a1)
			if !c.mustDial(t, a2) {
				t.Error("no resumption within one namespace")
			}
			if c.mustDial(t, b) {
				t.Error("a session of fleet-a resumed on fleet-b")
			}
		})
	}
	if err := (&Config{Namespace: "bad name"}).Validate(); err == nil {
		t.Error("a namespace with a space was accepted")
	}
}
