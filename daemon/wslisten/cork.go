package wslisten

import (
	"crypto/tls"
	"net"
	"sync"
)

// corkConn is the socket under a server-side WebSocket. The WebSocket
// library flushes every message with its own write; while corked those
// writes collect here, and release sends them in one. So a burst of lines
// that the daemon coalesced into one write stays one write syscall (one
// TLS record run) instead of one per line: half the CPU per delivered
// line in a busy room (docs/BENCHMARKS.md).
type corkConn struct {
	net.Conn
	mu     sync.Mutex // orders our writes with the library's own (pongs, close)
	corked bool
	buf    []byte
}

// Cork buffers are pooled: a connection holds one only while it writes,
// so an idle one holds none. maxCorkBuf keeps a rare huge burst's buffer
// out of the pool.
var corkPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxCorkBuf = 64 << 10

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		if c.buf == nil {
			c.buf = *corkPool.Get().(*[]byte)
		}
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
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
	if cap(c.buf) <= maxCorkBuf {
		b := c.buf[:0]
		corkPool.Put(&b)
	}
	c.buf = nil
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
