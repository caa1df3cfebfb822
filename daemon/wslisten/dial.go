package wslisten

import (
	"context"
	"net"

	"github.com/coder/websocket"
)

// Dial connects to a WebSocket IRC endpoint and returns the connection as
// CRLF-terminated lines, the client-side mirror of what Accept returns;
// tests and the load generator speak to a WebSocket listener through it
// as they would to a TCP one. opts may be nil, which offers the text
// subprotocol. Its write deadlines are ignored: only the server side needs
// them.
func Dial(ctx context.Context, url string, opts *websocket.DialOptions) (net.Conn, error) {
	if opts == nil {
		opts = &websocket.DialOptions{Subprotocols: []string{TextSubprotocol}}
	}
	ws, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	return newConn(ws, nil, urlAddr(url), urlAddr(""), DefaultMaxMessage), nil
}

// urlAddr names the far end of a dialled WebSocket by its URL.
type urlAddr string

func (a urlAddr) Network() string { return "websocket" }
func (a urlAddr) String() string  { return string(a) }

var _ net.Addr = urlAddr("")
