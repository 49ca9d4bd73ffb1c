package tlsstore

import (
	"bytes"
	"crypto/tls"
	"strings"
)

// nameTag marks the SessionState.Extra entry that binds a session to the
// server name (SNI) it was made for. crypto/tls does not compare names on
// resumption, and one store serves every listener and certificate of a
// fleet: without the binding a ticket issued for a.example would resume on
// b.example under b's certificate, which RFC 6066 §3 forbids.
var nameTag = []byte("accel-sni\x00")

// bindName records name in ss, replacing any earlier binding.
func bindName(ss *tls.SessionState, name string) {
	extra := make([][]byte, 0, len(ss.Extra)+1)
	for _, e := range ss.Extra {
		if !bytes.HasPrefix(e, nameTag) {
			extra = append(extra, e)
		}
	}
	ss.Extra = append(extra, append(bytes.Clone(nameTag), strings.ToLower(name)...))
}

// boundTo reports whether ss was made for name; a session without a
// binding resumes nowhere.
func boundTo(ss *tls.SessionState, name string) bool {
	for _, e := range ss.Extra {
		if bytes.HasPrefix(e, nameTag) {
			return string(e[len(nameTag):]) == strings.ToLower(name)
		}
	}
	return false
}
