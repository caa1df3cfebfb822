package wslisten

import (
	"crypto/tls"
	"net"
	"sync"

	"github.com/livechat/livechat/internal/nbwrite"
)

// corkConn is the socket under a server-side WebSocket. The WebSocket
// library flushes every message with its own write; while corked those
// writes collect here, and release sends them in one. So a burst of lines
// that the daemon coalesced into one write stays one write syscall (one
// TLS record run) instead of one per line: half the CPU per delivered
// line in a busy room (docs/BENCHMARKS.md).
//
// The daemon's messages do not go through the library at all: appendFrame
// frames them into the cork buffer itself. The library's per-message
// locking and buffering were a fifth of WebSocket fan-out CPU
// (docs/BENCHMARKS.md, "Delivery CPU"). The library still writes its
// control frames (pongs, close) through Write.
type corkConn struct {
	net.Conn
	mu     sync.Mutex // orders our writes with the library's own (pongs, close)
	corked bool
	buf    []byte
	// framing is set once the upgrade is done: from then on every Write
	// of the library is one whole control frame, and closeSent records
	// a close frame going by, after which no data frame may follow.
	framing   bool
	closeSent bool
}

// Cork buffers are pooled: a connection holds one only while it writes,
// so an idle one holds none. maxCorkBuf keeps a rare huge burst's buffer
// out of the pool.
var corkPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxCorkBuf = 64 << 10

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.framing && len(p) > 0 && p[0]&0x0f == opClose {
		c.closeSent = true
	}
	if c.corked {
		if c.buf == nil {
			c.buf = *corkPool.Get().(*[]byte)
		}
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// opClose is the close frame's opcode (RFC 6455 5.2).
const opClose = 0x8

// startFraming is called once the upgrade is done (see framing).
func (c *corkConn) startFraming() {
	c.mu.Lock()
	c.framing = true
	c.mu.Unlock()
}

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
	b := append(c.buf, 0x80|typ) // FIN
	switch n := len(p); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	c.buf = append(b, p...)
	return nil
}

// tcp returns the plain TCP socket under the cork, or nil (TLS).
func (c *corkConn) tcp() *net.TCPConn {
	inner := c.Conn
	if a, ok := inner.(*admittedConn); ok {
		inner = a.Conn
	}
	t, _ := inner.(*net.TCPConn)
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
	inner := c.Conn
	if a, ok := inner.(*admittedConn); ok {
		inner = a.Conn
	}
	_, ok := inner.(*tls.Conn)
	return ok
}
