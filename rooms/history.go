package rooms

import "time"

// entry is one accepted message as the room keeps it.
type entry struct {
	at   time.Time
	line []byte // the encoded broadcast, shared with every member that got it
}

// ring keeps the last cap entries. It grows on demand so that a room with
// little traffic costs little memory. Owned by the room's actor.
type ring struct {
	buf   []entry
	start int // index of the oldest entry once the ring is full
	max   int
}

func (h *ring) add(e entry) {
	if h.max <= 0 {
		return
	}
	if len(h.buf) < h.max {
		h.buf = append(h.buf, e)
		return
	}
	h.buf[h.start] = e
	h.start = (h.start + 1) % h.max
}

func (h *ring) len() int { return len(h.buf) }

// last calls fn for the newest n entries, oldest first.
func (h *ring) last(n int, fn func(entry)) {
	if n > len(h.buf) {
		n = len(h.buf)
	}
	for i := len(h.buf) - n; i < len(h.buf); i++ {
		fn(h.buf[(h.start+i)%len(h.buf)])
	}
}
