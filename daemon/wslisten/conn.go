package wslisten

import (
	"bytes"
	"context"
	"errors"
	"io"
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
// Reading: Read takes in a whole message, in the caller's goroutine (a
// connection costs no goroutine of its own), and hands it out with
// "\r\n" appended. A message is delivered whole or not at all, so one
// over the limit never reaches the session in part. Read deadlines are set
// on the socket, not passed as a context, and only fail the read, as
// net.Conn promises and the daemon's PING logic needs. On the server side
// the frames are read here (read.go), so a deadline may pass anywhere, in
// the middle of a message too, and the next Read goes on from there; on
// the client side the library reads them, and a deadline passing in the
// middle of a message leaves it unable to go on, so that read fails for
// good.
//
// Writing: Write splits what it is given into lines and sends each as a
// message without its line ending, framed into the cork (cork.go) on the
// server side and through the library on the client side.
type conn struct {
	ws      *websocket.Conn // the library's, on the client side only
	cork    *corkConn       // the socket, on the server side only
	sock    net.Conn        // the socket, for read deadlines
	rsock   net.Conn        // the socket under sock's wrappers, for reading (server side)
	msgType websocket.MessageType
	remote  net.Addr
	local   net.Addr
	secure  bool // see Secure

	rmu     sync.Mutex // serializes Read, and Close's wait for the client's close frame
	pending []byte     // the rest of the line being handed out
	pbuf    *[]byte    // the pooled buffer pending lives in

	// The server side's reading (read.go), guarded by rmu.
	early      []byte      // what the client sent right behind its upgrade request, read first
	rerr       error       // what ended reading for good
	charge     func() bool // flood control per frame (ChargeFrames), or nil
	msg        *[]byte     // the pooled buffer the message in progress collects in
	maxMessage int
	left       int    // payload bytes of the current frame still to come
	key        uint32 // its mask key, turned for the next byte
	op         byte   // its opcode, or noFrame, or brokenFrame
	msgOp      byte   // opText or opBinary while a message is in progress, else 0
	fin        bool   // the current frame ends its message
	in0, in1   uint8  // small[in0:in1] is read but not yet taken in
	small      [smallReadSize]byte

	wmu     sync.Mutex // serializes Write
	partial []byte     // a line Write got without its "\n" yet
	werr    error      // what TryWrite met, for FinishWrite to report

	closeOnce sync.Once
	closing   atomic.Bool                // Close is under way: charge no frames
	endOnce   sync.Once                  // client side
	ended     chan struct{}              // client side: closed when Read has failed for good
	tooBig    atomic.Bool                // the client sent a message over the limit
	goodbye   atomic.Pointer[closeFrame] // what Close says, if not 1000
}

// closeFrame is the status and reason of a close frame.
type closeFrame struct {
	code   websocket.StatusCode
	reason string
}

// ErrMessageTooBig is what Read and Write return, instead of the error
// they would otherwise report, once the client has sent a message over the
// limit; the connection has been closed with status 1009 (message too big).
var ErrMessageTooBig = errors.New("WebSocket message longer than the longest legal line")

// errStalled ends a dialled connection whose read deadline passed
// mid-message (the library cannot go on from there).
var errStalled = errors.New("WebSocket message stalled past the read deadline")

// ErrLineBreak is what Read returns for a message with a line break inside
// it (one trailing line ending is tolerated): the IRCv3 WebSocket
// specification carries one line per message, so the message is dropped
// whole rather than run as several lines. The connection stays usable.
var ErrLineBreak = errors.New("WebSocket message holds more than one line")

// ErrInvalidUTF8 is what Read returns, for good, once the client has sent a
// text message that is not UTF-8; Close then says 1007 (invalid frame
// payload data), as RFC 6455 asks. Binary messages may carry any bytes.
var ErrInvalidUTF8 = errors.New("WebSocket text message is not valid UTF-8")

// Message buffers are pooled: a connection holds one only while a
// message comes in or the session takes it in, so an idle one holds none.
var messagePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// putMessage gives a message buffer back. One grown for a long tagged
// line is left to the garbage collector, so the pool does not hoard them.
func putMessage(b *[]byte) {
	if cap(*b) <= maxPooledMessage {
		*b = (*b)[:0]
		messagePool.Put(b)
	}
}

// maxPooledMessage is the largest message buffer the pool takes back.
const maxPooledMessage = 1024

// newServerConn makes the server side of an upgraded connection, which
// reads its frames itself from cork; early is what the client sent right
// behind its upgrade request.
func newServerConn(cork *corkConn, early []byte, subprotocol string, remote, local net.Addr, maxMessage int) *conn {
	c := &conn{cork: cork, sock: cork, rsock: cork.inner(), early: early, remote: remote, local: local, maxMessage: maxMessage,
		msgType: websocket.MessageText, op: noFrame}
	if subprotocol == BinarySubprotocol {
		c.msgType = websocket.MessageBinary
	}
	return c
}

// newClientConn makes the client side of a connection, over the library.
func newClientConn(ws *websocket.Conn, sock net.Conn, remote, local net.Addr) *conn {
	c := &conn{ws: ws, sock: sock, remote: remote, local: local, msgType: websocket.MessageText,
		ended: make(chan struct{})}
	if ws.Subprotocol() == BinarySubprotocol {
		c.msgType = websocket.MessageBinary
	}
	ws.SetReadLimit(DefaultMaxMessage)
	return c
}

// Read returns the client's messages as lines.
func (c *conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	if len(c.pending) == 0 {
		if c.waiting() {
			// Wait for the client right here, in the socket's own Read,
			// not a few calls further down in read.go: an idle
			// connection's reader then parks on the smallest goroutine
			// stack (2 KiB), as a TCP session's does.
			n, err := c.rsock.Read(c.small[:])
			c.in0, c.in1 = 0, uint8(n)
			if n == 0 && err != nil {
				err = c.readError(err)
				c.rmu.Unlock()
				return 0, err
			}
		}
		if err := c.nextMessage(); err != nil {
			c.rmu.Unlock()
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		putMessage(c.pbuf)
		c.pending, c.pbuf = nil, nil
	}
	c.rmu.Unlock()
	return n, nil
}

// waiting reports whether the server side is between messages with
// nothing read: what is next is the socket's.
func (c *conn) waiting() bool {
	return c.ws == nil && c.rerr == nil && c.op == noFrame && c.msgOp == 0 && c.in0 == c.in1 && c.early == nil
}

// nextMessage takes in the next message as pending.
func (c *conn) nextMessage() error {
	switch {
	case c.ws != nil:
		return c.readMessage()
	case c.rerr != nil:
		return c.rerr
	}
	if err := c.readFrames(false); err != nil {
		return c.readError(err)
	}
	return nil
}

// readMessage takes in the next message as pending on the client side,
// through the library.
func (c *conn) readMessage() error {
	if f := c.goodbye.Load(); f != nil && f.code == websocket.StatusInvalidFramePayloadData {
		return ErrInvalidUTF8 // for good: the next message might not start at a character
	}
	typ, r, err := c.ws.Reader(context.Background())
	if err != nil {
		return c.readFailed(err, false)
	}
	bp := messagePool.Get().(*[]byte)
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			*bp = b
			putMessage(bp)
			return c.readFailed(err, true)
		}
	}
	b = trimLineEnding(b)
	if err := checkMessage(typ == websocket.MessageText, b); err != nil {
		if err == ErrInvalidUTF8 {
			c.goodbye.Store(&closeFrame{websocket.StatusInvalidFramePayloadData, "Invalid UTF-8 in a text message"})
		}
		*bp = b
		putMessage(bp)
		return err
	}
	b = append(b, '\r', '\n')
	*bp = b
	c.pending, c.pbuf = b, bp
	return nil
}

// checkMessage checks a message, its line ending trimmed. Either message
// type is accepted, whatever the subprotocol: being strict would only
// break clients. A text message must be UTF-8. The specification forbids
// line endings in a message; a client that ends its message with one
// anyway (some libraries append it) gets it tolerated, not doubled, but a
// line break inside is refused (ErrLineBreak).
func checkMessage(text bool, b []byte) error {
	switch {
	case text && !utf8.Valid(b):
		return ErrInvalidUTF8
	case bytes.ContainsAny(b, "\r\n"):
		return ErrLineBreak
	}
	return nil
}

// trimLineEnding drops one trailing "\r\n", "\n" or "\r".
func trimLineEnding(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// readFailed translates the library's read error (client side). Only a
// deadline passing between messages leaves the connection usable;
// anything else ends it.
func (c *conn) readFailed(err error, midMessage bool) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && !midMessage:
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = errStalled
		c.ws.CloseNow()
	case errors.Is(err, websocket.ErrMessageTooBig):
		// The library has answered with 1009.
		c.tooBig.Store(true)
		err = ErrMessageTooBig
	case c.tooBig.Load():
		err = ErrMessageTooBig // and the connection is gone since
	case websocket.CloseStatus(err) != -1:
		err = io.EOF // the client said goodbye, or answered ours
	case errors.Is(err, net.ErrClosed):
		err = net.ErrClosed
	}
	c.endOnce.Do(func() { close(c.ended) })
	return err
}

// endedTooBig reports whether the connection ended because the client
// sent a message over the limit; it is asked once a write has failed. On
// the server side that is recorded before the close frame goes out. On
// the client side the library answers such a message with its close frame
// before the Read that found it returns, so a writer can fail on the
// closed connection before Read has recorded why: wait for that Read,
// which is returning already. The wait is bounded in case the failure was
// something else and nobody is reading.
func (c *conn) endedTooBig() bool {
	if c.ws == nil {
		return c.tooBig.Load()
	}
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-c.ended:
	case <-t.C:
	}
	return c.tooBig.Load()
}

// Write sends each complete line in p as one message, all of them in one
// write to the socket (framed into the cork, holding its lock). A trailing partial line is kept until its end
// arrives. With the text subprotocol a line that is not valid UTF-8 (a
// TCP client's Latin-1, say) has the bad bytes replaced, since a text
// message must be UTF-8 and a browser drops the whole connection over one
// that is not.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var n int
	var err error
	if c.cork == nil {
		n, err = c.writeLines(p)
	} else {
		c.cork.mu.Lock()
		c.cork.corked = true
		n, err = c.writeLines(p)
		c.cork.mu.Unlock()
		if rerr := c.cork.release(); err == nil && rerr != nil {
			n, err = 0, rerr
		}
	}
	if err != nil && errors.Is(err, net.ErrClosed) && c.endedTooBig() {
		err = ErrMessageTooBig
	}
	return n, err
}

// CanTryWrite reports whether TryWrite can serve the connection: a
// server-side one over plain TCP.
func (c *conn) CanTryWrite() bool { return c.cork != nil && c.cork.tcp() != nil }

// TryWrite is Write without waiting. taken false says it wrote nothing,
// as another write holds the connection (the reader's pong to a client
// that does not read, say): use Write. Otherwise it framed all of p's
// lines and sent what the socket takes now; when done is false the rest
// stays in the cork, ahead of any pong or close frame sent meanwhile, and
// FinishWrite must send it (it may wait) before the next write. A failure
// is also left for FinishWrite to report, since finding out whether the
// client sent a message over the limit may take a moment.
func (c *conn) TryWrite(p []byte) (taken, done bool) {
	if !c.wmu.TryLock() {
		return false, false
	}
	defer c.wmu.Unlock()
	if !c.cork.mu.TryLock() {
		return false, false
	}
	defer c.cork.mu.Unlock()
	c.cork.corked = true
	_, err := c.writeLines(p)
	if err == nil {
		if done, err = c.cork.tryReleaseLocked(); err == nil {
			return true, done
		}
	}
	c.werr = err
	return true, false
}

// FinishWrite sends what TryWrite left in the cork, or reports what it met.
func (c *conn) FinishWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := c.cork.release()
	if c.werr != nil {
		err, c.werr = c.werr, nil
	}
	if err != nil && errors.Is(err, net.ErrClosed) && c.endedTooBig() {
		err = ErrMessageTooBig
	}
	return err
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
			var err error
			if c.cork != nil {
				err = c.cork.appendFrame(byte(c.msgType), line)
			} else {
				err = c.ws.Write(ctx, c.msgType, line)
			}
			if err != nil {
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

// Close says goodbye with a normal closure (status 1000), or with the
// status a refused message or flood called for, and waits for the
// client's answer, for at most closeWait: long enough that a shutdown,
// which waits for its sessions, has really said goodbye to every client
// that still listens, and short enough that one that stopped reading does
// not hold it up. Then the socket is closed, and a Read in progress
// returns.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		bye := closeFrame{code: websocket.StatusNormalClosure}
		if f := c.goodbye.Load(); f != nil {
			bye = *f
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if c.ws != nil {
				c.ws.Close(bye.code, bye.reason)
				return
			}
			c.closeHandshake(bye)
		}()
		t := time.NewTimer(closeWait)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
		// On the client side, not ws.CloseNow: with a Close under way it
		// only waits.
		if c.sock != nil {
			c.sock.Close()
		}
	})
	return nil
}

// closeHandshake sends the server's close frame, unless one went out
// already, and reads until the client's: in a Read under way, which
// holds rmu and finds it, or here once rmu is free, throwing away the
// messages that come first. A stream that cannot be followed is read
// until the client closes it.
func (c *conn) closeHandshake(bye closeFrame) {
	c.cork.writeControl(opClose, closePayload(bye.code, bye.reason))
	c.rmu.Lock()
	defer c.rmu.Unlock()
	// The wait has its own deadline: a read deadline that already passed
	// (a ping timeout closes the session) would end it at once. Close
	// shuts the socket at closeWait anyway.
	if c.sock != nil {
		c.sock.SetReadDeadline(time.Now().Add(closeWait))
	}
	switch c.op {
	case closedFrame:
	case brokenFrame:
		c.discard()
	default:
		if c.readFrames(true) == errProtocol {
			c.discard() // unread bytes would turn our close into a reset
		}
	}
	if c.rerr == nil {
		c.rerr = net.ErrClosed // the socket is closed next
	}
	c.dropMessage()
}

// Secure reports whether the client's connection is encrypted up to us:
// wss, or https to a trusted proxy that said so (X-Forwarded-Proto).
func (c *conn) Secure() bool { return c.secure }

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.SetReadDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error {
	if c.sock == nil {
		return nil
	}
	return c.sock.SetReadDeadline(t)
}

// SetWriteDeadline sets the socket's deadline, which cuts short a Write
// in flight too (the daemon does that to a slow consumer from another
// goroutine). On the client side it does nothing.
func (c *conn) SetWriteDeadline(t time.Time) error {
	if c.cork == nil {
		return nil
	}
	return c.cork.SetWriteDeadline(t)
}
