package jshistory

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/livechat/livechat/internal/eventrec"
	"github.com/livechat/livechat/rooms"
)

// JetStream reads forward only. Every read here is a direct get (served by
// any replica, no consumer created): by sequence, or "the next messages on
// these subjects from sequence s" in a batch, whose first reply also says
// how many such messages remain from s on. That count is what lets a read
// go backwards: the newest n events before sequence p start at the s where
// count(s) - count(p) = n, found in a few probes.

// getReq is the direct get request ($JS.API.DIRECT.GET.<stream>).
type getReq struct {
	Seq    uint64 `json:"seq,omitempty"`
	NextBy string `json:"next_by_subj,omitempty"`
	LastBy string `json:"last_by_subj,omitempty"`
	Batch  int    `json:"batch,omitempty"`
}

// rec is one stored message.
type rec struct {
	seq  uint64
	subj string
	data []byte
}

// get runs a direct get on the history stream. For a batch it returns the
// messages and how many match from req.Seq on (the messages returned
// included); nothing found is no error.
func (l *Log) get(ctx context.Context, req getReq) ([]rec, uint64, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, 0, err
	}
	inbox := nats.NewInbox()
	sub, err := l.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, 0, err
	}
	defer sub.Unsubscribe()
	if err := l.nc.PublishRequest("$JS.API.DIRECT.GET."+l.cfg.Stream, inbox, body); err != nil {
		return nil, 0, err
	}
	var out []rec
	var count uint64
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, 0, err
		}
		if len(m.Data) == 0 {
			switch status := m.Header.Get("Status"); status {
			case "":
			case "204": // end of a batch
				return out, count, nil
			case "404":
				return out, count, nil
			default:
				return nil, 0, fmt.Errorf("jshistory: direct get: %s %s", status, m.Header.Get("Description"))
			}
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("jshistory: direct get: bad sequence %q", m.Header.Get(jetstream.SequenceHeader))
		}
		if len(out) == 0 && req.Batch > 0 {
			np, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			count = np + 1
		}
		out = append(out, rec{seq: seq, subj: m.Header.Get(jetstream.SubjectHeader), data: m.Data})
		if req.Batch == 0 {
			return out, 1, nil
		}
	}
}

// view is one query's window on a target: the subjects it reads and the
// sequence just past its newest event.
type view struct {
	l      *Log
	ctx    context.Context
	filter string
	end    uint64
}

// probe returns the first message of the view at or after s and how many
// there are from s on (0 and no message when none).
func (v *view) probe(s uint64) (rec, uint64, error) {
	recs, n, err := v.l.get(v.ctx, getReq{Seq: s, NextBy: v.filter, Batch: 1})
	if err != nil || len(recs) == 0 {
		return rec{}, 0, err
	}
	return recs[0], n, nil
}

func (v *view) count(s uint64) (uint64, error) {
	if s >= v.end {
		return 0, nil
	}
	_, n, err := v.probe(s)
	return n, err
}

// forward returns up to n of the view's events from sequence s on, before
// stop.
func (v *view) forward(s, stop uint64, n int) ([]rec, error) {
	if n <= 0 || s >= stop {
		return nil, nil
	}
	out, _, err := v.l.get(v.ctx, getReq{Seq: max(s, 1), NextBy: v.filter, Batch: n})
	if err != nil {
		return nil, err
	}
	for i, r := range out {
		if r.seq >= stop {
			return out[:i], nil
		}
	}
	return out, nil
}

// backward returns the newest n of the view's events in [lo, stop), oldest
// first.
func (v *view) backward(lo, stop uint64, n int) ([]rec, error) {
	lo = max(lo, 1)
	stop = min(stop, v.end)
	if n <= 0 || lo >= stop {
		return nil, nil
	}
	cStop, err := v.count(stop)
	if err != nil {
		return nil, err
	}
	cLo, err := v.count(lo)
	if err != nil {
		return nil, err
	}
	// Invariant: a holds ka ≥ n events before stop, b holds kb < n.
	a, b, ka, kb := lo, stop, cLo-cStop, uint64(0)
	want := uint64(n)
	for i := 0; ka > want+want/2+8 && b-a > 1 && i < 64; i++ {
		// Interpolate towards n and a little more, so that one read is
		// enough and wastes little.
		goal := float64(want + want/4 + 1)
		frac := (goal - float64(kb)) / float64(ka-kb)
		s := b - uint64(math.Ceil(frac*float64(b-a)))
		s = min(max(s, a+1), b-1)
		c, err := v.count(s)
		if err != nil {
			return nil, err
		}
		if k := c - cStop; k >= want {
			a, ka = s, k
		} else {
			b, kb = s, k
		}
	}
	out, err := v.forward(a, stop, int(ka))
	if err != nil {
		return nil, err
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

// firstAt returns the sequence of the view's first event at or after t
// (after t when strict), or v.end. Times are taken to grow with the
// sequence within a target, as rooms.History takes them to.
func (v *view) firstAt(t time.Time, strict bool) (uint64, error) {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 && !strict {
		ms++ // a bound inside a millisecond: stored times are whole ones
	}
	found := v.end
	lo, hi := uint64(1), v.end
	for lo < hi {
		mid := lo + (hi-lo)/2
		// Not a batch: the server then skips counting what follows.
		recs, _, err := v.l.get(v.ctx, getReq{Seq: mid, NextBy: v.filter})
		if err != nil {
			return 0, err
		}
		var r rec
		if len(recs) > 0 {
			r = recs[0]
		}
		if r.seq == 0 || r.seq >= v.end {
			hi = mid
			continue
		}
		if !eventrec.Valid(r.data) {
			return 0, eventrec.ErrCorrupt
		}
		at := eventrec.At(r.data)
		if at > ms || !strict && at == ms {
			found, hi = r.seq, mid
		} else {
			lo = r.seq + 1
		}
	}
	return found, nil
}

// split places a bound: lo is the first sequence not before it, hi the
// first not at or before it (as rooms.History's pos).
func (v *view) split(enc string, b rooms.Bound) (lo, hi uint64, ok bool, err error) {
	if b.ID != "" {
		seq, _, err := v.l.lookup(v.ctx, enc, b.ID)
		if err != nil || seq == 0 {
			return 0, 0, false, err
		}
		return seq, seq + 1, true, nil
	}
	if lo, err = v.firstAt(b.At, false); err != nil {
		return 0, 0, false, err
	}
	if hi, err = v.firstAt(b.At, true); err != nil {
		return 0, 0, false, err
	}
	return lo, hi, true, nil
}

// lookup finds the stream sequence of target's event with msgid id, and
// the event; 0 when target has none.
func (l *Log) lookup(ctx context.Context, enc, id string) (uint64, *rooms.Event, error) {
	seq, ok := l.cache.get(enc + " " + id)
	if !ok {
		m, err := l.idx.GetLastMsgForSubject(ctx, l.indexSubject(enc, id))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, nil, nil
		}
		if err != nil {
			return 0, nil, err
		}
		if len(m.Data) != 8 {
			return 0, nil, nil
		}
		seq = binary.BigEndian.Uint64(m.Data)
	}
	// The index and the cache are hints: the event may have been redacted
	// or deleted since, by this node or another.
	recs, _, err := l.get(ctx, getReq{Seq: seq})
	if err != nil || len(recs) == 0 {
		return 0, nil, err
	}
	r := recs[0]
	if !strings.HasPrefix(r.subj, l.cfg.Subject+"."+enc+".") || strings.Count(r.subj[len(l.cfg.Subject)+1:], ".") != 1 {
		return 0, nil, nil
	}
	e, err := eventrec.Decode(r.data)
	if err != nil {
		return 0, nil, err
	}
	if e.ID != id {
		return 0, nil, nil
	}
	return seq, e, nil
}

func (l *Log) Query(target string, q rooms.Query) ([]*rooms.Event, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
	defer cancel()
	enc := encode(target)
	if err := l.settle(ctx, enc); err != nil {
		return nil, err
	}
	recs, err := l.query(ctx, enc, q)
	if err != nil {
		if errors.Is(err, rooms.ErrHistoryUnavailable) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", rooms.ErrHistoryUnavailable, err)
	}
	out := make([]*rooms.Event, 0, len(recs))
	for _, r := range recs {
		e, err := eventrec.Decode(r.data)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", rooms.ErrHistoryUnavailable, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func (l *Log) query(ctx context.Context, enc string, q rooms.Query) ([]rec, error) {
	v := &view{l: l, ctx: ctx, filter: l.cfg.Subject + "." + enc + ".m"}
	if q.Events {
		v.filter = l.cfg.Subject + "." + enc + ".*"
	}
	last, _, err := l.get(ctx, getReq{LastBy: v.filter})
	if err != nil || len(last) == 0 {
		return nil, err
	}
	v.end = last[0].seq + 1
	loA, hiA, ok, err := v.split(enc, q.A)
	if err != nil || !ok {
		return nil, err
	}
	n := q.Limit
	switch q.Sel {
	case rooms.SelLatest:
		if q.A.Unbounded() {
			return v.backward(1, v.end, n)
		}
		return v.backward(hiA, v.end, n)
	case rooms.SelBefore:
		return v.backward(1, loA, n)
	case rooms.SelAfter:
		return v.forward(hiA, v.end, n)
	case rooms.SelAround:
		before, err := v.backward(1, loA, n/2)
		if err != nil {
			return nil, err
		}
		from := loA
		if len(before) > 0 {
			from = before[0].seq
		}
		return v.forward(from, v.end, n)
	case rooms.SelBetween:
		loB, hiB, ok, err := v.split(enc, q.B)
		if err != nil || !ok {
			return nil, err
		}
		if loA <= loB {
			return v.forward(hiA, loB, n)
		}
		return v.backward(hiB, loA, n)
	}
	return nil, nil
}

// Redact deletes the event from the stream with JetStream's secure
// delete, which overwrites the stored message with random bytes on every
// replica (a plain delete only marks it), and drops its index entry.
func (l *Log) Redact(target, id string) (*rooms.Event, error) {
	if id == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
	defer cancel()
	enc := encode(target)
	if err := l.settle(ctx, enc); err != nil {
		return nil, err
	}
	seq, e, err := l.lookup(ctx, enc, id)
	if err != nil || seq == 0 {
		return nil, err
	}
	if err := l.hist.SecureDeleteMsg(ctx, seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, nil // another node was first
		}
		return nil, err
	}
	l.cache.drop(enc + " " + id)
	if err := l.idx.Purge(ctx, jetstream.WithPurgeSubject(l.indexSubject(enc, id))); err != nil {
		return e, err
	}
	return e, nil
}

// Delete purges target's subjects and its index entries.
func (l *Log) Delete(target string) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
	defer cancel()
	enc := encode(target)
	if err := l.settle(ctx, enc); err != nil {
		return err
	}
	if err := l.hist.Purge(ctx, jetstream.WithPurgeSubject(l.cfg.Subject+"."+enc+".*")); err != nil {
		return err
	}
	l.cache.dropPrefix(enc + " ")
	return l.idx.Purge(ctx, jetstream.WithPurgeSubject(l.cfg.IndexSubject+"."+enc+".*"))
}

// Targets lists the targets with events from the stream's per-subject
// state, and the newest event of each.
func (l *Log) Targets(prefix string) ([]rooms.TargetInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
	defer cancel()
	if err := l.settle(ctx, ""); err != nil {
		return nil, err
	}
	info, err := l.hist.Info(ctx, jetstream.WithSubjectFilter(l.cfg.Subject+".*.*"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", rooms.ErrHistoryUnavailable, err)
	}
	seen := make(map[string]bool)
	var out []rooms.TargetInfo
	for subj, n := range info.State.Subjects {
		toks := strings.Split(strings.TrimPrefix(subj, l.cfg.Subject+"."), ".")
		if n == 0 || len(toks) != 2 || seen[toks[0]] {
			continue
		}
		seen[toks[0]] = true
		name, ok := decode(toks[0])
		if !ok || !strings.HasPrefix(name, prefix) {
			continue
		}
		last, _, err := l.get(ctx, getReq{LastBy: l.cfg.Subject + "." + toks[0] + ".*"})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", rooms.ErrHistoryUnavailable, err)
		}
		if len(last) == 0 {
			continue
		}
		if !eventrec.Valid(last[0].data) {
			return nil, fmt.Errorf("%w: %v", rooms.ErrHistoryUnavailable, eventrec.ErrCorrupt)
		}
		out = append(out, rooms.TargetInfo{Name: name, Last: time.UnixMilli(eventrec.At(last[0].data))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
