package daemon

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Shared writers. At low rates a session's output is a line now and then,
// and starting a goroutine to write each one cost more than the write
// itself (docs/BENCHMARKS.md, "Delivery CPU"). Plain TCP sessions
// therefore hand "I have output" to a small fixed set of writer
// goroutines, one per CPU, so one wake-up serves many sessions.
//
// A shared writer must never wait on one client: it writes without
// blocking (a raw write on the non-blocking socket, no deadline), and a
// session whose socket takes less than it was given keeps the rest and
// goes back to a goroutine of its own (writeLoop), which waits for that
// client alone. Only one writer works for a session at a time (the
// session's writing flag), so its order holds across the hand-over.
type writerPool struct {
	mu      sync.Mutex
	cond    sync.Cond
	queue   []*Session // sessions with output, each at most once
	next    []*Session // the other half of queue, reused
	waiting int        // writers parked in cond.Wait
}

var (
	writersOnce sync.Once
	writers     writerPool
)

// writerChunk is how many sessions a writer takes at once: enough that
// taking them is cheap, few enough that the other writers share a big
// room's flush.
const writerChunk = 64

// schedule queues s, which has output and its writing flag set.
func (p *writerPool) schedule(s *Session) {
	writersOnce.Do(p.start)
	p.mu.Lock()
	p.queue = append(p.queue, s)
	wake := p.waiting > 0 && len(p.queue) == 1
	p.mu.Unlock()
	if wake {
		p.cond.Signal()
	}
}

func (p *writerPool) start() {
	p.cond.L = &p.mu
	for range runtime.GOMAXPROCS(0) {
		go p.run()
	}
}

func (p *writerPool) run() {
	var w sharedWriter
	w.fn = w.write
	var mine []*Session
	for {
		p.mu.Lock()
		for len(p.queue) == 0 {
			p.waiting++
			p.cond.Wait()
			p.waiting--
		}
		if len(p.queue) <= writerChunk {
			mine = append(mine[:0], p.queue...)
			clear(p.queue)
			p.queue = p.queue[:0]
		} else {
			// The oldest chunk; the rest for the next writer.
			mine = append(mine[:0], p.queue[:writerChunk]...)
			p.next = append(p.next[:0], p.queue[writerChunk:]...)
			clear(p.queue)
			p.queue, p.next = p.next, p.queue[:0]
			if p.waiting > 0 {
				p.cond.Signal()
			}
		}
		p.mu.Unlock()
		for i, s := range mine {
			s.writeShared(&w)
			mine[i] = nil
		}
	}
}

// sharedWriter is one writer goroutine's state for raw writes, kept so
// that a write allocates no closure.
type sharedWriter struct {
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

func (w *sharedWriter) write(fd uintptr) bool {
	for w.n < len(w.buf) {
		n, err := syscall.Write(int(fd), w.buf[w.n:])
		if n > 0 {
			w.n += n
		}
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			return true // full: the rest goes to the session's own writer
		}
		if err != nil {
			w.err = err
			return true
		}
		if n == 0 {
			w.err = syscall.EIO
			return true
		}
	}
	return true
}

// tryWrite writes as much of buf to c as the socket takes now, and
// returns how much that was.
func (w *sharedWriter) tryWrite(c *net.TCPConn, buf []byte) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	w.buf, w.n, w.err = buf, 0, nil
	if err := rc.Write(w.fn); err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, err
		}
		// The deadline a blocking write left behind has passed; a raw
		// write checks it first. This one cannot block: clear it.
		c.SetWriteDeadline(time.Time{})
		if err := rc.Write(w.fn); err != nil {
			return 0, err
		}
	}
	n, err := w.n, w.err
	w.buf, w.err = nil, nil
	return n, err
}

// sharedConn returns the session's socket when the shared writers can
// serve it: plain TCP. TLS and WebSocket connections write through layers
// that block, so they keep a writer goroutine of their own.
func (s *Session) sharedConn() *net.TCPConn {
	c, _ := s.conn.(*net.TCPConn)
	return c
}

// writeShared writes what s has queued without blocking, on a shared
// writer. s.writing is set and stays set until the queue is empty, so
// nobody else writes for s meanwhile.
func (s *Session) writeShared(w *sharedWriter) {
	s.outMu.Lock()
	if len(s.out) == 0 || s.closed {
		s.finishWritingLocked()
		return
	}
	if s.closing || s.outBytes > coalesceSize {
		// A closing session's last words wait for the client (up to
		// closeTimeout), and a big backlog is a busy or slow client:
		// either way, its own goroutine.
		s.outMu.Unlock()
		go s.writeLoop()
		return
	}
	batch, total := s.out, s.outBytes
	s.out, s.spare = s.spare, nil
	s.outBytes, s.replyBytes = 0, 0
	s.wakePacerLocked()
	s.outMu.Unlock()

	var bp *[]byte
	buf := batch[0]
	if len(batch) > 1 || s.mode.Load() != 0 {
		bp = coalescePool.Get().(*[]byte)
		buf = s.render((*bp)[:0], batch)
	}
	n, err := w.tryWrite(s.sharedConn(), buf)
	clear(batch)
	if n == len(buf) {
		s.srv.metrics.bytesWritten.Add(float64(total))
	} else if n > 0 {
		s.srv.metrics.bytesWritten.Add(float64(n))
	}
	s.outMu.Lock()
	s.spare = batch[:0]
	switch {
	case err != nil:
		if !s.closed {
			s.closed, s.closing = true, true
			if s.reason == "" {
				s.reason = writeErrorReason(err)
			}
			s.outMu.Unlock()
			s.conn.Close()
			s.outMu.Lock()
		}
	case n < len(buf):
		// The client is behind: keep the rest for a goroutine that may
		// wait for it. It counts against the send queue no more (as a
		// batch taken by writeLoop does not).
		s.unsent = append(s.unsent[:0], buf[n:]...)
		s.outMu.Unlock()
		putCoalesce(bp, buf)
		go s.writeLoop()
		return
	}
	putCoalesce(bp, buf)
	if len(s.out) > 0 && !s.closed {
		s.outMu.Unlock()
		writers.schedule(s) // more came meanwhile: back of the line
		return
	}
	s.finishWritingLocked()
}

// putCoalesce returns a coalescing buffer to its pool; bp nil is none.
func putCoalesce(bp *[]byte, buf []byte) {
	if bp != nil && cap(buf) <= 4*coalesceSize {
		*bp = buf[:0]
		coalescePool.Put(bp)
	}
}
