package historystore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/livechat/livechat/internal/eventrec"
)

// maxBatch bounds the events of one transaction: bbolt splits its pages
// only at commit, so inserting many keys into one page within a
// transaction costs quadratic time.
const maxBatch = 4096

// deleteChunk bounds the deletions of one transaction, so that deleting a
// long history (Delete, retention, Forget) holds up the group commits for
// about 10 ms at a time (measured: 2,000 deletions take 6 to 14 ms here).
const deleteChunk = 2000

// delta is what one transaction changes in a target's record.
type delta struct {
	events, bytes int64
	maxSeq        uint64 // the newest sequence of the batch, written or dead
}

type commitResult struct {
	events      int
	logged      int // of events, those the log made durable before
	loggedBytes int64
	bytes       int64
	deltas      map[*target]*delta
	stored      int64 // the change in StoredBytes
	requeue     []op  // deletions cut short by deleteChunk
	// keepLog is the log record of the oldest logged deletion the
	// transaction left half done, or 0: the file must not claim that
	// record, nor the log start over, until the deletion is finished.
	keepLog uint64
	walLSN  uint64 // the log's newest record, when the batch is the whole queue
	scrub   bool   // text was deleted: a scrub must follow
}

func (r *commitResult) delta(t *target) *delta {
	d := r.deltas[t]
	if d == nil {
		d = &delta{}
		r.deltas[t] = d
	}
	return d
}

// commit makes the queue durable: by appending it to the log (flushWAL),
// or by writing it into the file in one transaction (a checkpoint) when
// one is due. A checkpoint takes the queue as a whole: appends made
// meanwhile wait for the next commit, and a failed commit puts it back in
// front.
func (s *Store) commit() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	s.mu.Lock()
	if s.db == nil {
		s.mu.Unlock()
		return errors.New("historystore: not open")
	}
	if s.journaling && s.journaled >= s.opts.MaxPending {
		// A scrub is copying and its journal is full: wait for it,
		// appends stay pending (within their own bound); try again in
		// an interval.
		s.due = time.Now().Add(s.opts.SyncInterval)
		s.mu.Unlock()
		return nil
	}
	if len(s.pending) == 0 && len(s.ops) == 0 {
		s.due, s.ckptDue, s.ckptWanted = time.Time{}, time.Time{}, false
		if s.durableGen < s.gen || s.ckptGen < s.gen {
			s.durableGen = s.gen // everything since was dropped or redacted
			s.ckptGen = s.gen
			s.notify()
		}
		s.mu.Unlock()
		return nil
	}
	if s.wal != nil && s.opsLoggable() && !s.ckptWanted && !s.closed &&
		len(s.pending) < commitEarly && s.wal.off < walMaxBytes &&
		(s.ckptDue.IsZero() || time.Now().Before(s.ckptDue)) {
		return s.flushWAL()
	}
	// Take at most maxBatch events, and the deletions queued before the
	// first event left behind: a deletion must follow what it deletes.
	batch, gen := s.pending, s.gen
	if len(batch) > maxBatch {
		batch = batch[:maxBatch:maxBatch]
		gen = s.pending[maxBatch].gen - 1
	}
	nops := 0
	for nops < len(s.ops) && s.ops[nops].gen <= gen {
		nops++
	}
	ops := s.ops[:nops:nops]
	s.pending = s.pending[len(batch):]
	if len(s.pending) == 0 {
		s.pending = nil
	}
	s.ops = s.ops[nops:]
	if len(s.ops) == 0 {
		s.ops = nil
	}
	s.takenGen = max(s.takenGen, gen) // the log may hold more
	more := len(s.pending) > 0
	if !more && len(s.ops) == 0 {
		s.due = time.Time{} // what is appended from now on starts its own interval
		s.ckptWanted = false
	}
	s.mu.Unlock()
	if more {
		defer nudge(s.urgent)
	}

	start := time.Now()
	res := commitResult{deltas: make(map[*target]*delta)}
	if s.wal != nil && !more {
		// The whole queue goes into the file, so the file holds every
		// record the log may hold, a failed write's included.
		res.walLSN = s.wal.lsn
	}
	err := s.db.update(func(w writer) error {
		if s.commitFault != nil {
			if err := s.commitFault(); err != nil {
				return err
			}
		}
		return s.write(w, batch, ops, &res)
	})
	took := time.Since(start)

	s.mu.Lock()
	if err != nil {
		s.pending = append(batch, s.pending...)
		s.ops = append(ops, s.ops...)
		if s.due.IsZero() {
			s.due = time.Now() // overdue: the writer retries after its backoff
		}
		s.takenGen = s.durableGen
		s.trimPending()
		s.failing = err
		s.notify()
		s.mu.Unlock()
		s.failed("commit", err)
		return err
	}
	if s.journaling {
		s.journal = append(s.journal, journalItem{batch, ops})
		s.journaled += len(batch)
	}
	s.failing = nil
	s.durableGen = max(s.durableGen, gen)
	s.ckptGen = gen
	s.walGen = max(s.walGen, gen)
	if gen >= s.walGen && s.wal != nil && res.keepLog == 0 {
		// The file holds everything logged: the log starts over.
		s.wal.reset()
		s.ckptDue = time.Time{}
	}
	s.stored.Add(res.stored - res.loggedBytes)
	if len(res.requeue) > 0 {
		// Sync promises the deletion too: not durable until it is done.
		s.durableGen = res.requeue[0].gen - 1
		s.ckptGen = s.durableGen
		s.ops = append(res.requeue, s.ops...)
		if s.due.IsZero() {
			s.due = time.Now() // the nudge below commits the rest at once
		}
	}
	for t, d := range res.deltas {
		n := 0
		for n < len(t.mem) && t.mem[n].seq <= d.maxSeq {
			t.mem[n] = nil
			n++
		}
		t.mem = t.mem[n:]
		if len(t.mem) == 0 {
			t.mem = nil
		}
	}
	for _, o := range ops {
		if o.kind == opRedact && o.t.hide != nil {
			delete(o.t.hide, o.seq)
		}
	}
	if res.scrub {
		s.scheduleScrub()
	}
	s.notify()
	s.mu.Unlock()

	s.diskBytes.Store(s.db.size())
	if len(res.requeue) > 0 {
		nudge(s.urgent)
	}
	// What the log made durable was reported then.
	if n := res.events - res.logged; s.opts.Hooks.Committed != nil && n > 0 {
		s.opts.Hooks.Committed(n, res.bytes-res.loggedBytes, took)
	}
	return nil
}

// flushWAL appends what was queued since the last flush to the log and
// syncs it. Called with wmu, dbMu (read) and mu held; returns with mu
// released.
func (s *Store) flushWAL() error {
	i := sort.Search(len(s.pending), func(i int) bool { return s.pending[i].gen > s.walGen })
	j := sort.Search(len(s.ops), func(j int) bool { return s.ops[j].gen > s.walGen })
	items := make([]walItem, 0, len(s.pending)-i+len(s.ops)-j)
	for _, en := range s.pending[i:] {
		if !en.dead {
			items = append(items, walItem{en: en, e: en.e})
		}
	}
	// Deletions after the events: replay orders them by sequence, not by
	// place in the log (a deletion removes what came before it, and what
	// a target gets after it is numbered above it).
	opsAt := len(items)
	for _, o := range s.ops[j:] {
		items = append(items, walItem{name: o.t.name, below: o.seq})
	}
	gen := s.gen
	// From here on a redaction of these goes through an opRedact,
	// which forces a checkpoint: the log is never the only copy of
	// redacted text.
	s.takenGen = max(s.takenGen, gen)
	s.due = time.Time{}
	s.mu.Unlock()

	start := time.Now()
	var stored int64
	var err error
	if s.commitFault != nil {
		err = s.commitFault()
	}
	if err == nil && len(items) > 0 {
		stored, err = s.wal.write(items)
	}
	took := time.Since(start)

	s.mu.Lock()
	if err != nil {
		// Like a failed commit: the events stay queued, Sync fails
		// until a commit succeeds, and the retry goes to the file (a
		// checkpoint), which restarts the log. Unlike one, the records
		// may be on disk: takenGen stays, so a redaction meanwhile goes
		// through an opRedact and that checkpoint.
		s.failing = err
		s.ckptWanted = true
		if s.due.IsZero() {
			s.due = time.Now()
		}
		s.notify()
		s.mu.Unlock()
		s.failed("commit", fmt.Errorf("historystore: the log: %w", err))
		return err
	}
	s.failing = nil
	s.stored.Add(stored)
	for k, it := range items[opsAt:] {
		s.ops[j+k].lsn = it.lsn // only the writer (wmu) takes ops off the front
	}
	s.walGen = max(s.walGen, gen)
	s.durableGen = max(s.durableGen, gen)
	if s.ckptDue.IsZero() {
		s.ckptDue = time.Now().Add(checkpointInterval)
	}
	s.notify()
	s.mu.Unlock()
	if s.opts.Hooks.Committed != nil && opsAt > 0 {
		s.opts.Hooks.Committed(opsAt, stored, took)
	}
	return nil
}

// opsLoggable reports whether every queued deletion may wait in the log
// (op.logged); any other forces a checkpoint. Called with mu held.
func (s *Store) opsLoggable() bool {
	for i := range s.ops {
		if !s.ops[i].logged() {
			return false
		}
	}
	return true
}

// write puts a batch and applies the queued deletions after it, so a
// deletion queued after an append removes it.
func (s *Store) write(w writer, batch []*entry, ops []op, res *commitResult) error {
	// Keys and values must stay valid until the commit: one buffer holds
	// them all (a grown buffer leaves the earlier slices valid).
	buf := make([]byte, 0, 256*len(batch)+64)
	var stored int64
	var lsn uint64
	for _, en := range batch {
		d := res.delta(en.t)
		d.maxSeq = max(d.maxSeq, en.seq)
		lsn = max(lsn, en.lsn)
		if en.dead {
			continue
		}
		logged := en.lsn > 0
		tid := en.t.tid
		start := len(buf)
		buf = putEvKey(buf, tid, en.seq)
		k := buf[start:len(buf):len(buf)]
		start = len(buf)
		buf = eventrec.Append(buf, en.e)
		v := buf[start:len(buf):len(buf)]
		if err := w.put(spaceEvents, k, v); err != nil {
			return err
		}
		n := int64(len(k) + len(v))
		if id := en.e.ID; id != "" {
			start = len(buf)
			buf = binary.BigEndian.AppendUint32(buf, tid)
			buf = append(buf, id...)
			ik := buf[start:len(buf):len(buf)]
			start = len(buf)
			buf = binary.BigEndian.AppendUint64(buf, en.seq)
			if err := w.put(spaceIDs, ik, buf[start:len(buf):len(buf)]); err != nil {
				return err
			}
			n += int64(len(ik)) + seqLen
		}
		d.events++
		d.bytes += n
		res.events++
		res.bytes += n
		if logged {
			res.logged++
			res.loggedBytes += n // StoredBytes counted them when logged
		}
	}
	stored += res.bytes
	for _, o := range ops {
		lsn = max(lsn, o.lsn)
		d := res.delta(o.t)
		switch o.kind {
		case opRedact:
			n, err := deleteEvent(w, o.t.tid, o.seq)
			if err != nil {
				return err
			}
			if n > 0 {
				d.events--
				d.bytes -= n
				stored -= n
				res.scrub = true
			}
		case opDeleteBelow:
			n, b, more, err := deleteBelow(w, o.t.tid, o.seq, deleteChunk)
			if err != nil {
				return err
			}
			if more {
				o.partial = true
				res.requeue = append(res.requeue, o)
				if o.lsn > 0 && (res.keepLog == 0 || o.lsn < res.keepLog) {
					res.keepLog = o.lsn
				}
			}
			d.events -= n
			d.bytes -= b
			stored -= b
			if n > 0 {
				res.scrub = true
			}
		}
	}
	for t, d := range res.deltas {
		if err := addToRecord(w, t.name, t.tid, d.events, d.bytes); err != nil {
			return err
		}
	}
	if res.scrub {
		if err := w.put(spaceMeta, keyScrub, []byte{1}); err != nil {
			return err
		}
	}
	lsn = max(lsn, res.walLSN)
	if res.keepLog > 0 {
		lsn = min(lsn, res.keepLog-1) // replayed again: deleting twice is harmless
	}
	if lsn > 0 {
		if err := w.put(spaceMeta, keyWAL, binary.BigEndian.AppendUint64(nil, lsn)); err != nil {
			return err
		}
	}
	res.stored = stored
	return nil
}

// addToRecord adds to a target's counts, creating its record.
func addToRecord(w writer, name string, tid uint32, events, bytes int64) error {
	if events == 0 && bytes == 0 {
		return nil // nothing changed, or nothing was written: no record needed
	}
	rec := targetRecord{tid: tid}
	if v := w.get(spaceTargets, []byte(name)); v != nil {
		var err error
		if rec, err = decodeTargetRecord(v); err != nil {
			return err
		}
	}
	rec.events = max(rec.events+events, 0)
	rec.bytes = max(rec.bytes+bytes, 0)
	return w.put(spaceTargets, []byte(name), rec.encode())
}

// deleteEvent deletes event seq of tid and its index entry, returning the
// bytes they took (0 when there was no such event).
func deleteEvent(w writer, tid uint32, seq uint64) (int64, error) {
	k := evKey(tid, seq)
	v := w.get(spaceEvents, k)
	if v == nil {
		return 0, nil
	}
	n := int64(len(k) + len(v))
	if id, _, _, err := eventrec.Fields(v); err == nil && len(id) > 0 {
		ik := idKey(tid, string(id))
		n += int64(len(ik)) + seqLen
		if iv := w.get(spaceIDs, ik); len(iv) == seqLen && binary.BigEndian.Uint64(iv) == seq {
			if err := w.del(spaceIDs, ik); err != nil {
				return 0, err
			}
		}
	}
	return n, w.del(spaceEvents, k)
}

// deleteBelow deletes up to limit of tid's events numbered below seq,
// oldest first, and returns how many events and bytes went and whether
// some are left.
func deleteBelow(w writer, tid uint32, seq uint64, limit int) (events, bytes int64, more bool, err error) {
	keys := collectKeys(w, tid, 0, seq, limit+1)
	if more = len(keys) > limit; more {
		keys = keys[:limit]
	}
	for _, k := range keys {
		n, err := deleteEvent(w, tid, keySeq(k))
		if err != nil {
			return events, bytes, more, err
		}
		events++
		bytes += n
	}
	return events, bytes, more, nil
}

// collectKeys copies up to limit keys of tid's events with sequence in
// [from, to), oldest first.
func collectKeys(r reader, tid uint32, from, to uint64, limit int) [][]byte {
	var keys [][]byte
	c := r.cursor(spaceEvents)
	for k, _ := c.Seek(evKey(tid, from)); k != nil && len(keys) < limit; k, _ = c.Next() {
		if len(k) != evKeyLen || keyTid(k) != tid || keySeq(k) >= to {
			break
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	return keys
}
