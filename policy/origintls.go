package policy

import (
	"net"
	"strings"
)

// OriginTLS is how a pool connects to its https:// servers (nginx's
// proxy_ssl_trusted_certificate, proxy_ssl_name, proxy_ssl_certificate).
type OriginTLS struct {
	// CAFile holds the PEM roots that verify the servers; default: the
	// system's roots.
	CAFile string `yaml:"ca_file"`
	// ServerName is sent as SNI and verified; default: each server's host.
	ServerName string `yaml:"server_name"`
	// Cert and Key are a client certificate for origins that ask for one.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// HostPort returns the server's host:port and whether it is reached over
// TLS: "https://h" is h:443 over TLS, "http://h" h:80, and a bare
// host:port is cleartext.
func (s Server) HostPort() (hostport string, useTLS bool) {
	a, port := s.Address, "80"
	switch {
	case strings.HasPrefix(a, "https://"):
		a, port, useTLS = a[len("https://"):], "443", true
	case strings.HasPrefix(a, "http://"):
		a = a[len("http://"):]
	default:
		return a, false
	}
	a = strings.TrimSuffix(a, "/")
	if _, _, err := net.SplitHostPort(a); err != nil {
		a = net.JoinHostPort(strings.Trim(a, "[]"), port)
	}
	return a, useTLS
}
