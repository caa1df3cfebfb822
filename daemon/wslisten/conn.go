package wslisten

import (
	"bytes"
	"context"
	"net"
	"sync"
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
// message without its line ending.
type conn struct {
	ws      *websocket.Conn
	in      net.Conn // the session reads here
	feed    net.Conn // the pump writes here
	msgType websocket.MessageType
	remote  net.Addr
	local   net.Addr

	wmu     sync.Mutex // serializes Write
	partial []byte     // a line Write got without its "\n" yet

	// dmu guards the write deadline and the write in flight, apart from
	// wmu so that a deadline can cut short a Write that is stuck (the
	// daemon does that to a slow consumer, from another goroutine).
	dmu         sync.Mutex
	wdeadline   time.Time
	cancelWrite context.CancelFunc // of the Write in flight, or nil
	writeTimer  *time.Timer        // cancels it at the deadline

	closeOnce sync.Once
}

func newConn(ws *websocket.Conn, remote, local net.Addr, maxMessage int) *conn {
	c := &conn{ws: ws, remote: remote, local: local, msgType: websocket.MessageText}
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
	defer c.feed.Close()
	for {
		_, msg, err := c.ws.Read(context.Background())
		if err != nil {
			return // closed by the client, by Close, or a message over the limit (1009)
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

func (c *conn) Read(p []byte) (int, error) { return c.in.Read(p) }

// Write sends each complete line in p as one message. A trailing partial
// line is kept until its end arrives. With the text subprotocol a line
// that is not valid UTF-8 (a TCP client's Latin-1, say) has the bad bytes
// replaced, since a text message must be UTF-8 and a browser drops the
// whole connection over one that is not.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ctx := c.startWrite()
	defer c.endWrite()
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

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.in.SetReadDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error { return c.in.SetReadDeadline(t) }

// SetWriteDeadline applies to the Write in flight too, as on a socket.
// The WebSocket library closes a connection whose write is cut short; a
// write deadline passing is fatal for a session anyway.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.wdeadline = t
	if c.cancelWrite != nil {
		c.armLocked()
	}
	return nil
}

// startWrite returns the context for a Write, cancelled at the deadline.
func (c *conn) startWrite() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	c.dmu.Lock()
	c.cancelWrite = cancel
	c.armLocked()
	c.dmu.Unlock()
	return ctx
}

func (c *conn) endWrite() {
	c.dmu.Lock()
	if c.writeTimer != nil {
		c.writeTimer.Stop()
		c.writeTimer = nil
	}
	c.cancelWrite()
	c.cancelWrite = nil
	c.dmu.Unlock()
}

// armLocked (re)sets the timer that cancels the write in flight.
func (c *conn) armLocked() {
	if c.writeTimer != nil {
		c.writeTimer.Stop()
		c.writeTimer = nil
	}
	if !c.wdeadline.IsZero() {
		c.writeTimer = time.AfterFunc(time.Until(c.wdeadline), c.cancelWrite)
	}
}
