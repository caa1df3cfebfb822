package wslisten

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// socketBufSize is the read and write buffer a WebSocket keeps for its
// whole life. net/http hands over its 4 KiB ones at the upgrade; an idle
// chat connection reads a few dozen bytes at a time, and writes go
// through the cork anyway, so 512 bytes each save 7 KiB per connection.
const socketBufSize = 512

// hijacker is the ResponseWriter the WebSocket library upgrades through.
// Its Hijack keeps the corkConn under the connection for the Listener,
// puts a frameMeter on the socket's read side, and swaps net/http's
// buffers for socketBufSize ones.
type hijacker struct {
	http.ResponseWriter
	cork  *corkConn   // set by Hijack
	meter *frameMeter // set by Hijack
}

func (w *hijacker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hands the library a socket whose every byte the meter sees, the
// ones the client sent right after its request included: those sit in
// net/http's buffer, and are moved in front of the socket's. The reader
// given back holds nothing yet, so the library, which reads on past what
// is buffered straight from the socket it gets, reads all through the
// meter.
func (w *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.cork, _ = conn.(*corkConn) // always, as corkListener accepted it
	early, _ := brw.Reader.Peek(brw.Reader.Buffered())
	w.meter = &frameMeter{r: io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)}
	metered := meteredConn{Conn: conn, meter: w.meter}
	bw := brw.Writer
	if bw.Buffered() == 0 {
		bw = bufio.NewWriterSize(conn, socketBufSize)
	}
	return metered, bufio.NewReadWriter(bufio.NewReaderSize(metered, socketBufSize), bw), nil
}

// meteredConn is a socket read through its frameMeter.
type meteredConn struct {
	net.Conn
	meter *frameMeter
}

func (c meteredConn) Read(p []byte) (int, error) { return c.meter.Read(p) }
