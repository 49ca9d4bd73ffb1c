package accel

import (
	"errors"
	"net"
	"net/netip"
	"sync"
)

// errClientLimit answers a request whose client address already has
// limits.origin_fetches_per_client origin fetches under way: 503 with
// Retry-After, as HAProxy answers above its limits.
var errClientLimit = errors.New("accel: too many origin fetches under way from this client address")

// fetchLimiter counts the origin fetches each client address has under
// way, from the request to the end of its response body, so that one
// address cannot take a pool's connections, queue and buffers from all the
// others. Hits never reach it.
type fetchLimiter struct {
	mu sync.Mutex
	n  map[netip.Addr]int
}

// acquire counts one fetch for a, or reports false when a already has max
// (0: no limit). Addresses without an IP (a Unix socket, tests) are not
// counted.
func (l *fetchLimiter) acquire(a netip.Addr, max int) bool {
	if max <= 0 || !a.IsValid() {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[a] >= max {
		return false
	}
	if l.n == nil {
		l.n = map[netip.Addr]int{}
	}
	l.n[a]++
	return true
}

// release ends a fetch acquire counted.
func (l *fetchLimiter) release(a netip.Addr, max int) {
	if max <= 0 || !a.IsValid() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[a]--; l.n[a] <= 0 {
		delete(l.n, a)
	}
}

// addrOf is the client's IP address, IPv4-mapped ones unmapped.
func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}
