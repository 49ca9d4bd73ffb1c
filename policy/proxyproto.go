package policy

import "net/netip"

// checkProxyFrom validates a listener's PROXY protocol settings and
// returns its parsed networks.
func checkProxyFrom(k *checker, path []any, l Listener) []netip.Prefix {
	if !l.ProxyProtocol {
		if len(l.ProxyFrom) > 0 {
			k.failf(append(path, "proxy_from"), "is set but proxy_protocol is not true")
		}
		return nil
	}
	if len(l.ProxyFrom) == 0 {
		k.failf(append(path, "proxy_from"), "proxy_protocol needs the networks of the balancers allowed to send it (like 10.0.0.0/8)")
	}
	var nets []netip.Prefix
	for j, s := range l.ProxyFrom {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			k.failf(append(path, "proxy_from", j), "%q is not a network (like 10.0.0.0/8)", s)
			continue
		}
		nets = append(nets, pfx.Masked())
	}
	return nets
}

// ProxyAllowed reports whether a connection from addr may send this
// listener a PROXY protocol header.
func (l *Listener) ProxyAllowed(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range l.proxyNets {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
