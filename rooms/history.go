package rooms

import (
	"sort"
	"time"
)

// History keeps the last events of a room or a private conversation, oldest
// first, and answers CHATHISTORY queries over them. It grows on demand, so
// a quiet room costs little. Not safe for concurrent use: a room's History
// belongs to its actor.
type History struct {
	buf   []*Event
	start int // index of the oldest event once the ring is full
	max   int
}

// NewHistory returns a history keeping at most max events.
func NewHistory(max int) History { return History{max: max} }

// Add appends e, dropping the oldest event when full.
func (h *History) Add(e *Event) {
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

// Len returns the number of events kept.
func (h *History) Len() int { return len(h.buf) }

// at returns the i-th oldest event.
func (h *History) at(i int) *Event { return h.buf[(h.start+i)%len(h.buf)] }

// slice returns events [from, to) in order, clamped to what is kept.
func (h *History) slice(from, to int) []*Event {
	from, to = max(from, 0), min(to, len(h.buf))
	if from >= to {
		return nil
	}
	out := make([]*Event, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, h.at(i))
	}
	return out
}

// Newest returns the newest event, or nil.
func (h *History) Newest() *Event {
	if len(h.buf) == 0 {
		return nil
	}
	return h.at(len(h.buf) - 1)
}

// Bound is one end of a history query: a message id, a time, or neither
// ("*", meaning unbounded).
type Bound struct {
	ID string
	At time.Time
}

// Unbounded reports whether b is "*".
func (b Bound) Unbounded() bool { return b.ID == "" && b.At.IsZero() }

// pos resolves b to a position in the history. before is the number of
// events strictly before the bound; after is the index of the first event
// strictly after it. ok is false for an unknown message id.
func (h *History) pos(b Bound) (before, after int, ok bool) {
	n := len(h.buf)
	if b.ID != "" {
		for i := n - 1; i >= 0; i-- {
			if h.at(i).ID == b.ID {
				return i, i + 1, true
			}
		}
		return 0, 0, false
	}
	before = sort.Search(n, func(i int) bool { return !h.at(i).At.Before(b.At) })
	after = sort.Search(n, func(i int) bool { return h.at(i).At.After(b.At) })
	return before, after, true
}

// Latest returns up to limit of the newest events, only those after b
// unless b is unbounded.
func (h *History) Latest(b Bound, limit int) []*Event {
	from := 0
	if !b.Unbounded() {
		_, after, ok := h.pos(b)
		if !ok {
			return nil
		}
		from = after
	}
	return h.slice(max(from, len(h.buf)-limit), len(h.buf))
}

// Before returns up to limit events just before b, oldest first.
func (h *History) Before(b Bound, limit int) []*Event {
	before, _, ok := h.pos(b)
	if !ok {
		return nil
	}
	return h.slice(before-limit, before)
}

// After returns up to limit events just after b, oldest first.
func (h *History) After(b Bound, limit int) []*Event {
	_, after, ok := h.pos(b)
	if !ok {
		return nil
	}
	return h.slice(after, after+limit)
}

// Around returns up to limit events centred on b, oldest first.
func (h *History) Around(b Bound, limit int) []*Event {
	before, _, ok := h.pos(b)
	if !ok {
		return nil
	}
	from := max(before-limit/2, 0)
	return h.slice(from, from+limit)
}

// Between returns up to limit events strictly between a and b, oldest
// first. When a is later than b the limit counts back from a, as
// CHATHISTORY BETWEEN specifies.
func (h *History) Between(a, b Bound, limit int) []*Event {
	aBefore, aAfter, okA := h.pos(a)
	bBefore, bAfter, okB := h.pos(b)
	if !okA || !okB {
		return nil
	}
	if aBefore <= bBefore {
		return h.slice(aAfter, min(bBefore, aAfter+limit))
	}
	return h.slice(max(bAfter, aBefore-limit), aBefore)
}
