package accel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): an L4
// balancer in front of accel writes the client's address ahead of the
// connection's own bytes. A listener with proxy_protocol on requires the
// header from every connection, and accepts connections only from its
// proxy_from networks: a receiver must never guess whether a header is
// there (the specification's own rule), and a header from anyone else
// would let any client choose the address that X-Forwarded-For, purge_from
// and the logs report.

// v2Signature opens every version 2 header.
const v2Signature = "\r\n\r\n\x00\r\nQUIT\n"

const (
	// v1MaxLen is the longest version 1 line, CRLF included (spec §2.1).
	v1MaxLen = 107
	// v2MaxLen bounds a version 2 header with its TLVs: balancers send a
	// few hundred bytes at most; the format's 64 KiB would let one
	// connection hold that much before it is even accepted.
	v2MaxLen = 16 + 1024
)

var (
	errProxyHeader = errors.New("malformed PROXY protocol header")
	errProxyFrom   = errors.New("PROXY protocol from an address not in proxy_from")
)

// proxiedConn is a client connection whose client address came from a
// PROXY header; rest holds the bytes read past the header.
type proxiedConn struct {
	net.Conn
	remote net.Addr
	rest   []byte
}

func (p *proxiedConn) RemoteAddr() net.Addr { return p.remote }

func (p *proxiedConn) Read(b []byte) (int, error) {
	if len(p.rest) > 0 {
		n := copy(b, p.rest)
		p.rest = p.rest[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// acceptProxy checks that c comes from an allowed network and reads its
// PROXY header within deadline. It returns the connection to serve, which
// reports the header's client address, or an error after which c must be
// closed.
func acceptProxy(c net.Conn, from func(netip.Addr) bool, deadline time.Time) (net.Conn, error) {
	peer, _ := netip.ParseAddr(clientIP(c.RemoteAddr()))
	if !from(peer) {
		return nil, errProxyFrom
	}
	c.SetReadDeadline(deadline)
	buf := make([]byte, 0, 256)
	for {
		remote, n, err := parseProxyHeader(buf)
		if err == nil {
			if remote == nil {
				// LOCAL (v2) or UNKNOWN (v1): the balancer's own
				// connection, a health check; its address is the real one.
				remote = c.RemoteAddr()
			}
			return &proxiedConn{Conn: c, remote: remote, rest: buf[n:]}, nil
		}
		if err != errIncompleteProxy {
			return nil, err
		}
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), 2*cap(buf))
			copy(nb, buf)
			buf = nb
		}
		m, rerr := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if rerr != nil && m == 0 {
			return nil, fmt.Errorf("reading PROXY protocol header: %w", rerr)
		}
	}
}

var errIncompleteProxy = errors.New("incomplete PROXY header")

// parseProxyHeader parses a v1 or v2 header at the start of b. It returns
// the client address (nil for LOCAL and UNKNOWN), the header's length, or
// errIncompleteProxy when b holds only a valid beginning of one.
func parseProxyHeader(b []byte) (net.Addr, int, error) {
	switch {
	case len(b) == 0:
		return nil, 0, errIncompleteProxy
	case b[0] == 'P':
		return parseProxyV1(b)
	case b[0] == '\r':
		return parseProxyV2(b)
	}
	return nil, 0, errProxyHeader
}

// parseProxyV1 reads "PROXY TCP4|TCP6 src dst sport dport\r\n" or
// "PROXY UNKNOWN ...\r\n", single spaces, nothing else.
func parseProxyV1(b []byte) (net.Addr, int, error) {
	const prefix = "PROXY "
	if n := min(len(b), len(prefix)); string(b[:n]) != prefix[:n] {
		return nil, 0, errProxyHeader
	}
	end := bytes.Index(b, []byte("\r\n"))
	if end < 0 {
		if len(b) >= v1MaxLen || bytes.IndexByte(b, '\n') >= 0 {
			return nil, 0, errProxyHeader
		}
		return nil, 0, errIncompleteProxy
	}
	if end+2 > v1MaxLen {
		return nil, 0, errProxyHeader
	}
	parts := bytes.Split(b[len(prefix):end], []byte(" "))
	if string(parts[0]) == "UNKNOWN" {
		return nil, end + 2, nil
	}
	if len(parts) != 5 || (string(parts[0]) != "TCP4" && string(parts[0]) != "TCP6") {
		return nil, 0, errProxyHeader
	}
	src, err1 := netip.ParseAddr(string(parts[1]))
	dst, err2 := netip.ParseAddr(string(parts[2]))
	sport, err3 := parsePort(parts[3])
	_, err4 := parsePort(parts[4])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, 0, errProxyHeader
	}
	v4 := string(parts[0]) == "TCP4"
	if src.Is4() != v4 || dst.Is4() != v4 || src.Zone() != "" {
		return nil, 0, errProxyHeader
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, sport)), end + 2, nil
}

// parsePort reads a decimal port without sign or leading zero.
func parsePort(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (b[0] == '0' && len(b) > 1) {
		return 0, errProxyHeader
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errProxyHeader
		}
	}
	n, err := strconv.ParseUint(string(b), 10, 16)
	return uint16(n), err
}

// parseProxyV2 reads the binary header: signature, version and command,
// family and transport, length, addresses, then TLVs we skip.
func parseProxyV2(b []byte) (net.Addr, int, error) {
	if n := min(len(b), len(v2Signature)); string(b[:n]) != v2Signature[:n] {
		return nil, 0, errProxyHeader
	}
	if len(b) < 16 {
		return nil, 0, errIncompleteProxy
	}
	verCmd, fam := b[12], b[13]
	length := int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 || verCmd&0xf > 1 || 16+length > v2MaxLen {
		return nil, 0, errProxyHeader
	}
	if len(b) < 16+length {
		return nil, 0, errIncompleteProxy
	}
	total := 16 + length
	if verCmd&0xf == 0 {
		// LOCAL: sent by the balancer on its own behalf.
		return nil, total, nil
	}
	body := b[16:total]
	switch fam {
	case 0x11: // TCP over IPv4
		if len(body) < 12 {
			return nil, 0, errProxyHeader
		}
		src := netip.AddrFrom4([4]byte(body[0:4]))
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[8:10]))), total, nil
	case 0x21: // TCP over IPv6
		if len(body) < 36 {
			return nil, 0, errProxyHeader
		}
		src := netip.AddrFrom16([16]byte(body[0:16]))
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[32:34]))), total, nil
	case 0x00: // UNSPEC: the address is unknown; keep the connection's.
		return nil, total, nil
	}
	return nil, 0, errProxyHeader
}

// refuseProxy closes a connection whose PROXY header was refused, counted
// and logged with the connection's own address (the header's cannot be
// trusted).
func (s *Server) refuseProxy(c net.Conn, err error) {
	reason := "proxy_header"
	if err == errProxyFrom {
		reason = "proxy_from"
	}
	s.metrics.IncRejection(reason)
	s.log.Warn("connection refused", "client", c.RemoteAddr().String(), "err", err)
	c.Close()
}

// CloseWrite half-closes the socket, for the lingering close.
func (p *proxiedConn) CloseWrite() error {
	if tc, ok := p.Conn.(*net.TCPConn); ok {
		return tc.CloseWrite()
	}
	return nil
}
