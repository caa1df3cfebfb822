package historystore

import (
	"container/heap"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/livechat/livechat/internal/durable"
	"github.com/livechat/livechat/internal/eventrec"
)

// maintain runs retention every RetentionInterval and the scrub when one
// is due, off the writer: both work in bounded transactions between the
// group commits.
func (s *Store) maintain() {
	defer s.wg.Done()
	// Without retention there is nothing to run: no ticker, so an idle
	// daemon does not wake for it.
	var retain <-chan time.Time
	if s.opts.MaxAge > 0 || s.opts.MaxPerTarget > 0 || s.opts.MaxBytes > 0 {
		tick := time.NewTicker(s.opts.RetentionInterval)
		defer tick.Stop()
		retain = tick.C
	}
	for {
		s.mu.Lock()
		at := s.scrubAt
		s.mu.Unlock()
		var scrub <-chan time.Time
		var timer *time.Timer
		if !at.IsZero() {
			timer = time.NewTimer(time.Until(at))
			scrub = timer.C
		}
		select {
		case <-s.stop:
			if timer != nil {
				timer.Stop()
			}
			return
		case <-retain:
			s.retain(time.Now())
		case <-scrub:
			if err := s.Scrub(); errors.Is(err, errClosed) {
				return
			} else if err != nil {
				s.failed("scrub", err)
				s.mu.Lock()
				s.scrubAt = time.Now().Add(s.opts.RetryInterval)
				s.mu.Unlock()
			}
		case <-s.maintWake:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// scheduleScrub arranges a scrub within ScrubInterval. Called with mu held.
func (s *Store) scheduleScrub() {
	if s.scrubAt.IsZero() {
		s.scrubAt = time.Now().Add(s.opts.ScrubInterval)
		nudge(s.maintWake)
	}
}

// ScrubDue reports whether deleted text may still be in the file.
func (s *Store) ScrubDue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.scrubAt.IsZero()
}

// Scrub rewrites the file with only its live data, so that deleted and
// redacted text is no longer on the disk (a freed page keeps its bytes
// until reused). Commits and queries go on while it copies: the commits
// made meanwhile are kept in memory and written again to the copy before
// it replaces the file, so durability holds throughout; they pause only
// for that replay and the swap. The daemon scrubs by itself after a
// deletion; the admin commands call it before they exit.
func (s *Store) Scrub() error {
	// Commit the deletions queued so far, so that they are scrubbed too.
	if err := s.syncFile(); err != nil {
		return err
	}
	// Deletions outside the writer (retention, Forget) are not journaled:
	// they wait for the scrub.
	s.scrubMu.Lock()
	defer s.scrubMu.Unlock()

	s.wmu.Lock()
	s.dbMu.RLock()
	db := s.db
	if db == nil {
		s.dbMu.RUnlock()
		s.wmu.Unlock()
		return fmt.Errorf("historystore: scrub: the file is not open")
	}
	tmp := s.path + ".scrub"
	s.journal, s.journaled, s.journaling = nil, 0, true
	unlocked := false
	dst, err := db.copyTo(tmp, func() {
		s.wmu.Unlock() // the snapshot is taken: commits may go on
		unlocked = true
		if s.scrubCopying != nil {
			s.scrubCopying()
		}
	})
	s.dbMu.RUnlock()
	if !unlocked {
		s.wmu.Unlock()
	}
	// The copy took the flag along: drop it; a replayed commit that
	// deleted text in turn sets it again.
	if err == nil {
		err = dst.update(func(w writer) error { return w.del(spaceMeta, keyScrub) })
	}
	// Write again what was committed during the copy: in rounds while
	// commits go on, then the rest with commits stopped.
	again := false
	replay := func(items []journalItem) error {
		for len(items) > 0 && err == nil {
			n, events := 0, 0
			for n < len(items) && (n == 0 || events+len(items[n].batch) <= maxBatch) {
				events += len(items[n].batch)
				n++
			}
			chunk := items[:n]
			items = items[n:]
			err = dst.update(func(w writer) error {
				for _, j := range chunk {
					res := commitResult{deltas: make(map[*target]*delta)}
					if err := s.write(w, j.batch, j.ops, &res); err != nil {
						return err
					}
					again = again || res.scrub
				}
				return nil
			})
		}
		return err
	}
	for round := 0; round < 4 && err == nil; round++ {
		s.wmu.Lock()
		items := s.journal
		s.journal, s.journaled = nil, 0
		s.wmu.Unlock()
		if len(items) == 0 {
			break
		}
		err = replay(items)
	}
	s.wmu.Lock()
	journal := s.journal
	s.journal, s.journaled, s.journaling = nil, 0, false
	if err == nil {
		err = replay(journal)
	}
	if err == nil {
		s.dbMu.Lock()
		if s.db != db {
			err = errors.New("the file was reopened meanwhile")
		} else if err = os.Rename(tmp, s.path); err == nil {
			// The copy is open already: renamed over the file it stays
			// valid, and the old file is read no more.
			s.db = dst
			if s.wal != nil {
				// Past its records the log holds those of earlier
				// rounds, which may include deleted text.
				terr := s.wal.f.Truncate(s.wal.off)
				if terr == nil {
					terr = fdatasync(s.wal.f) // or the tail comes back on a power loss
				}
				if terr != nil {
					s.failed("scrub", terr)
				}
			}
		}
		s.dbMu.Unlock()
	}
	s.wmu.Unlock()
	if err != nil {
		if dst != nil {
			dst.close()
		}
		os.Remove(tmp)
		return fmt.Errorf("historystore: scrub: %w", err)
	}
	db.close()
	s.diskBytes.Store(dst.size())
	if err := durable.SyncDir(filepath.Dir(s.path)); err != nil {
		s.failed("scrub", err)
	}
	s.mu.Lock()
	s.scrubAt = time.Time{}
	if again {
		s.scheduleScrub()
	}
	s.mu.Unlock()
	return nil
}

// retain deletes what retention no longer keeps.
func (s *Store) retain(now time.Time) {
	deleted := 0
	defer func() {
		s.retentions.Add(1)
		if deleted > 0 && s.opts.Hooks.Retained != nil {
			s.opts.Hooks.Retained(deleted)
		}
	}()
	report := func(n int, err error) bool {
		deleted += n
		if err != nil {
			s.failed("retention", err)
			return false
		}
		select {
		case <-s.stop:
			return false
		default:
			return true
		}
	}
	targets := s.diskTargets()
	if s.opts.MaxAge > 0 {
		cutoff := now.Add(-s.opts.MaxAge).UnixMilli()
		for _, t := range targets {
			for {
				n, more, err := s.deleteFront(t, deleteChunk, func(v []byte) bool { return eventrec.At(v) < cutoff })
				if !report(n, err) {
					return
				}
				if !more {
					break
				}
			}
		}
	}
	if s.opts.MaxPerTarget > 0 {
		for _, t := range targets {
			for {
				rec, _, _, err := s.targetInfo(t)
				excess := rec.events - int64(s.opts.MaxPerTarget)
				if err != nil || excess <= 0 {
					break
				}
				n, _, err := s.deleteFront(t, int(min(excess, deleteChunk)), func([]byte) bool { return true })
				if !report(n, err) {
					return
				}
				if n == 0 {
					break
				}
			}
		}
	}
	for s.opts.MaxBytes > 0 && s.stored.Load() > s.opts.MaxBytes {
		n, err := s.deleteOldest(targets, s.stored.Load()-s.opts.MaxBytes)
		if !report(n, err) || n == 0 {
			return
		}
	}
}

// deleteOldest deletes the oldest events across targets until excess
// bytes are freed, in one transaction of at most deleteChunk deletions.
func (s *Store) deleteOldest(targets []*target, excess int64) (int, error) {
	s.scrubMu.Lock()
	defer s.scrubMu.Unlock()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return 0, errors.New("historystore: not open")
	}
	type tt struct {
		name string
		tid  uint32
	}
	s.mu.Lock()
	ids := make([]tt, 0, len(targets))
	for _, t := range targets {
		ids = append(ids, tt{t.name, t.tid})
	}
	s.mu.Unlock()
	var freed int64
	n := 0
	err := s.db.update(func(w writer) error {
		// A heap of each target's oldest event: deleting from the top
		// takes the oldest across all of them.
		h := &oldestHeap{}
		c := w.cursor(spaceEvents)
		head := func(i int, from uint64) {
			k, v := c.Seek(evKey(ids[i].tid, from))
			if len(k) == evKeyLen && keyTid(k) == ids[i].tid && eventrec.Valid(v) {
				heap.Push(h, oldestItem{i, keySeq(k), eventrec.At(v)})
			}
		}
		for i := range ids {
			head(i, 0)
		}
		deltas := make(map[int]*delta)
		for h.Len() > 0 && freed < excess && n < deleteChunk {
			top := heap.Pop(h).(oldestItem)
			b, err := deleteEvent(w, ids[top.i].tid, top.seq)
			if err != nil {
				return err
			}
			d := deltas[top.i]
			if d == nil {
				d = &delta{}
				deltas[top.i] = d
			}
			d.events--
			d.bytes -= b
			freed += b
			n++
			head(top.i, top.seq+1)
		}
		for i, d := range deltas {
			if err := addToRecord(w, ids[i].name, ids[i].tid, d.events, d.bytes); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.stored.Add(-freed)
	return n, nil
}

// diskTargets lists the targets the file knows.
func (s *Store) diskTargets() []*target {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*target, 0, len(s.targets))
	for _, t := range s.targets {
		if t.tid != 0 {
			out = append(out, t)
		}
	}
	return out
}

// targetInfo reads t's record and the time of its oldest event in the file.
func (s *Store) targetInfo(t *target) (rec targetRecord, oldest int64, ok bool, err error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return rec, 0, false, errors.New("historystore: not open")
	}
	s.mu.Lock()
	tid := t.tid
	s.mu.Unlock()
	err = s.db.view(func(r reader) error {
		if v := r.get(spaceTargets, []byte(t.name)); v != nil {
			var err error
			if rec, err = decodeTargetRecord(v); err != nil {
				return err
			}
		}
		k, v := r.cursor(spaceEvents).Seek(evKey(tid, 0))
		if len(k) == evKeyLen && keyTid(k) == tid && eventrec.Valid(v) {
			oldest, ok = eventrec.At(v), true
		}
		return nil
	})
	return rec, oldest, ok, err
}

// deleteFront deletes up to limit of t's oldest events while keep says
// so, in one transaction. more reports that the limit cut it short.
func (s *Store) deleteFront(t *target, limit int, del func(v []byte) bool) (n int, more bool, err error) {
	s.scrubMu.Lock()
	defer s.scrubMu.Unlock()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return 0, false, errors.New("historystore: not open")
	}
	s.mu.Lock()
	tid := t.tid
	s.mu.Unlock()
	// Look before writing: a transaction that changes nothing still costs
	// an fsync, and retention visits every target.
	due := false
	if err := s.db.view(func(r reader) error {
		k, v := r.cursor(spaceEvents).Seek(evKey(tid, 0))
		due = len(k) == evKeyLen && keyTid(k) == tid && eventrec.Valid(v) && del(v)
		return nil
	}); err != nil || !due {
		return 0, false, err
	}
	var freed int64
	err = s.db.update(func(w writer) error {
		var keys [][]byte
		c := w.cursor(spaceEvents)
		for k, v := c.Seek(evKey(tid, 0)); k != nil; k, v = c.Next() {
			if len(k) != evKeyLen || keyTid(k) != tid || !eventrec.Valid(v) || !del(v) {
				break
			}
			if len(keys) == limit {
				more = true
				break
			}
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			b, err := deleteEvent(w, tid, keySeq(k))
			if err != nil {
				return err
			}
			freed += b
		}
		n = len(keys)
		return addToRecord(w, t.name, tid, -int64(n), -freed)
	})
	if err != nil {
		return 0, false, err
	}
	s.stored.Add(-freed)
	return n, more, nil
}

type oldestItem struct {
	i      int // the target's index
	seq    uint64
	oldest int64
}

type oldestHeap struct{ items []oldestItem }

func (h *oldestHeap) Len() int           { return len(h.items) }
func (h *oldestHeap) Less(i, j int) bool { return h.items[i].oldest < h.items[j].oldest }
func (h *oldestHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *oldestHeap) Push(x any)         { h.items = append(h.items, x.(oldestItem)) }
func (h *oldestHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
