package rooms

// History keeps the last events of a room or a private conversation, oldest
// first, and answers CHATHISTORY queries over them. It grows on demand, so
// a quiet room costs little. Not safe for concurrent use: a room's History
// belongs to its actor.
//
// In front of a Log, History is the recent cache: Query says whether its
// answer is certain, or whether it reached the oldest event kept and the
// log must answer instead.
type History struct {
	buf   []*Event
	start int // index of the oldest event once the ring is full
	max   int
	// whole says nothing older than the ring exists: the target is new,
	// or the log had fewer events than the ring holds. Eviction clears it.
	whole bool
}

// NewHistory returns a history keeping at most max events, the whole
// history of a new target.
func NewHistory(max int) History { return History{max: max, whole: true} }

// Add appends e, dropping the oldest event when full.
func (h *History) Add(e *Event) {
	if h.max <= 0 {
		h.whole = false
		return
	}
	if len(h.buf) < h.max {
		h.buf = append(h.buf, e)
		return
	}
	h.buf[h.start] = e
	h.start = (h.start + 1) % h.max
	h.whole = false
}

// Warm replaces the ring with events loaded from a log, oldest first;
// whole says the log holds nothing older.
func (h *History) Warm(events []*Event, whole bool) {
	h.buf, h.start, h.whole = nil, 0, whole
	if n := len(events); n > h.max {
		events, h.whole = events[n-h.max:], false
	}
	for _, e := range events {
		h.Add(e)
	}
	h.whole = whole && len(events) <= h.max
}

// Len returns the number of events kept.
func (h *History) Len() int { return len(h.buf) }

// at returns the i-th oldest event.
func (h *History) at(i int) *Event { return h.buf[(h.start+i)%len(h.buf)] }

// Newest returns the newest event, or nil.
func (h *History) Newest() *Event {
	if len(h.buf) == 0 {
		return nil
	}
	return h.at(len(h.buf) - 1)
}

// Redact removes the event with msgid id and returns it, or nil.
func (h *History) Redact(id string) *Event {
	for i := len(h.buf) - 1; i >= 0; i-- {
		if e := h.at(i); e.ID == id {
			out := make([]*Event, 0, len(h.buf))
			for j := range len(h.buf) {
				if j != i {
					out = append(out, h.at(j))
				}
			}
			h.buf, h.start = out, 0
			return e
		}
	}
	return nil
}

// Query answers q from the ring. certain is false when the answer may lack
// events older than the ring (or the bound lies beyond it): then the log
// must answer.
func (h *History) Query(q Query) (events []*Event, certain bool) {
	v := h.view(q)
	n := len(v)
	limit := max(q.Limit, 0)
	if !h.knows(q.A) || q.Sel == SelBetween && !h.knows(q.B) {
		return nil, h.whole // an unknown msgid selects nothing, if nothing is older
	}
	switch q.Sel {
	case SelLatest:
		if q.A.Unbounded() {
			return h.pick(v, n-limit, n), h.whole || n >= limit
		}
		_, after, in := h.pos(v, q.A)
		return h.pick(v, max(after, n-limit), n), h.whole || in
	case SelBefore:
		before, _, in := h.pos(v, q.A)
		return h.pick(v, before-limit, before), h.whole || in && before >= limit
	case SelAfter:
		_, after, in := h.pos(v, q.A)
		return h.pick(v, after, after+limit), h.whole || in
	case SelAround:
		before, _, in := h.pos(v, q.A)
		from := max(before-limit/2, 0)
		return h.pick(v, from, from+limit), h.whole || in && before >= limit/2
	case SelBetween:
		aBefore, aAfter, inA := h.pos(v, q.A)
		bBefore, bAfter, inB := h.pos(v, q.B)
		certain = h.whole || inA && inB
		if aBefore <= bBefore {
			return h.pick(v, aAfter, min(bBefore, aAfter+limit)), certain
		}
		return h.pick(v, max(bAfter, aBefore-limit), aBefore), certain
	}
	return nil, true
}

// view lists the ring positions of the events q selects, oldest first.
func (h *History) view(q Query) []int {
	v := make([]int, 0, len(h.buf))
	for i := range len(h.buf) {
		if q.Matches(h.at(i)) {
			v = append(v, i)
		}
	}
	return v
}

// pick returns the events at view positions [from, to), clamped.
func (h *History) pick(v []int, from, to int) []*Event {
	from, to = max(from, 0), min(to, len(v))
	if from >= to {
		return nil
	}
	out := make([]*Event, 0, to-from)
	for _, i := range v[from:to] {
		out = append(out, h.at(i))
	}
	return out
}

// pos resolves b against view v: before is how many selected events lie
// strictly before the bound, after how many lie at or before it. in says
// the bound lies inside the ring, so that nothing beyond the ring could
// change the answer near it. An unknown msgid resolves past the end
// (selecting nothing), inside only if the ring is the whole history.
func (h *History) pos(v []int, b Bound) (before, after int, in bool) {
	n := len(h.buf)
	if b.ID != "" {
		for i := n - 1; i >= 0; i-- {
			if h.at(i).ID == b.ID {
				before = countBelow(v, i)
				after = before
				if after < len(v) && v[after] == i {
					after++
				}
				return before, after, true
			}
		}
		return len(v), len(v), false
	}
	in = n > 0 && h.at(0).At.Before(b.At)
	for _, i := range v {
		at := h.at(i).At
		if at.Before(b.At) {
			before++
		}
		if !at.After(b.At) {
			after++
		}
	}
	return before, after, in
}

// knows reports whether b is not a msgid, or one the ring holds.
func (h *History) knows(b Bound) bool {
	if b.ID == "" {
		return true
	}
	for i := len(h.buf) - 1; i >= 0; i-- {
		if h.at(i).ID == b.ID {
			return true
		}
	}
	return false
}

// countBelow counts the view positions below ring position i.
func countBelow(v []int, i int) int {
	n := 0
	for n < len(v) && v[n] < i {
		n++
	}
	return n
}
