package rooms

// History keeps the last events of a room, oldest first, and answers
// CHATHISTORY queries over them. It is the recent cache in front of a Log:
// Query says whether its answer is certain, or whether it reached the
// oldest event kept and the log must answer instead. Not safe for
// concurrent use: a room's History belongs to its actor.
//
// Messages have a ring of their own besides the ring of every event, so
// that joins and parts never push the messages a joiner is replayed out
// of memory.
type History struct {
	all, msgs ring
}

// NewHistory returns a history keeping at most max events and max
// messages, the whole history of a new target.
func NewHistory(max int) History {
	return History{all: ring{max: max, whole: true}, msgs: ring{max: max, whole: true}}
}

// Add appends e, dropping the oldest when full.
func (h *History) Add(e *Event) {
	h.all.add(e)
	if e.IsMessage() {
		h.msgs.add(e)
	}
}

// Warm replaces the rings with what a log holds: its newest events and its
// newest messages, oldest first; each whole when the log has no more.
func (h *History) Warm(events, msgs []*Event, wholeEvents, wholeMsgs bool) {
	h.all.warm(events, wholeEvents)
	h.msgs.warm(msgs, wholeMsgs)
}

// Len returns the number of events kept.
func (h *History) Len() int { return len(h.all.buf) }

// worthKeeping reports whether the history holds something people said
// or set (a message, a kept TAGMSG, a topic), or more than memory shows:
// then the room is remembered when it empties.
func (h *History) worthKeeping() bool {
	if !h.all.whole || !h.msgs.whole || len(h.msgs.buf) > 0 {
		return true
	}
	for _, e := range h.all.buf {
		if e.Command == "TAGMSG" || e.Command == "TOPIC" {
			return true
		}
	}
	return false
}

// Redact removes the event with msgid id and returns it, or nil.
func (h *History) Redact(id string) *Event {
	h.msgs.redact(id)
	return h.all.redact(id)
}

// Query answers q from memory. certain is false when the answer may lack
// events older than the ring (or the bound lies beyond it): then the log
// must answer.
func (h *History) Query(q Query) (events []*Event, certain bool) {
	if q.Events {
		return h.all.query(q)
	}
	return h.msgs.query(q)
}

// ring is a bounded run of the newest events of a target.
type ring struct {
	buf   []*Event
	start int // index of the oldest event once the ring is full
	max   int
	// whole says nothing older than the ring exists: the target is new,
	// or the log had fewer than the ring holds. Eviction clears it.
	whole bool
}

func (r *ring) add(e *Event) {
	if r.max <= 0 {
		r.whole = false
		return
	}
	if len(r.buf) < r.max {
		r.buf = append(r.buf, e)
		return
	}
	r.buf[r.start] = e
	r.start = (r.start + 1) % r.max
	r.whole = false
}

func (r *ring) warm(events []*Event, whole bool) {
	r.buf, r.start = nil, 0
	if n := len(events); n > r.max {
		events, whole = events[n-r.max:], false
	}
	r.buf = append(make([]*Event, 0, len(events)), events...)
	r.whole = whole && r.max > 0
}

// at returns the i-th oldest event.
func (r *ring) at(i int) *Event { return r.buf[(r.start+i)%len(r.buf)] }

func (r *ring) newest() *Event {
	if len(r.buf) == 0 {
		return nil
	}
	return r.at(len(r.buf) - 1)
}

func (r *ring) redact(id string) *Event {
	i := r.find(id)
	if i < 0 {
		return nil
	}
	e := r.at(i)
	out := make([]*Event, 0, len(r.buf))
	for j := range len(r.buf) {
		if j != i {
			out = append(out, r.at(j))
		}
	}
	r.buf, r.start = out, 0
	return e
}

// find returns the position of the event with msgid id, or -1.
func (r *ring) find(id string) int {
	for i := len(r.buf) - 1; i >= 0; i-- {
		if r.at(i).ID == id {
			return i
		}
	}
	return -1
}

func (r *ring) query(q Query) (events []*Event, certain bool) {
	n := len(r.buf)
	limit := max(q.Limit, 0)
	if !r.knows(q.A) || q.Sel == SelBetween && !r.knows(q.B) {
		return nil, r.whole // an unknown msgid selects nothing, if nothing is older
	}
	switch q.Sel {
	case SelLatest:
		if q.A.Unbounded() {
			return r.slice(n-limit, n), r.whole || n >= limit
		}
		_, after, in := r.pos(q.A)
		return r.slice(max(after, n-limit), n), r.whole || in
	case SelBefore:
		before, _, in := r.pos(q.A)
		return r.slice(before-limit, before), r.whole || in && before >= limit
	case SelAfter:
		_, after, in := r.pos(q.A)
		return r.slice(after, after+limit), r.whole || in
	case SelAround:
		before, _, in := r.pos(q.A)
		from := max(before-limit/2, 0)
		return r.slice(from, from+limit), r.whole || in && before >= limit/2
	case SelBetween:
		aBefore, aAfter, inA := r.pos(q.A)
		bBefore, bAfter, inB := r.pos(q.B)
		certain = r.whole || inA && inB
		if aBefore <= bBefore {
			return r.slice(aAfter, min(bBefore, aAfter+limit)), certain
		}
		return r.slice(max(bAfter, aBefore-limit), aBefore), certain
	}
	return nil, true
}

// knows reports whether b is not a msgid, or one the ring holds.
func (r *ring) knows(b Bound) bool { return b.ID == "" || r.find(b.ID) >= 0 }

// slice returns events [from, to) in order, clamped.
func (r *ring) slice(from, to int) []*Event {
	from, to = max(from, 0), min(to, len(r.buf))
	if from >= to {
		return nil
	}
	out := make([]*Event, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, r.at(i))
	}
	return out
}

// pos resolves b: before is how many events lie strictly before the
// bound, after how many lie at or before it. in says the bound lies
// inside the ring, so that nothing beyond it could change the answer near
// it. A msgid bound must be known (see knows).
func (r *ring) pos(b Bound) (before, after int, in bool) {
	if b.ID != "" {
		i := r.find(b.ID)
		return i, i + 1, true
	}
	n := len(r.buf)
	in = n > 0 && r.at(0).At.Before(b.At)
	for i := range n {
		at := r.at(i).At
		if at.Before(b.At) {
			before++
		}
		if !at.After(b.At) {
			after++
		}
	}
	return before, after, in
}
