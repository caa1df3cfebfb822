package rooms

import "time"

// History keeps the last events of a room, oldest first, and answers
// CHATHISTORY queries over them. It is the recent cache in front of a Log:
// Query says whether its answer is certain, or whether it reached the
// oldest event kept and the log must answer instead. Not safe for
// concurrent use: a room's History belongs to its actor.
//
// Messages have a ring of their own besides the ring of every event, so
// that joins and parts never push the messages a joiner is replayed out
// of memory. Entries carry a sequence number in append order, so that a
// msgid bound naming a join still places a messages-only query.
type History struct {
	all, msgs ring
	next      uint64 // sequence number of the next event
}

// NewHistory returns a history keeping at most max events and max
// messages, the whole history of a new target.
func NewHistory(max int) History {
	return History{all: ring{max: max, whole: true}, msgs: ring{max: max, whole: true}, next: 1}
}

// Add appends e, dropping the oldest when full.
func (h *History) Add(e *Event) {
	en := entry{e: e, seq: h.next}
	h.next++
	h.all.add(en)
	if e.IsMessage() {
		h.msgs.add(en)
	}
}

// Warm replaces the rings with what a log holds: its newest events and its
// newest messages, oldest first; each whole when the log has no more.
func (h *History) Warm(events, msgs []*Event, wholeEvents, wholeMsgs bool) {
	// Number the events after a gap wide enough for the older messages,
	// then give each message its event's number or, if it is older than
	// every event loaded (events are the newest run of the target), a
	// number in the gap, counting down.
	base := uint64(len(msgs)) + 1
	seqOf := make(map[string]uint64, len(events))
	all := make([]entry, len(events))
	for i, e := range events {
		all[i] = entry{e: e, seq: base + uint64(i)}
		seqOf[e.ID] = all[i].seq
	}
	ms := make([]entry, len(msgs))
	older := base
	for i := len(msgs) - 1; i >= 0; i-- {
		seq, ok := seqOf[msgs[i].ID]
		if !ok {
			older--
			seq = older
		}
		ms[i] = entry{e: msgs[i], seq: seq}
	}
	h.all.warm(all, wholeEvents)
	h.msgs.warm(ms, wholeMsgs)
	h.next = base + uint64(len(events))
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
	for _, en := range h.all.buf {
		if en.e.Command == "TAGMSG" || en.e.Command == "TOPIC" {
			return true
		}
	}
	return false
}

// Redact removes the event with msgid id and returns it, or nil.
func (h *History) Redact(id string) *Event {
	m := h.msgs.redact(id)
	if e := h.all.redact(id); e != nil {
		return e
	}
	return m
}

// Query answers q from memory. certain is false when the answer may lack
// events older than the ring (or the bound lies beyond it): then the log
// must answer.
func (h *History) Query(q Query) (events []*Event, certain bool) {
	r := &h.msgs
	if q.Events {
		r = &h.all
	}
	a, okA := h.resolve(q.A)
	b, okB := h.resolve(q.B)
	if !okA || q.Sel == SelBetween && !okB {
		// An unknown msgid selects nothing, if nothing is older.
		return nil, h.all.whole && h.msgs.whole
	}
	return r.query(q.Sel, a, b, q.A.Unbounded(), max(q.Limit, 0))
}

// resolve turns a msgid bound into the sequence number of its event.
func (h *History) resolve(b Bound) (mark, bool) {
	if b.ID == "" {
		return mark{at: b.At}, true
	}
	for _, r := range []*ring{&h.all, &h.msgs} {
		if i := r.find(b.ID); i >= 0 {
			return mark{seq: r.at(i).seq}, true
		}
	}
	return mark{}, false
}

// mark is a resolved bound: a sequence number, or a time when seq is 0.
type mark struct {
	seq uint64
	at  time.Time
}

type entry struct {
	e   *Event
	seq uint64
}

// ring is a bounded run of the newest events of a target.
type ring struct {
	buf   []entry
	start int // index of the oldest event once the ring is full
	max   int
	// whole says nothing older than the ring exists: the target is new,
	// or the log had fewer than the ring holds. Eviction clears it.
	whole bool
}

func (r *ring) add(en entry) {
	if r.max <= 0 {
		r.whole = false
		return
	}
	if len(r.buf) < r.max {
		r.buf = append(r.buf, en)
		return
	}
	r.buf[r.start] = en
	r.start = (r.start + 1) % r.max
	r.whole = false
}

func (r *ring) warm(entries []entry, whole bool) {
	r.buf, r.start = nil, 0
	if n := len(entries); n > r.max {
		entries, whole = entries[n-r.max:], false
	}
	r.buf = append(make([]entry, 0, len(entries)), entries...)
	r.whole = whole && r.max > 0
}

// at returns the i-th oldest entry.
func (r *ring) at(i int) entry { return r.buf[(r.start+i)%len(r.buf)] }

func (r *ring) newest() *Event {
	if len(r.buf) == 0 {
		return nil
	}
	return r.at(len(r.buf) - 1).e
}

func (r *ring) redact(id string) *Event {
	i := r.find(id)
	if i < 0 {
		return nil
	}
	e := r.at(i).e
	out := make([]entry, 0, len(r.buf))
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
		if r.at(i).e.ID == id {
			return i
		}
	}
	return -1
}

func (r *ring) query(sel Selector, a, b mark, unbounded bool, limit int) (events []*Event, certain bool) {
	n := len(r.buf)
	switch sel {
	case SelLatest:
		if unbounded {
			return r.slice(n-limit, n), r.whole || n >= limit
		}
		_, after, in := r.pos(a)
		return r.slice(max(after, n-limit), n), r.whole || in
	case SelBefore:
		before, _, in := r.pos(a)
		return r.slice(before-limit, before), r.whole || in && before >= limit
	case SelAfter:
		_, after, in := r.pos(a)
		return r.slice(after, after+limit), r.whole || in
	case SelAround:
		before, _, in := r.pos(a)
		from := max(before-limit/2, 0)
		return r.slice(from, from+limit), r.whole || in && before >= limit/2
	case SelBetween:
		aBefore, aAfter, inA := r.pos(a)
		bBefore, bAfter, inB := r.pos(b)
		certain = r.whole || inA && inB
		if aBefore <= bBefore {
			return r.slice(aAfter, min(bBefore, aAfter+limit)), certain
		}
		return r.slice(max(bAfter, aBefore-limit), aBefore), certain
	}
	return nil, true
}

// slice returns events [from, to) in order, clamped.
func (r *ring) slice(from, to int) []*Event {
	from, to = max(from, 0), min(to, len(r.buf))
	if from >= to {
		return nil
	}
	out := make([]*Event, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, r.at(i).e)
	}
	return out
}

// pos places m: before is how many entries lie strictly before it, after
// how many lie at or before it. in says m lies inside the ring, so that
// nothing beyond it could change the answer near it.
func (r *ring) pos(m mark) (before, after int, in bool) {
	n := len(r.buf)
	if m.seq != 0 {
		in = n > 0 && r.at(0).seq <= m.seq
		for i := range n {
			if s := r.at(i).seq; s < m.seq {
				before++
				after++
			} else if s == m.seq {
				after++
			}
		}
		return before, after, in
	}
	in = n > 0 && r.at(0).e.At.Before(m.at)
	for i := range n {
		at := r.at(i).e.At
		if at.Before(m.at) {
			before++
		}
		if !at.After(m.at) {
			after++
		}
	}
	return before, after, in
}
