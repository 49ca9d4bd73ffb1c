package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// TLS configures the connections to a pool's TLS servers (ServerConfig.TLS).
// The zero value verifies against the system's roots under the server's
// host name, with no client certificate.
type TLS struct {
	// CAFile is a PEM file of the roots that verify the servers; empty
	// uses the system's roots.
	CAFile string
	// ServerName is sent as SNI and verified in the certificate; empty uses
	// the host of each server's address (an IP address is verified against
	// the certificate's IP SANs and sends no SNI, per RFC 6066 §3).
	ServerName string
	// CertFile and KeyFile are a client certificate for origins that
	// require one (mutual TLS).
	CertFile, KeyFile string
}

// sessionCacheSize bounds the TLS sessions kept per pool for resumption:
// one per server and name is all a pool uses.
const sessionCacheSize = 256

// build reads the files and returns the pool's client config: TLS 1.2 at
// least, ALPN http/1.1, and one session cache shared by the pool's servers
// so that a new connection resumes instead of paying a full handshake.
func (t *TLS) build() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"http/1.1"},
		ClientSessionCache: tls.NewLRUClientSessionCache(sessionCacheSize),
		ServerName:         t.ServerName,
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("tls: cert and key go together")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// forServer returns the pool's config with the server's host as the name
// to verify, unless one was configured.
func forServer(base *tls.Config, addr string) *tls.Config {
	if base == nil || base.ServerName != "" {
		return base
	}
	c := base.Clone()
	c.ServerName, _, _ = net.SplitHostPort(addr)
	return c
}

// handshake runs the client handshake on c within timeout. Its failure is
// a DialError, since nothing of the request was written; the error names
// the verification failure (unknown authority, wrong name, expiry).
func handshake(c net.Conn, cfg *tls.Config, addr string, timeout time.Duration) (net.Conn, error) {
	tc := tls.Client(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, &DialError{Addr: addr, Err: fmt.Errorf("TLS handshake: %w", err)}
	}
	return tc, nil
}

// tlsConfigs returns each server's TLS config, nil for cleartext ones.
// The files are read once per pool, and the pool's servers share one
// session cache.
func (c *Config) tlsConfigs() ([]*tls.Config, error) {
	out := make([]*tls.Config, len(c.Servers))
	var base *tls.Config
	for i, s := range c.Servers {
		if !s.TLS {
			continue
		}
		if base == nil {
			var err error
			if base, err = c.TLS.build(); err != nil {
				return nil, err
			}
		}
		out[i] = forServer(base, s.Addr)
	}
	return out, nil
}
