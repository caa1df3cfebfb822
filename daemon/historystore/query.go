package historystore

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/livechat/livechat/internal/eventrec"
	"github.com/livechat/livechat/rooms"
)

// end is the position after every event.
const end = ^uint64(0)

// view is what a query needs of a target's memory state, copied under mu:
// the file answers for sequences in [lo, hi) not hidden, memory for the
// rest (every mem sequence is at least hi).
type view struct {
	tid    uint32
	lo, hi uint64
	hide   map[uint64]struct{}
	mem    []memEvent
}

type memEvent struct {
	seq uint64
	e   *rooms.Event
}

// snapshot copies t's view. Called with mu held.
func snapshot(t *target) view {
	v := view{tid: t.tid, lo: t.hideBelow, hi: t.next}
	if len(t.mem) > 0 {
		v.hi = t.mem[0].seq
	}
	for _, en := range t.mem {
		if !en.dead {
			v.mem = append(v.mem, memEvent{en.seq, en.e})
		}
	}
	if len(t.hide) > 0 {
		v.hide = make(map[uint64]struct{}, len(t.hide))
		for k := range t.hide {
			v.hide[k] = struct{}{}
		}
	}
	return v
}

func (v *view) hidden(seq uint64) bool {
	_, h := v.hide[seq]
	return h
}

// Query answers a CHATHISTORY selector over target's events, from the file
// and the events not yet committed.
func (s *Store) Query(name string, q rooms.Query) ([]*rooms.Event, error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	s.mu.Lock()
	if err := s.unavailable(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	t := s.targets[name]
	if t == nil || q.Limit <= 0 {
		s.mu.Unlock()
		return nil, nil
	}
	v := snapshot(t)
	s.mu.Unlock()
	var out []*rooms.Event
	err := s.db.view(func(r reader) error {
		x := scan{view: v, r: r, c: r.cursor(spaceEvents), events: q.Events, budget: s.opts.MaxScan}
		out = x.query(q)
		return x.err
	})
	if err != nil {
		// A damaged file: report it, and tell the client that history is
		// unavailable rather than empty.
		s.failed("query", err)
		return nil, fmt.Errorf("%w: %v", rooms.ErrHistoryUnavailable, err)
	}
	return out, nil
}

// scan answers one query in a read transaction.
type scan struct {
	view
	r      reader
	c      cursor
	events bool
	budget int // events left to read, selected or not
	err    error
}

func (x *scan) query(q rooms.Query) []*rooms.Event {
	limit := q.Limit
	switch q.Sel {
	case rooms.SelLatest:
		from := uint64(0)
		if !q.A.Unbounded() {
			_, after, ok := x.place(q.A)
			if !ok {
				return nil
			}
			from = after
		}
		return x.back(end, from, limit)
	case rooms.SelBefore:
		before, _, ok := x.place(q.A)
		if !ok {
			return nil
		}
		return x.back(before, 0, limit)
	case rooms.SelAfter:
		_, after, ok := x.place(q.A)
		if !ok {
			return nil
		}
		return x.fwd(after, end, limit)
	case rooms.SelAround:
		before, _, ok := x.place(q.A)
		if !ok {
			return nil
		}
		left := x.back(before, 0, limit/2)
		return append(left, x.fwd(before, end, limit-len(left))...)
	case rooms.SelBetween:
		aBefore, aAfter, okA := x.place(q.A)
		bBefore, bAfter, okB := x.place(q.B)
		if !okA || !okB {
			return nil
		}
		if aBefore <= bBefore {
			return x.fwd(aAfter, bBefore, limit) // nearest A, going up
		}
		return x.back(aBefore, bAfter, limit) // nearest A, going down
	}
	return nil
}

// place resolves a bound to positions: before is the first sequence at or
// after it, after the first sequence past it. ok is false for a msgid the
// target does not hold.
func (x *scan) place(b rooms.Bound) (before, after uint64, ok bool) {
	if b.ID != "" {
		seq, ok := x.locate(b.ID)
		return seq, seq + 1, ok
	}
	return x.lowerBound(b.At, false), x.lowerBound(b.At, true), true
}

// locate finds a msgid's sequence.
func (x *scan) locate(id string) (uint64, bool) {
	for i := len(x.mem) - 1; i >= 0; i-- {
		if x.mem[i].e.ID == id {
			return x.mem[i].seq, true
		}
	}
	iv := x.r.get(spaceIDs, idKey(x.tid, id))
	if len(iv) != seqLen {
		return 0, false
	}
	seq := binary.BigEndian.Uint64(iv)
	if seq < x.lo || seq >= x.hi || x.hidden(seq) {
		return 0, false
	}
	return seq, true
}

// lowerBound returns the first sequence whose event is at or after t
// (strictly after when strict), or end. Events are in time order within a
// target (rooms stamp them as they append), so it is a binary search: over
// memory, or over the file's key range with one seek per step.
func (x *scan) lowerBound(t time.Time, strict bool) uint64 {
	pred := func(at time.Time) bool {
		if strict {
			return at.After(t)
		}
		return !at.Before(t)
	}
	if len(x.mem) > 0 && !pred(x.mem[0].e.At) {
		i := sort.Search(len(x.mem), func(i int) bool { return pred(x.mem[i].e.At) })
		if i < len(x.mem) {
			return x.mem[i].seq
		}
		return end
	}
	ans := end
	if len(x.mem) > 0 {
		ans = x.mem[0].seq
	}
	var kb [evKeyLen]byte
	lo, hi := x.lo, x.hi
	for lo < hi {
		mid := lo + (hi-lo)/2
		k, v := x.c.Seek(putEvKey(kb[:0], x.tid, mid))
		if len(k) != evKeyLen || keyTid(k) != x.tid || keySeq(k) >= hi {
			hi = mid
			continue
		}
		if !eventrec.Valid(v) {
			x.err = eventrec.ErrCorrupt
			return end
		}
		if seq := keySeq(k); pred(time.UnixMilli(eventrec.At(v))) {
			ans, hi = seq, mid
		} else {
			lo = seq + 1
		}
	}
	return ans
}

func (x *scan) selectedMem(e *rooms.Event) bool { return x.events || e.IsMessage() }

// take decodes a record into out if the query selects it.
func (x *scan) take(out []*rooms.Event, v []byte) []*rooms.Event {
	if !eventrec.Valid(v) {
		x.err = eventrec.ErrCorrupt
		return out
	}
	if !x.events && !eventrec.IsMessage(v) {
		return out
	}
	e, err := eventrec.Decode(v)
	if err != nil {
		x.err = err
		return out
	}
	return append(out, e)
}

// back returns the newest limit selected events with stop <= seq < from,
// oldest first.
func (x *scan) back(from, stop uint64, limit int) []*rooms.Event {
	var out []*rooms.Event
	i := sort.Search(len(x.mem), func(i int) bool { return x.mem[i].seq >= from })
	for i--; i >= 0 && len(out) < limit && x.budget > 0; i-- {
		m := x.mem[i]
		if m.seq < stop {
			break
		}
		x.budget--
		if x.selectedMem(m.e) {
			out = append(out, m.e)
		}
	}
	upper, lower := min(from, x.hi), max(x.lo, stop)
	if upper > lower && len(out) < limit {
		var kb [evKeyLen]byte
		k, v := x.c.Seek(putEvKey(kb[:0], x.tid, upper))
		if k == nil {
			k, v = x.c.Last()
		} else {
			k, v = x.c.Prev()
		}
		for ; k != nil && len(out) < limit && x.budget > 0 && x.err == nil; k, v = x.c.Prev() {
			if len(k) != evKeyLen || keyTid(k) != x.tid || keySeq(k) < lower {
				break
			}
			x.budget--
			if !x.hidden(keySeq(k)) {
				out = x.take(out, v)
			}
		}
	}
	slices.Reverse(out)
	return out
}

// fwd returns the oldest limit selected events with from <= seq < stop.
func (x *scan) fwd(from, stop uint64, limit int) []*rooms.Event {
	var out []*rooms.Event
	lower, upper := max(x.lo, from), min(x.hi, stop)
	if lower < upper && limit > 0 {
		var kb [evKeyLen]byte
		k, v := x.c.Seek(putEvKey(kb[:0], x.tid, lower))
		for ; k != nil && len(out) < limit && x.budget > 0 && x.err == nil; k, v = x.c.Next() {
			if len(k) != evKeyLen || keyTid(k) != x.tid || keySeq(k) >= upper {
				break
			}
			x.budget--
			if !x.hidden(keySeq(k)) {
				out = x.take(out, v)
			}
		}
	}
	i := sort.Search(len(x.mem), func(i int) bool { return x.mem[i].seq >= from })
	for ; i < len(x.mem) && len(out) < limit && x.budget > 0; i++ {
		m := x.mem[i]
		if m.seq >= stop {
			break
		}
		x.budget--
		if x.selectedMem(m.e) {
			out = append(out, m.e)
		}
	}
	return out
}

// Targets lists the targets with events whose name starts with prefix,
// with the time of their newest event, by name.
func (s *Store) Targets(prefix string) ([]rooms.TargetInfo, error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	s.mu.Lock()
	if err := s.unavailable(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	var out []rooms.TargetInfo
	var onDisk []view
	var names []string
	for name, t := range s.targets {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		last := time.Time{}
		for i := len(t.mem) - 1; i >= 0; i-- {
			if en := t.mem[i]; !en.dead {
				last = en.e.At
				break
			}
		}
		if !last.IsZero() {
			out = append(out, rooms.TargetInfo{Name: name, Last: last})
			continue
		}
		v := snapshot(t)
		v.mem = nil
		onDisk = append(onDisk, v)
		names = append(names, name)
	}
	s.mu.Unlock()
	err := s.db.view(func(r reader) error {
		for i, v := range onDisk {
			x := scan{view: v, r: r, c: r.cursor(spaceEvents), events: true, budget: 1 << 30}
			if last := x.back(end, 0, 1); len(last) == 1 {
				out = append(out, rooms.TargetInfo{Name: names[i], Last: last[0].At})
			}
			if x.err != nil {
				return x.err
			}
		}
		return nil
	})
	if err != nil {
		s.failed("query", err)
		return nil, fmt.Errorf("%w: %v", rooms.ErrHistoryUnavailable, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Redact removes the event with msgid id from target and returns it. An
// event still in memory is dropped there; one in the file is hidden at
// once and deleted by the next commit (and scrubbed from the disk within
// ScrubInterval).
func (s *Store) Redact(name, id string) (*rooms.Event, error) {
	s.mu.Lock()
	t := s.targets[name]
	if t == nil || id == "" {
		s.mu.Unlock()
		return nil, nil
	}
	for i := len(t.mem) - 1; i >= 0; i-- {
		en := t.mem[i]
		if en.dead || en.e.ID != id {
			continue
		}
		e := en.e
		if en.gen > s.takenGen {
			en.dead = true // never written
		} else {
			// The writer is writing it: delete it right after.
			t.mem = slices.Delete(t.mem, i, i+1)
			s.hideLocked(t, en.seq)
		}
		s.mu.Unlock()
		return e, nil
	}
	s.mu.Unlock()

	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	s.mu.Lock()
	err := s.unavailable()
	v := snapshot(t)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var e *rooms.Event
	var seq uint64
	err = s.db.view(func(r reader) error {
		x := scan{view: v, r: r}
		x.mem = nil
		var ok bool
		if seq, ok = x.locate(id); !ok {
			return nil
		}
		val := r.get(spaceEvents, evKey(t.tid, seq))
		if val == nil {
			return nil
		}
		var err error
		e, err = eventrec.Decode(val)
		return err
	})
	if err != nil || e == nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq < t.hideBelow || t.hidden(seq) {
		return nil, nil // redacted or deleted meanwhile
	}
	s.hideLocked(t, seq)
	return e, nil
}

func (t *target) hidden(seq uint64) bool {
	_, h := t.hide[seq]
	return h
}

// hideLocked hides event seq of t and queues its deletion. Called with mu
// held.
func (s *Store) hideLocked(t *target, seq uint64) {
	if t.hide == nil {
		t.hide = make(map[uint64]struct{})
	}
	t.hide[seq] = struct{}{}
	s.gen++
	s.ops = append(s.ops, op{kind: opRedact, t: t, seq: seq, gen: s.gen})
	s.queuedLocked()
}

// Delete forgets every event of target: at once for queries, from the file
// with the next commits (in bounded transactions), from the disk within
// ScrubInterval.
func (s *Store) Delete(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.targets[name]
	if t == nil {
		return nil
	}
	if err := s.unavailable(); err != nil {
		return err
	}
	for _, en := range t.mem {
		if en.gen > s.takenGen {
			en.dead = true
		}
	}
	t.mem = nil
	t.hideBelow, t.hide = t.next, nil
	s.gen++
	s.ops = append(s.ops, op{kind: opDeleteBelow, t: t, seq: t.next, gen: s.gen})
	s.queuedLocked()
	return nil
}
