package wslisten

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// conn presents a WebSocket as a stream of CRLF-terminated lines.
//
// Reading: a pump goroutine reads each message and writes it, with "\r\n"
// appended, into one end of a net.Pipe; Read reads the other end. The
// pipe gives read deadlines the meaning net.Conn promises (a deadline
// passing fails the read and leaves the connection usable, which the
// daemon's PING logic relies on), where the WebSocket library would close
// the connection. The pipe is synchronous, so a reader that stops reading
// stops the pump, and a client can never make us buffer more than one
// message.
//
// Writing: Write splits what it is given into lines and sends each as a
// message without its line ending, through the cork (cork.go).
type conn struct {
	ws      *websocket.Conn
	cork    *corkConn // the socket under ws; nil on the client side
	in      net.Conn  // the session reads here
	feed    net.Conn  // the pump writes here
	msgType websocket.MessageType
	remote  net.Addr
	local   net.Addr
	secure  bool // see Secure

	wmu     sync.Mutex // serializes Write
	partial []byte     // a line Write got without its "\n" yet

	closeOnce sync.Once
	pumped    chan struct{} // closed when the pump has stopped
	tooBig    atomic.Bool   // the client sent a message over the limit
}

// ErrMessageTooBig is what Read and Write return, instead of the error
// they would otherwise report, once the client has sent a message over the
// limit; the connection has been closed with status 1009 (message too big).
var ErrMessageTooBig = errors.New("WebSocket message longer than the longest legal line")

func newConn(ws *websocket.Conn, cork *corkConn, remote, local net.Addr, maxMessage int) *conn {
	c := &conn{ws: ws, cork: cork, remote: remote, local: local, msgType: websocket.MessageText,
		pumped: make(chan struct{})}
	if ws.Subprotocol() == BinarySubprotocol {
		c.msgType = websocket.MessageBinary
	}
	ws.SetReadLimit(int64(maxMessage))
	c.in, c.feed = net.Pipe()
	go c.pump()
	return c
}

// pump copies messages into the pipe until either side closes. Either
// message type is accepted, whatever the subprotocol: being strict would
// only break clients.
func (c *conn) pump() {
	defer close(c.pumped)
	defer c.feed.Close()
	for {
		_, msg, err := c.ws.Read(context.Background())
		if err != nil {
			// Closed by the client or by Close, or a message over the
			// limit, which the library has answered with 1009.
			c.tooBig.Store(errors.Is(err, websocket.ErrMessageTooBig))
			return
		}
		// The specification forbids line endings in a message; a client
		// that sends one anyway gets it tolerated, not doubled.
		msg = bytes.TrimRight(msg, "\r\n")
		msg = append(msg, '\r', '\n')
		if _, err := c.feed.Write(msg); err != nil {
			return
		}
	}
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.in.Read(p)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && c.endedTooBig() {
		err = ErrMessageTooBig
	}
	return n, err
}

// endedTooBig reports whether the connection ended because the client sent
// a message over the limit. It is asked once a read or write has failed.
// The library answers such a message with its close frame before its Read
// returns, so the session's writer can fail on the closed connection (and
// the reader on a pipe the writer closed) before the pump has recorded
// why: wait for the pump, which is returning already, to have the true
// reason in both places. The wait is bounded in case the failure was
// something else and the pump is still reading.
func (c *conn) endedTooBig() bool {
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-c.pumped:
	case <-t.C:
	}
	return c.tooBig.Load()
}

// Write sends each complete line in p as one message, all of them in one
// write to the socket. A trailing partial line is kept until its end
// arrives. With the text subprotocol a line that is not valid UTF-8 (a
// TCP client's Latin-1, say) has the bad bytes replaced, since a text
// message must be UTF-8 and a browser drops the whole connection over one
// that is not.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.cork != nil {
		c.cork.cork()
	}
	n, err := c.writeLines(p)
	if c.cork != nil {
		if rerr := c.cork.release(); err == nil && rerr != nil {
			n, err = 0, rerr
		}
	}
	if err != nil && errors.Is(err, net.ErrClosed) && c.endedTooBig() {
		err = ErrMessageTooBig
	}
	return n, err
}

func (c *conn) writeLines(p []byte) (int, error) {
	ctx := context.Background() // deadlines are the socket's; see SetWriteDeadline
	n := 0
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.partial = append(c.partial, p...)
			return n + len(p), nil
		}
		line := p[:i]
		if len(c.partial) > 0 {
			line = append(c.partial, line...)
			c.partial = c.partial[:0]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if c.msgType == websocket.MessageText && !utf8.Valid(line) {
			line = bytes.ToValidUTF8(line, []byte("\uFFFD"))
		}
		if len(line) > 0 {
			if err := c.ws.Write(ctx, c.msgType, line); err != nil {
				return n, err
			}
		}
		n += i + 1
		p = p[i+1:]
	}
	return n, nil
}

// closeWait bounds how long Close waits for the client to answer its
// close frame.
var closeWait = time.Second

// Close says goodbye with a normal closure (status 1000) and waits for the
// client's answer, for at most closeWait: long enough that a shutdown,
// which waits for its sessions, has really said goodbye to every client
// that still listens, and short enough that one that stopped reading does
// not hold it up. Then the reader sees EOF; the library finishes the
// closing handshake (or gives up on it) in the background.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.ws.Close(websocket.StatusNormalClosure, "")
		}()
		t := time.NewTimer(closeWait)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
		c.in.Close()
	})
	return nil
}

// Secure reports whether the client's connection is encrypted up to us:
// wss, or https to a trusted proxy that said so (X-Forwarded-Proto).
func (c *conn) Secure() bool { return c.secure }

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.in.SetReadDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error { return c.in.SetReadDeadline(t) }

// SetWriteDeadline sets the socket's deadline, which cuts short a Write
// in flight too (the daemon does that to a slow consumer from another
// goroutine). On the client side it does nothing.
func (c *conn) SetWriteDeadline(t time.Time) error {
	if c.cork == nil {
		return nil
	}
	return c.cork.SetWriteDeadline(t)
}
