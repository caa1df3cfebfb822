package configs

import (
	"fmt"
	"net/netip"
	"strings"
)

// ExemptPrefixes parses limits.exempt. Each entry is a CIDR ("10.0.0.0/8",
// "2001:db8::/32") or a single address ("192.0.2.7"), which means just
// that host. Host bits are cleared, as routers and firewalls do, so
// "10.1.2.3/8" means 10.0.0.0/8. Validate reports the first bad entry under
// the key limits.exempt; the daemon calls this on validated configs only.
func (l Limits) ExemptPrefixes() ([]netip.Prefix, error) {
	return parsePrefixes(l.Exempt)
}

// TrustedProxyPrefixes parses websocket.trusted_proxies, written like
// limits.exempt.
func (w WebSocket) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	return parsePrefixes(w.TrustedProxies)
}

func parsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	bad := func(why string) (netip.Prefix, error) {
		return netip.Prefix{}, fmt.Errorf("%q %s", s, why)
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return bad(`is not a CIDR like "10.0.0.0/8" or "2001:db8::/32"`)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return bad(`is not an address like "192.0.2.7" or a CIDR like "10.0.0.0/8"`)
		}
		if a.Zone() != "" {
			return bad("has a zone; write the address without %zone")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	// Clients are matched by their plain IPv4 address, so an IPv4-mapped
	// IPv6 prefix would never match anything.
	if p.Addr().Is4In6() {
		return bad("is an IPv4-mapped IPv6 range; write it as IPv4")
	}
	return p.Masked(), nil
}
