package wslisten

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livechat/livechat/internal/nbwrite"
)

// corkConn is the socket under a server-side WebSocket. While corked,
// the frames of the daemon's lines collect in its buffer (appendFrame),
// and release sends them in one write: a burst of lines that the daemon
// coalesced into one write stays one write syscall (one TLS record run)
// instead of one per line, half the CPU per delivered line in a busy room
// (docs/BENCHMARKS.md). Framing here rather than through the WebSocket
// library also saves its per-message locking and buffering, a fifth of
// WebSocket fan-out CPU ("Delivery CPU"). The reader's pongs and the
// close frames go through writeControl, in order with the lines.
type corkConn struct {
	net.Conn
	mu        sync.Mutex // orders the daemon's writes with the reader's (pongs, close)
	corked    bool
	buf       []byte
	closeSent bool // no frame may follow a close frame
	// deadline is the daemon's write deadline (unix nanos, 0 for none),
	// which writeControl puts back after its own.
	deadline atomic.Int64
}

// SetWriteDeadline sets the daemon's write deadline on the socket. Not
// under mu: the daemon uses it to cut short a write in flight.
func (c *corkConn) SetWriteDeadline(t time.Time) error {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	c.deadline.Store(n)
	return c.Conn.SetWriteDeadline(t)
}

// Cork buffers are pooled: a connection holds one only while it writes,
// so an idle one holds none. maxCorkBuf keeps a rare huge burst's buffer
// out of the pool.
var corkPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxCorkBuf = 64 << 10

// appendFrame adds p as one unfragmented data message of type typ
// (websocket.MessageText or MessageBinary, which are the opcodes) to
// what the cork collects. A server's frames are not masked. It fails
// once a close frame has gone out. Call it corked, holding mu.
func (c *corkConn) appendFrame(typ byte, p []byte) error {
	if c.closeSent {
		return net.ErrClosed
	}
	if c.buf == nil {
		c.buf = *corkPool.Get().(*[]byte)
	}
	c.buf = appendFrame(c.buf, typ, p)
	return nil
}

// appendFrame appends p to b as one final, unmasked frame (a server's)
// with opcode op.
func appendFrame(b []byte, op byte, p []byte) []byte {
	b = append(b, 0x80|op) // FIN
	switch n := len(p); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, p...)
}

// writeControl sends a control frame: into the cork if corked, behind the
// lines a write left there for its release to send, else at once,
// between two of the daemon's writes. Nothing goes out after a close
// frame (net.ErrClosed). A write that the client does not take within
// controlWriteTimeout closes the socket: it holds the session's reader
// (pongs to a client that sends pings and never reads), which no read
// deadline can free, and the daemon's write deadlines are the writer's.
func (c *corkConn) writeControl(op byte, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	if op == opClose {
		c.closeSent = true
	}
	if c.corked {
		if c.buf == nil {
			c.buf = *corkPool.Get().(*[]byte)
		}
		c.buf = appendFrame(c.buf, op, p)
		return nil
	}
	// Its own deadline: the one the daemon's last write left on the
	// socket may have passed long ago, and would fail the frame at once
	// (and, on TLS, every write after it). The timer bounds it even if the
	// daemon clears the deadline meanwhile.
	t := time.AfterFunc(controlWriteTimeout, func() { c.Conn.Close() })
	c.Conn.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
	_, err := c.Conn.Write(appendFrame(make([]byte, 0, 2+len(p)), op, p))
	t.Stop()
	var restore time.Time
	if n := c.deadline.Load(); n != 0 {
		restore = time.Unix(0, n)
	}
	c.Conn.SetWriteDeadline(restore)
	return err
}

// controlWriteTimeout bounds writeControl, as the library's 5 seconds did.
var controlWriteTimeout = 5 * time.Second

// inner is the socket under the cork and admittedConn: the *net.TCPConn
// or *tls.Conn.
func (c *corkConn) inner() net.Conn {
	if a, ok := c.Conn.(*admittedConn); ok {
		return a.Conn
	}
	return c.Conn
}

// tcp returns the plain TCP socket under the cork, or nil (TLS).
func (c *corkConn) tcp() *net.TCPConn {
	t, _ := c.inner().(*net.TCPConn)
	return t
}

// tryReleaseLocked is release without waiting, holding mu: it writes
// what the socket takes now and reports whether that was all. If not, the
// cork stays on with the rest, and only release may take it off.
func (c *corkConn) tryReleaseLocked() (bool, error) {
	if c.buf == nil {
		c.corked = false
		return true, nil
	}
	n, err := nbwrite.Write(c.tcp(), c.buf)
	if err == nil && n < len(c.buf) {
		c.buf = c.buf[:copy(c.buf, c.buf[n:])]
		return false, nil
	}
	c.corked = false
	c.putBuf()
	return err == nil, err
}

// putBuf gives the cork buffer back.
func (c *corkConn) putBuf() {
	if cap(c.buf) <= maxCorkBuf {
		b := c.buf[:0]
		corkPool.Put(&b)
	}
	c.buf = nil
}

// release writes what collected while corked.
func (c *corkConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if c.buf == nil {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.putBuf()
	return err
}

// isTLS reports whether the socket is this listener's TLS. (net/http
// cannot tell: it looks for a *tls.Conn, and sees the corkConn.)
func (c *corkConn) isTLS() bool {
	_, ok := c.inner().(*tls.Conn)
	return ok
}
