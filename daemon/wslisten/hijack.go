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
// Its Hijack keeps the corkConn under the connection for the Listener, and
// swaps net/http's buffers for socketBufSize ones.
type hijacker struct {
	http.ResponseWriter
	cork   *corkConn // set by Hijack
	status int       // the status of a refused upgrade
}

func (w *hijacker) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *hijacker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.cork, _ = conn.(*corkConn) // always, as corkListener accepted it
	n := brw.Reader.Buffered()
	if n > socketBufSize || brw.Writer.Buffered() > 0 {
		return conn, brw, nil // the client sent ahead a lot; keep what holds it
	}
	// Bytes the client sent right after its request are in the old
	// buffer: move them to the front of the new one.
	early, _ := brw.Reader.Peek(n)
	r := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn), socketBufSize)
	if n > 0 {
		if _, err := r.Peek(n); err != nil {
			return conn, brw, nil
		}
	}
	return conn, bufio.NewReadWriter(r, bufio.NewWriterSize(conn, socketBufSize)), nil
}
