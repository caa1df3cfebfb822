package wslisten

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// originAllowed reports whether a page from the request's Origin may
// connect. The request's Host header is not believed: a DNS-rebinding page
// (evil.example resolving to this server) sends Host and Origin that agree
// with each other. The names the page may be served under come from the
// operator instead: Options.Hostnames, and, on the listener's own port,
// loopback addresses and localhost, which no other site's page can claim.
// Those must also have the scheme this listener is reached by (https on a
// TLS listener or behind a trusted proxy that says so, else http).
// Options.AllowedOrigins patterns are matched as written.
func (l *Listener) originAllowed(r *http.Request, secure bool) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser
	}
	p := l.policy.Load()
	if p.anyOrigin {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	for _, pattern := range p.allowedOrigins {
		target := u.Host
		if strings.Contains(pattern, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(pattern), strings.ToLower(target)); ok {
			return true
		}
	}
	scheme := "http"
	if secure {
		scheme = "https"
	}
	if !strings.EqualFold(u.Scheme, scheme) {
		return false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	if port == l.port && isLoopbackName(host) {
		return true
	}
	for _, name := range p.hostnames {
		if h, p, err := net.SplitHostPort(name); err == nil {
			if strings.EqualFold(h, host) && p == port {
				return true
			}
		} else if strings.EqualFold(strings.Trim(name, "[]"), host) {
			return true
		}
	}
	return false
}

// isLoopbackName reports whether host (without brackets) is localhost or
// a loopback address.
func isLoopbackName(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// listenerPort is the port addr is bound to, as text.
func listenerPort(addr net.Addr) string {
	if a, ok := addr.(*net.TCPAddr); ok {
		return strconv.Itoa(a.Port)
	}
	_, port, _ := net.SplitHostPort(addr.String())
	return port
}

// loopbackOnly reports whether addr only accepts connections from this
// machine.
func loopbackOnly(addr net.Addr) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}
