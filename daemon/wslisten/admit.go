package wslisten

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// socketListener hands the HTTP server the sockets Options.Admit lets in,
// each under a corkConn.
type socketListener struct {
	net.Listener
	l *Listener
}

func (s socketListener) Accept() (net.Conn, error) {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c, ok := s.l.admit(c); ok {
			return &corkConn{Conn: c}, nil
		}
	}
}

// tooManyResponse answers a socket Options.Admit refused, whatever its
// request: a browser shows the text, a WebSocket client the 429.
var tooManyResponse = func() []byte {
	const body = "Too many connections from your address\n"
	return []byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body)
}()

// maxRefusing bounds the 429s being delivered at once (refuse.New).
const maxRefusing = 64

// admit asks Options.Admit about a new socket; a refused one gets a 429
// and is closed, in the background.
func (l *Listener) admit(c net.Conn) (net.Conn, bool) {
	if l.opts.Admit == nil || l.trustedPeer(c.RemoteAddr()) {
		return c, true
	}
	release, ok := l.opts.Admit(c.RemoteAddr())
	if !ok {
		l.refused(RefusedPerIP) // first, so whoever sees the 429 sees the count
		l.opts.Log.Debug().Str("remote", c.RemoteAddr().String()).Str("reason", RefusedPerIP).Msg("WebSocket listener socket refused")
		l.refuser.RefuseRequest(c, tooManyResponse)
		return nil, false
	}
	return &admittedConn{Conn: c, release: release}, true
}

func (l *Listener) trustedPeer(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && l.trusted(ap.Addr().Unmap())
}

// admittedConn is a socket Options.Admit counts until it upgrades or
// closes, whichever comes first.
type admittedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *admittedConn) uncount() { c.once.Do(c.release) }

func (c *admittedConn) Close() error {
	c.uncount()
	return c.Conn.Close()
}
