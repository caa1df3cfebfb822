package daemon

import (
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/livechat/livechat/internal/nbwrite"
)

// Shared writers. At low rates a session's output is a line now and then,
// and starting a goroutine to write each one cost more than the write
// itself (docs/BENCHMARKS.md, "Delivery CPU"). Sessions on plain TCP
// (WebSocket over it too) therefore hand "I have output" to a small fixed
// set of writer goroutines, one per CPU, so one wake-up serves many
// sessions.
//
// A shared writer must never wait on one client: it writes without
// blocking (nbwrite: what the socket takes now, no deadline), and a
// session whose socket takes less than it was given keeps the rest and
// goes back to a goroutine of its own (writeLoop), which waits for that
// client alone. Only one writer works for a session at a time (the
// session's writing flag), so its order holds across the hand-over.
type writerPool struct {
	mu      sync.Mutex
	cond    sync.Cond
	queue   []*Session // sessions with output, each at most once, from head on
	head    int
	waiting int // writers parked in cond.Wait
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
	wake := p.waiting > 0 && len(p.queue)-p.head == 1
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
	var mine []*Session
	for {
		p.mu.Lock()
		for p.head == len(p.queue) {
			p.waiting++
			p.cond.Wait()
			p.waiting--
		}
		// The oldest chunk; what is left is for the next writer.
		end := min(p.head+writerChunk, len(p.queue))
		mine = append(mine[:0], p.queue[p.head:end]...)
		clear(p.queue[p.head:end])
		p.head = end
		switch {
		case p.head == len(p.queue):
			p.queue, p.head = p.queue[:0], 0
		case p.head > len(p.queue)/2:
			// A queue never empty under load must not grow for ever.
			n := copy(p.queue, p.queue[p.head:])
			clear(p.queue[n:])
			p.queue, p.head = p.queue[:n], 0
		}
		if p.head < len(p.queue) && p.waiting > 0 {
			p.cond.Signal()
		}
		p.mu.Unlock()
		for i, s := range mine {
			s.writeShared()
			mine[i] = nil
		}
	}
}

// tryWriter is a connection other than plain TCP that can write without
// waiting (a WebSocket over plain TCP: wslisten). TryWrite takes all of p
// or, when something else holds the connection, none; when it took p but
// is not done, some of it is still inside the connection and FinishWrite,
// which may wait, must send it (or report the write's error) before
// anything else.
type tryWriter interface {
	CanTryWrite() bool
	TryWrite(p []byte) (taken, done bool)
	FinishWrite() error
}

// sharedCapable reports whether the shared writers can serve the
// session's connection. TLS writes through a layer that may block, so a
// TLS session keeps a writer goroutine of its own.
func (s *Session) sharedCapable() bool {
	switch c := s.conn.(type) {
	case *net.TCPConn:
		return true
	case tryWriter:
		return c.CanTryWrite()
	}
	return false
}

// tryWrite writes buf without waiting. pending reports that some of it
// could not go yet: the session's own writer must finish it
// (finishPending) before writing anything else.
func (s *Session) tryWrite(buf []byte) (pending bool, err error) {
	switch c := s.conn.(type) {
	case *net.TCPConn:
		n, err := nbwrite.Write(c, buf)
		if err == nil && n < len(buf) {
			s.keepUnsent(buf[n:])
			return true, nil
		}
		return false, err
	case tryWriter:
		taken, done := c.TryWrite(buf)
		if !taken {
			s.keepUnsent(buf)
			return true, nil
		}
		s.connPending = !done
		return s.connPending, nil
	}
	panic("daemon: tryWrite on a connection the shared writers cannot serve")
}

// keepUnsent copies what a shared writer could not write for the
// session's own writer.
func (s *Session) keepUnsent(b []byte) {
	u := append([]byte(nil), b...)
	s.unsent = &u
}

func (s *Session) unsentLen() int {
	if s.unsent == nil {
		return 0
	}
	return len(*s.unsent)
}

// finishPending sends what a shared writer left behind, waiting for the
// client as long as timeout.
func (s *Session) finishPending(timeout time.Duration) error {
	if s.unsent == nil && !s.connPending {
		return nil
	}
	s.conn.SetWriteDeadline(time.Now().Add(timeout))
	var err error
	if s.connPending {
		err = s.conn.(tryWriter).FinishWrite()
		s.connPending = false
	}
	if s.unsent != nil {
		_, err = s.conn.Write(*s.unsent)
		if err == nil {
			s.srv.metrics.bytesWritten.Add(float64(len(*s.unsent)))
		}
		s.unsent = nil
	}
	return err
}

// writeShared writes what s has queued without blocking, on a shared
// writer. s.writing is set and stays set until the queue is empty, so
// nobody else writes for s meanwhile.
func (s *Session) writeShared() {
	s.outMu.Lock()
	if len(s.out) == 0 && !s.closing || s.closed {
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
	batch := s.out
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
	pending, err := s.tryWrite(buf)
	clear(batch)
	if err == nil {
		// What went out as rendered: a person's line may render longer
		// than it was queued, and a counter must never be given less.
		s.srv.metrics.bytesWritten.Add(float64(len(buf) - s.unsentLen()))
	}
	s.outMu.Lock()
	s.spare = batch[:0]
	switch {
	case err != nil:
		if s.writeFailedLocked(err) {
			// Not on a shared writer: closing a WebSocket waits for the
			// client's goodbye.
			go s.conn.Close()
		}
	case pending:
		// The client is behind: the rest goes to a goroutine that may
		// wait for it. It counts against the send queue no more (as a
		// batch taken by writeLoop does not).
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
