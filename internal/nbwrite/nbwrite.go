// Package nbwrite writes to a TCP socket without waiting: what the
// socket's buffer takes now, and no more. A few shared writer goroutines
// serve many connections with it, and none of them may wait on one slow
// client (daemon/writers.go).
package nbwrite

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// state is one write's, pooled so that a write allocates no closure.
type state struct {
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

var states = sync.Pool{New: func() any { s := new(state); s.fn = s.write; return s }}

func (s *state) write(fd uintptr) bool {
	for s.n < len(s.buf) {
		n, err := syscall.Write(int(fd), s.buf[s.n:])
		if n > 0 {
			s.n += n
		}
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return true // full: the caller keeps the rest
		case err != nil:
			s.err = err
			return true
		case n == 0:
			s.err = syscall.EIO
			return true
		}
	}
	return true
}

// Write writes as much of b to c as its socket buffer takes now and
// returns how much that was. It never waits, and ignores (and clears) a
// write deadline that has passed: a blocking write left it behind, and
// this write cannot block.
func Write(c *net.TCPConn, b []byte) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	s := states.Get().(*state)
	s.buf, s.n, s.err = b, 0, nil
	err = rc.Write(s.fn)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.SetWriteDeadline(time.Time{})
		err = rc.Write(s.fn)
	}
	n := s.n
	if err == nil {
		err = s.err
	}
	s.buf, s.err = nil, nil
	states.Put(s)
	return n, err
}
