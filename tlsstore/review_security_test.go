package tlsstore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"accel/internal/testproc"
)

// reviewCert makes a self-signed ECDSA certificate for one DNS name.
func reviewCert(t *testing.T, name string) tls.Certificate {
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

// reviewServe is serve with a chosen certificate: what accel's newListener
// does for each listener, every one configured by the same Store.
func reviewServe(t *testing.T, ip string, s *Store, c tls.Certificate) string {
	t.Helper()
	tc := &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
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
					return
				}
				c.Write([]byte("ok\n"))
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

func reviewDial(t *testing.T, addr, sni string, v uint16, cache tls.ClientSessionCache) (resumed bool, peer string) {
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
// listener in accel, so a ticket from one listener is accepted by all.
func TestReviewCrossSNIResumption(t *testing.T) {
	certA, certB := reviewCert(t, "a.example"), reviewCert(t, "b.example")
	for _, mode := range []string{ModeStateful, ModeStateless} {
		for _, v := range versions {
			t.Run(mode+"/"+v.name, func(t *testing.T) {
				s := openStore(t, Config{Mode: mode})
				addrA := reviewServe(t, "127.0.0.1", s, certA)
				addrB := reviewServe(t, "127.0.0.1", s, certB)
				cache := &oneSessionCache{}
				if r, _ := reviewDial(t, addrA, "a.example", v.v, cache); r {
					t.Fatal("first handshake resumed")
				}
				if r, _ := reviewDial(t, addrA, "a.example", v.v, cache); !r {
					t.Fatal("same-name reconnect did not resume")
				}
				if r, peer := reviewDial(t, addrB, "b.example", v.v, cache); r {
					t.Fatalf("session for a.example resumed on the b.example listener (client still sees certificate %q)", peer)
				}
			})
		}
	}
}

// Stateless mode, two running instances, then the store loses its keys
// (memcached restart, Redis without persistence, FLUSHALL, eviction) and a
// third instance starts (rolling deploy, autoscaling). The new instance
// creates a different key for the current epoch; running instances keep
// theirs until their next refresh (up to RotationPeriod/4, 15 min by
// default) and then drop it. The instances disagree: tickets of one are
// rejected by the other, contrary to "instances never disagree".
func TestReviewStatelessStoreFlushSplitsFleet(t *testing.T) {
	r := testproc.Redis(t)
	cfg := Config{Mode: ModeStateless, Backend: BackendRedis, Addrs: []string{r.Addr}, RotationPeriod: time.Hour}
	a := openStore(t, cfg)
	addrA := serve(t, "127.0.0.1", a)
	c := newClient(tls.VersionTLS13)
	c.mustDial(t, addrA)
	if !c.mustDial(t, addrA) {
		t.Fatal("no resumption on A")
	}

	r.Command("FLUSHALL")
	newcomer := openStore(t, cfg)
	addrC := serve(t, "127.0.0.3", newcomer)

	failures := []string{}
	if !c.mustDial(t, addrC) { // A's ticket offered to the newcomer
		failures = append(failures, "A's ticket rejected by the newly started instance")
	}
	if !c.mustDial(t, addrA) { // the newcomer's (or A's) ticket offered to A
		failures = append(failures, "newcomer's ticket rejected by A")
	}
	// A's next scheduled refresh adopts the newcomer's key and forgets its
	// own: every ticket A issued this epoch stops resuming, even on A.
	c2 := newClient(tls.VersionTLS13)
	c2.mustDial(t, addrA)
	a.ring.refresh(time.Now()) // what A's loop does at its next quarter-period tick
	if !c2.mustDial(t, addrA) {
		failures = append(failures, "A's own ticket rejected by A after its refresh")
	}
	if len(failures) > 0 {
		t.Fatalf("after a store flush: %v", failures)
	}
}

// Validate accepts RotationPeriod down to 1s, and only one next key is
// staged. An instance whose clock is ahead by more than one period (here
// 4s with a 2s period, the issue's own test period) encrypts with a key its
// peers have not staged, and they reject its tickets.
func TestReviewStatelessClockSkewBeyondOnePeriod(t *testing.T) {
	r := testproc.Redis(t)
	period := 2 * time.Second
	cfg := Config{Mode: ModeStateless, Backend: BackendRedis, Addrs: []string{r.Addr}, RotationPeriod: period}
	slow, fast := openStore(t, cfg), openStore(t, cfg)
	// Drive both rings by hand with their own clocks.
	slow.ring.stop()
	fast.ring.stop()
	now := time.Now()
	slow.ring.refresh(now)
	fast.ring.refresh(now.Add(2 * period))
	addrSlow, addrFast := serve(t, "127.0.0.1", slow), serve(t, "127.0.0.2", fast)
	c := newClient(tls.VersionTLS13)
	c.mustDial(t, addrFast)
	if !c.mustDial(t, addrSlow) {
		t.Fatalf("ticket from an instance %v ahead rejected (RotationPeriod %v)", 2*period, period)
	}
}

// The data directory of a persisted stateless store holds the fleet's
// ticket keys in clear. Whoever reads them can decrypt every TLS 1.2
// session whose ticket they recorded (the ticket carries the master
// secret) and answer TLS 1.3 PSK resumptions as the server. The directory
// and its files are created with the process umask (0755/0644 here): any
// local user can read them.
func TestReviewPersistedTicketKeysWorldReadable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sessions")
	s := openStore(t, Config{Mode: ModeStateless, Dir: dir})
	key := s.ring.current
	if err := s.backend.(*memoryKV).db.Flush(); err != nil {
		t.Fatal(err)
	}
	var problems []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			if !d.IsDir() {
				if b, _ := os.ReadFile(p); bytes.Contains(b, key[:]) {
					problems = append(problems, p+" ("+info.Mode().Perm().String()+") contains the current ticket key in clear")
					return nil
				}
			}
			problems = append(problems, p+" is "+info.Mode().Perm().String())
		}
		return nil
	})
	if len(problems) > 0 {
		t.Fatalf("session directory readable beyond its owner:\n%v", problems)
	}
}

// accel's Shutdown calls Store.Close when its context ends even though
// handshake goroutines may still be running (closing their sockets does not
// stop one that is between reading the ClientHello and wrapping the
// ticket). With a persisted memory backend the next WrapSession panics in
// pebble and takes the process down instead of failing open.
func TestReviewWrapAfterCloseFailsOpen(t *testing.T) {
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
