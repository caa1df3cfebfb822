package wslisten

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// upgradeAs asks l for a WebSocket at url (whose host may be any name: the
// socket goes to l), with the headers given, and reports whether it was
// let in.
func upgradeAs(t *testing.T, l *Listener, url string, h http.Header, base *http.Client) bool {
	t.Helper()
	tr := &http.Transport{}
	if base != nil {
		tr = base.Transport.(*http.Transport).Clone()
	}
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, l.Addr().String())
	}
	if tr.TLSClientConfig != nil {
		tr.TLSClientConfig.ServerName = "example.com" // httptest's certificate names it
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}, HTTPHeader: h})
	if err != nil {
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: %v, want an upgrade or a 403", url, err)
		}
		return false
	}
	accept(t, l)
	ws.CloseNow()
	return true
}

// The page's own origin is what the operator named (Options.Hostnames),
// or loopback and localhost on the listener's port, with the listener's
// scheme; never what the request's Host header claims, which a
// DNS-rebinding page controls.
func TestOriginIsNotTheHostHeader(t *testing.T) {
	l, _ := serve(t, Options{Hostnames: []string{"chat.example.com", "alt.example.com:8443"}})
	port := listenerPort(l.Addr())
	for _, tc := range []struct {
		host, origin string
		ok           bool
	}{
		{"evil.example:" + port, "http://evil.example:" + port, false}, // DNS rebinding
		{"127.0.0.1:" + port, "https://127.0.0.1:" + port, false},      // https page, http listener
		{"127.0.0.1:" + port, "http://127.0.0.1:" + port, true},
		{"localhost:" + port, "http://localhost:" + port, true},
		{"[::1]:" + port, "http://[::1]:" + port, true},
		{"localhost:1", "http://localhost:1", false}, // another local service's page
		{"evil.example", "http://chat.example.com", true},
		{"chat.example.com", "https://chat.example.com", false},
		{"alt.example.com:8443", "http://alt.example.com:8443", true},
		{"alt.example.com", "http://alt.example.com", false},
	} {
		h := http.Header{"Origin": {tc.origin}}
		if got := upgradeAs(t, l, "ws://"+tc.host+"/", h, nil); got != tc.ok {
			t.Errorf("Host %s, Origin %s: let in %v, want %v", tc.host, tc.origin, got, tc.ok)
		}
	}
}

// Behind a trusted proxy that terminated TLS, and on a TLS listener, the
// page's origin is https, and http is refused.
func TestOriginSchemeFollowsTheListener(t *testing.T) {
	proxied, _ := serve(t, Options{Hostnames: []string{"chat.example.com"},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	for _, tc := range []struct {
		origin, proto string
		ok            bool
	}{
		{"https://chat.example.com", "https", true},
		{"http://chat.example.com", "https", false},
		{"http://chat.example.com", "", true},
		{"https://chat.example.com", "", false},
	} {
		h := http.Header{"Origin": {tc.origin}}
		if tc.proto != "" {
			h.Set("X-Forwarded-Proto", tc.proto)
		}
		if got := upgradeAs(t, proxied, "ws://chat.example.com/", h, nil); got != tc.ok {
			t.Errorf("behind a proxy, Origin %s, X-Forwarded-Proto %q: let in %v, want %v", tc.origin, tc.proto, got, tc.ok)
		}
	}

	l, client := newTLSTestListener(t)
	port := listenerPort(l.Addr())
	for scheme, ok := range map[string]bool{"https": true, "http": false} {
		h := http.Header{"Origin": {scheme + "://localhost:" + port}}
		if got := upgradeAs(t, l, "wss://localhost:"+port+"/", h, client); got != ok {
			t.Errorf("TLS listener, Origin %s: let in %v, want %v", strings.Join(h["Origin"], ""), got, ok)
		}
	}
}
