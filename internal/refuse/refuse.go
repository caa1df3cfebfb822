// Package refuse tells connections a server turns away why, then closes
// them, without holding up the accept loop that found them.
package refuse

import (
	"io"
	"net"
	"time"
)

const (
	// timeout bounds delivering one refusal, TLS handshake included.
	timeout = 3 * time.Second
	// drain is how much of what a refused client already sent is read and
	// thrown away before closing; see Refuse.
	drain = 4096
)

// Refuser delivers refusals in the background, a bounded number at once.
type Refuser struct {
	busy chan struct{} // semaphore: refusals being delivered
}

// New returns a Refuser that delivers at most maxBusy refusals at once;
// past that a refused connection is closed without a word, which is all
// a flood deserves.
func New(maxBusy int) *Refuser {
	return &Refuser{busy: make(chan struct{}, maxBusy)}
}

// Refuse writes msg to conn and closes it, on another goroutine: a TLS
// client must finish a handshake before it can read anything, and one that
// never does would otherwise stall every connection queued behind it.
func (r *Refuser) Refuse(conn net.Conn, msg []byte) { r.refuse(conn, msg, false) }

// RefuseRequest is Refuse for a protocol where the client speaks first,
// HTTP: msg is written once the client has sent something (or the time is
// up), since an HTTP client may take an answer that comes before its
// request for garbage.
func (r *Refuser) RefuseRequest(conn net.Conn, msg []byte) { r.refuse(conn, msg, true) }

func (r *Refuser) refuse(conn net.Conn, msg []byte, afterInput bool) {
	select {
	case r.busy <- struct{}{}:
	default:
		conn.Close()
		return
	}
	go func() {
		defer func() { <-r.busy }()
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(timeout))
		if afterInput {
			if _, err := conn.Read(make([]byte, drain)); err != nil {
				return
			}
		}
		if _, err := conn.Write(msg); err != nil {
			return
		}
		// Closing a socket with unread input makes the kernel send RST,
		// which can destroy the message before the client reads it. So
		// half-close, and read what the client sent until it closes too
		// (bounded in bytes and by the deadline).
		if cw, ok := conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			io.Copy(io.Discard, io.LimitReader(conn, drain))
		}
	}()
}
