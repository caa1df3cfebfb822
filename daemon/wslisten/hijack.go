package wslisten

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
)

// hijacker is the ResponseWriter the WebSocket library upgrades through.
// The library only does the handshake: its Hijack keeps the corkConn
// under the connection and the bytes the client sent right behind its
// request for the Listener, which reads the frames itself (read.go), and
// hands the library a socket it cannot use, with the smallest buffers.
// net/http's 4 KiB buffers are dropped with it.
type hijacker struct {
	http.ResponseWriter
	cork  *corkConn // set by Hijack
	early []byte    // set by Hijack: the client's first frames, if they came with its request
}

func (w *hijacker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if brw.Writer.Buffered() > 0 { // the 101 response, if net/http has not sent it
		if err := brw.Writer.Flush(); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	w.cork, _ = conn.(*corkConn) // always, as socketListener accepted it
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		w.early = bytes.Clone(b)
	}
	var lib handshakeConn
	lib.Conn = conn
	return lib, bufio.NewReadWriter(bufio.NewReaderSize(lib, 16), bufio.NewWriterSize(lib, 16)), nil
}

// handshakeConn is the socket as the library sees it once it has
// upgraded: dead to it. The library's Conn is dropped, and its finalizer
// would close the socket under the connection.
type handshakeConn struct{ net.Conn }

func (handshakeConn) Read([]byte) (int, error)  { return 0, net.ErrClosed }
func (handshakeConn) Write([]byte) (int, error) { return 0, net.ErrClosed }
func (handshakeConn) Close() error              { return nil }
