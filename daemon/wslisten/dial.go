package wslisten

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/coder/websocket"
)

// Dial connects to a WebSocket IRC endpoint and returns the connection as
// CRLF-terminated lines, the client-side mirror of what Accept returns;
// tests and the load generator speak to a WebSocket listener through it
// as they would to a TCP one. opts may be nil, which offers the text
// subprotocol; its HTTPClient, if any, must use an *http.Transport. Read
// deadlines work as on the server side; write deadlines are ignored, as
// only the server side needs them.
func Dial(ctx context.Context, url string, opts *websocket.DialOptions) (net.Conn, error) {
	o := websocket.DialOptions{Subprotocols: []string{TextSubprotocol}}
	if opts != nil {
		o = *opts
	}
	// Dial through a transport of our own, to keep hold of the socket:
	// read deadlines are set on it (see conn).
	hc := http.Client{}
	if o.HTTPClient != nil {
		hc = *o.HTTPClient
	}
	base := http.DefaultTransport
	if hc.Transport != nil {
		base = hc.Transport
	}
	bt, ok := base.(*http.Transport)
	if !ok {
		return nil, errors.New("wslisten.Dial: the HTTP client must use an *http.Transport")
	}
	tr := bt.Clone()
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	var sock net.Conn
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		sock = c
		return c, err
	}
	hc.Transport = tr
	o.HTTPClient = &hc
	ws, _, err := websocket.Dial(ctx, url, &o)
	if err != nil {
		return nil, err
	}
	return newClientConn(ws, sock, urlAddr(url), urlAddr("")), nil
}

// urlAddr names the far end of a dialled WebSocket by its URL.
type urlAddr string

func (a urlAddr) Network() string { return "websocket" }
func (a urlAddr) String() string  { return string(a) }

var _ net.Addr = urlAddr("")
