package policy

import "testing"

func TestServerHostPort(t *testing.T) {
	for in, want := range map[string]struct {
		hp  string
		tls bool
	}{
		"10.0.0.1:8080":               {"10.0.0.1:8080", false},
		"https://origin.example":      {"origin.example:443", true},
		"https://origin.example:8443": {"origin.example:8443", true},
		"https://[2001:db8::1]":       {"[2001:db8::1]:443", true},
		"http://origin.example/":      {"origin.example:80", false},
	} {
		hp, tls := Server{Address: in}.HostPort()
		if hp != want.hp || tls != want.tls {
			t.Errorf("HostPort(%q) = %q, %v; want %q, %v", in, hp, tls, want.hp, want.tls)
		}
	}
}
