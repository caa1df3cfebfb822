// Package wslisten carries the IRC line protocol over WebSocket, as the
// IRCv3 WebSocket specification describes: one line per message, without
// its line ending, under the text.ircv3.net or binary.ircv3.net
// subprotocol (or none, which is text).
//
// A Listener is a net.Listener: it serves HTTP on a bound socket, turns
// each WebSocket upgrade into a net.Conn that reads and writes ordinary
// CRLF-terminated lines, and hands those to Accept. So the daemon serves a
// browser with the very Session, limits and metrics it gives a TCP client;
// nothing above this package knows the difference. Requests that are not
// upgrades go to Options.Page.
package wslisten

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	"github.com/livechat/livechat/internal/refuse"
	"github.com/livechat/livechat/protocol"
)

// Why an upgrade was refused, for Options.Refused.
const (
	RefusedOrigin    = "ws_origin"    // a page from an origin not allowed (403)
	RefusedHandshake = "ws_handshake" // not a valid WebSocket handshake
	RefusedPerIP     = "ws_per_ip"    // Options.Admit turned the socket away
)

// The subprotocols of the IRCv3 WebSocket specification, preferred in
// this order when a client offers both.
const (
	TextSubprotocol   = "text.ircv3.net"
	BinarySubprotocol = "binary.ircv3.net"
)

const (
	// handshakeTimeout bounds reading an HTTP request's headers, so a
	// client that opens a socket and says nothing does not hold it.
	handshakeTimeout = 10 * time.Second
	// maxHeaderBytes is generous for a browser's upgrade request (cookies
	// included) and small next to what a flood could make us buffer.
	maxHeaderBytes = 16 << 10
)

// Options configure a Listener.
type Options struct {
	// AllowedOrigins are the browser origins allowed to connect besides
	// the listener's own pages (see Hostnames): host patterns
	// ("chat.example.com", "*.example.com") or, with a scheme, origin
	// patterns ("https://example.com"), matched with path.Match. "*"
	// allows any origin. Requests without an Origin header (non-browser
	// clients) are always allowed: the check exists to stop other sites'
	// pages from using a visitor's browser, and only browsers send Origin.
	// SetPolicy replaces it, Hostnames and TrustedProxies while serving.
	AllowedOrigins []string
	// Hostnames are the names the listener's own page is served under
	// ("chat.example.com", or "chat.example.com:8443" for that port
	// only); its origin is allowed with the listener's scheme. Loopback
	// addresses and localhost on the listener's port always are. The
	// request's Host header is never believed (DNS rebinding).
	Hostnames []string
	// TrustedProxies are the addresses whose X-Forwarded-For header is
	// believed; from any other peer the header is ignored.
	TrustedProxies []netip.Prefix
	// MaxMessage is the longest message a client may send, in bytes; a
	// longer one closes the connection with status 1009 (message too
	// big). Zero means DefaultMaxMessage.
	MaxMessage int
	// Page serves requests that are not WebSocket upgrades; nil answers
	// them 404.
	Page http.Handler
	// Admit, if set, is asked about each socket before it speaks HTTP
	// (except a trusted proxy's, which carries many clients): ok false
	// answers it 429 Too Many Requests and closes it. release is called once the socket has upgraded
	// (from then on it is the daemon's to count) or has closed. It lets
	// the daemon bound the sockets one address holds without upgrading.
	Admit func(remote net.Addr) (release func(), ok bool)
	// Refused, if set, is told of each socket or upgrade refused, with
	// the reason RefusedOrigin, RefusedHandshake or RefusedPerIP.
	Refused func(reason string)
	Log     zerolog.Logger
}

// Listener accepts WebSocket connections as net.Conns. Close it to stop
// serving; connections already accepted are the caller's to close.
type Listener struct {
	raw     net.Listener
	port    string  // raw's, for the loopback origins
	opts    Options // its AllowedOrigins and TrustedProxies: see policy
	policy  atomic.Pointer[policy]
	refuser *refuse.Refuser // for sockets Options.Admit turns away
	http    *http.Server
	conns   chan net.Conn
	done    chan struct{}
	once    sync.Once
}

// policy is the part of Options that SetPolicy can change while serving.
type policy struct {
	allowedOrigins []string
	anyOrigin      bool // "*" among them
	hostnames      []string
	proxies        []netip.Prefix
}

// acceptOptions leave the origin to originAllowed: the library's own check
// believes the Host header.
var acceptOptions = websocket.AcceptOptions{Subprotocols: []string{TextSubprotocol, BinarySubprotocol}, InsecureSkipVerify: true}

// connKey finds the socket under a request, in its context.
type connKey struct{}

// New starts serving HTTP on raw (which may be a TLS listener) and returns
// the Listener whose Accept yields the upgraded connections.
func New(raw net.Listener, opts Options) *Listener {
	if opts.MaxMessage <= 0 {
		opts.MaxMessage = DefaultMaxMessage
	}
	l := &Listener{
		raw:     raw,
		port:    listenerPort(raw.Addr()),
		opts:    opts,
		refuser: refuse.New(maxRefusing),
		conns:   make(chan net.Conn),
		done:    make(chan struct{}),
	}
	l.SetPolicy(opts.AllowedOrigins, opts.Hostnames, opts.TrustedProxies)
	if len(opts.Hostnames) == 0 && !loopbackOnly(raw.Addr()) {
		opts.Log.Warn().Str("listen", raw.Addr().String()).
			Msg("WebSocket listener reachable from other machines but websocket.hostnames is empty: only pages opened at a loopback address or localhost (and websocket.allowed_origins) may connect; list the host names the chat page is served under")
	}
	l.http = &http.Server{
		Handler:           http.HandlerFunc(l.serveHTTP),
		ConnContext:       func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
		ReadHeaderTimeout: handshakeTimeout,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          newHTTPErrorLog(opts.Log),
	}
	go func() {
		if err := l.http.Serve(socketListener{raw, l}); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Log.Error().Err(err).Msg("WebSocket listener failed")
		}
		l.Close()
	}()
	return l
}

// DefaultMaxMessage is the longest legal IRC line with tags, without its
// line ending: a 8191-byte tag section, its space and a 510-byte body.
const DefaultMaxMessage = protocol.MaxTagsLen + 1 + protocol.MaxBodyLen

// SetPolicy replaces Options.AllowedOrigins, Options.Hostnames and
// Options.TrustedProxies (a configuration reload). Requests from then on
// follow the new rules; connections already upgraded keep the address and
// security they got. Safe while serving.
func (l *Listener) SetPolicy(allowedOrigins, hostnames []string, trustedProxies []netip.Prefix) {
	l.policy.Store(&policy{
		allowedOrigins: slices.Clone(allowedOrigins),
		anyOrigin:      slices.Contains(allowedOrigins, "*"),
		hostnames:      slices.Clone(hostnames),
		proxies:        slices.Clone(trustedProxies),
	})
}

// Accept waits for the next WebSocket connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops serving HTTP and accepting connections. Page requests in
// flight are cut off; WebSocket connections already handed out are not
// touched.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.http.Close()
	})
	return err
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr { return l.raw.Addr() }

func (l *Listener) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !isUpgrade(r) {
		if l.opts.Page == nil {
			http.NotFound(w, r)
			return
		}
		l.opts.Page.ServeHTTP(w, r)
		return
	}
	select {
	case <-l.done:
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	default:
	}
	sock, _ := r.Context().Value(connKey{}).(*corkConn) // always, as socketListener accepted it
	secure := sock != nil && sock.isTLS() || l.forwardedSecure(r)
	if !l.originAllowed(r, secure) {
		http.Error(w, "Forbidden: this page's origin may not connect", http.StatusForbidden)
		l.refused(RefusedOrigin)
		l.opts.Log.Debug().Str("remote", r.RemoteAddr).Str("origin", r.Header.Get("Origin")).Str("reason", RefusedOrigin).Msg("WebSocket upgrade refused")
		return
	}
	hj := &hijacker{ResponseWriter: w}
	ws, err := websocket.Accept(hj, r, &acceptOptions)
	if err != nil {
		// Accept has answered the request.
		l.refused(RefusedHandshake)
		l.opts.Log.Debug().Err(err).Str("remote", r.RemoteAddr).Str("reason", RefusedHandshake).Msg("WebSocket upgrade refused")
		return
	}
	// From here on the connection is ours alone (hijack.go).
	subprotocol := ws.Subprotocol()
	runtime.SetFinalizer(ws, nil) // it would only close a handshakeConn
	if a, ok := hj.cork.Conn.(*admittedConn); ok {
		a.uncount()
	}
	c := newServerConn(hj.cork, hj.early, subprotocol, l.clientAddr(r), l.raw.Addr(), l.opts.MaxMessage)
	c.secure = secure
	select {
	case l.conns <- c:
	case <-l.done:
		c.goodbye.Store(&closeFrame{websocket.StatusGoingAway, "server shutting down"})
		c.Close()
	}
}

func (l *Listener) refused(reason string) {
	if l.opts.Refused != nil {
		l.opts.Refused(reason)
	}
}

// isUpgrade reports whether r asks for a WebSocket; anything else is a
// page request.
func isUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "websocket") {
				return true
			}
		}
	}
	return false
}

// clientAddr is the client's address: the peer's, or, when the peer is a
// trusted proxy, the right-most address in X-Forwarded-For that is not a
// trusted proxy itself (the left part of the header is whatever the client
// chose to send, so it is never believed). The port of a forwarded client
// is unknown and reported as 0.
func (l *Listener) clientAddr(r *http.Request) net.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return &net.TCPAddr{} // the http package always sets host:port
	}
	addr := peer.Addr().Unmap()
	if !l.trusted(addr) {
		return net.TCPAddrFromAddrPort(peer)
	}
	hops := listValues(r.Header.Values("X-Forwarded-For"))
	client := addr
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(hops[i])
		if err != nil {
			break // garbage: stop at the last address we could vouch for
		}
		client = hop.Unmap()
		if !l.trusted(client) {
			break
		}
	}
	if client == addr {
		return net.TCPAddrFromAddrPort(peer)
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(client, 0))
}

// forwardedSecure reports whether a trusted proxy says, in
// X-Forwarded-Proto, that the client reached it over TLS. Every scheme
// listed must be https (or wss): a proxy that appends to the header rather
// than replacing it leaves the client's own claim on the left, and the
// proxy's "http" after it must still count.
func (l *Listener) forwardedSecure(r *http.Request) bool {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !l.trusted(peer.Addr().Unmap()) {
		return false
	}
	protos := listValues(r.Header.Values("X-Forwarded-Proto"))
	if len(protos) == 0 {
		return false
	}
	for _, p := range protos {
		if !strings.EqualFold(p, "https") && !strings.EqualFold(p, "wss") {
			return false
		}
	}
	return true
}

func (l *Listener) trusted(a netip.Addr) bool {
	for _, p := range l.policy.Load().proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// listValues splits comma-separated header values (X-Forwarded-For's
// addresses, X-Forwarded-Proto's schemes) into their items, in order.
func listValues(values []string) []string {
	var hops []string
	for _, v := range values {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	return hops
}

// newHTTPErrorLog sends what net/http logs (TLS handshake failures, bad
// requests) to the daemon's log at debug level: it is the client's
// trouble, not the operator's.
func newHTTPErrorLog(l zerolog.Logger) *log.Logger {
	return log.New(debugWriter{l}, "", 0)
}

type debugWriter struct{ l zerolog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.l.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
