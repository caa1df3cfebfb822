package historystore

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/internal/eventrec"
	"github.com/livechat/livechat/rooms"
)

// TargetStats describes one target's history in the file.
type TargetStats struct {
	Name   string
	Events int64
	Bytes  int64 // the events and their index entries
	Oldest time.Time
	Newest time.Time
}

// Stats describes every target with events in the file, by name, once
// everything appended is committed.
func (s *Store) Stats() ([]TargetStats, error) {
	if err := s.syncFile(); err != nil {
		return nil, err
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return nil, rooms.ErrHistoryUnavailable
	}
	var out []TargetStats
	err := s.db.view(func(r reader) error {
		c := r.cursor(spaceTargets)
		ev := r.cursor(spaceEvents)
		for k, v := c.First(); k != nil; k, v = c.Next() {
			rec, err := decodeTargetRecord(v)
			if err != nil {
				return err
			}
			if rec.events <= 0 {
				continue
			}
			st := TargetStats{Name: string(k), Events: rec.events, Bytes: rec.bytes}
			if k, v := ev.Seek(evKey(rec.tid, 0)); len(k) == evKeyLen && keyTid(k) == rec.tid && eventrec.Valid(v) {
				st.Oldest = time.UnixMilli(eventrec.At(v))
			}
			if last := lastSeq(r, rec.tid); last > 0 {
				if v := r.get(spaceEvents, evKey(rec.tid, last)); eventrec.Valid(v) {
					st.Newest = time.UnixMilli(eventrec.At(v))
				}
			}
			out = append(out, st)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// ExportedEvent is one line of Export.
type ExportedEvent struct {
	Time      string            `json:"time"` // rooms.TimeFormat, UTC
	ID        string            `json:"msgid,omitempty"`
	Source    string            `json:"source,omitempty"`
	Account   string            `json:"account,omitempty"`
	Origin    string            `json:"origin,omitempty"`
	Command   string            `json:"command"`
	Params    []string          `json:"params"`
	ExtParams []string          `json:"ext_params,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
}

// Export writes target's events to w as JSON lines, oldest first, once
// everything appended is committed, and returns how many it wrote. It
// reads in bounded transactions, so the daemon's commits go on meanwhile.
func (s *Store) Export(name string, w io.Writer) (int, error) {
	if err := s.syncFile(); err != nil {
		return 0, err
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	written := 0
	from := uint64(0)
	for {
		events, next, err := s.exportChunk(name, from, 1000)
		if err != nil {
			return written, err
		}
		for _, e := range events {
			x := ExportedEvent{
				Time: e.At.UTC().Format(rooms.TimeFormat), ID: e.ID, Source: e.Source,
				Account: e.Account, Origin: e.Origin, Command: e.Command,
				Params: e.Params, ExtParams: e.ExtParams,
			}
			if x.Params == nil {
				x.Params = []string{}
			}
			if len(e.Tags) > 0 {
				x.Tags = make(map[string]string, len(e.Tags))
				for _, t := range e.Tags {
					x.Tags[t.Key] = t.Value
				}
			}
			if err := enc.Encode(&x); err != nil {
				return written, err
			}
			written++
		}
		if next == 0 {
			return written, bw.Flush()
		}
		from = next
	}
}

// exportChunk reads up to n of target's visible events from sequence
// from; next is where to go on, 0 when done.
func (s *Store) exportChunk(name string, from uint64, n int) (events []*rooms.Event, next uint64, err error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	s.mu.Lock()
	if err := s.unavailable(); err != nil {
		s.mu.Unlock()
		return nil, 0, err
	}
	t := s.targets[name]
	if t == nil {
		s.mu.Unlock()
		return nil, 0, nil
	}
	v := snapshot(t)
	s.mu.Unlock()
	err = s.db.view(func(r reader) error {
		c := r.cursor(spaceEvents)
		for k, val := c.Seek(evKey(v.tid, max(from, v.lo))); k != nil; k, val = c.Next() {
			if len(k) != evKeyLen || keyTid(k) != v.tid || keySeq(k) >= v.hi {
				return nil
			}
			if len(events) == n {
				next = keySeq(k)
				return nil
			}
			if v.hidden(keySeq(k)) {
				continue
			}
			e, err := eventrec.Decode(val)
			if err != nil {
				return err
			}
			events = append(events, e)
		}
		return nil
	})
	return events, next, err
}

// Forget deletes every event an account sent (its Account folds equal, or
// its Origin names the account), in every target, and returns how many.
// The text leaves the disk with the next scrub: call Scrub to make it now.
func (s *Store) Forget(account string) (int, error) {
	if account == "" {
		return 0, errors.New("historystore: forget: no account")
	}
	if err := s.syncFile(); err != nil {
		return 0, err
	}
	folded := accounts.Fold(account)
	origin := "a:" + folded
	match := func(acc, org []byte) bool {
		return string(org) == origin || len(acc) == len(folded) && accounts.Fold(string(acc)) == folded
	}
	s.mu.Lock()
	for _, en := range s.pending { // appended since the sync
		if en.dead || en.e.Origin != origin && accounts.Fold(en.e.Account) != folded {
			continue
		}
		if en.gen > s.takenGen {
			en.dead = true // never written
		} else {
			// In the log already: deleted from the file right after it
			// is written there, so the log is not its last copy.
			t := en.t
			t.mem = slices.DeleteFunc(t.mem, func(m *entry) bool { return m == en })
			s.hideLocked(t, en.seq)
		}
	}
	s.mu.Unlock()

	total := 0
	var from []byte
	for {
		keys, next, err := s.forgetScan(from, match)
		if err != nil {
			return total, err
		}
		n, err := s.deleteKeys(keys)
		total += n
		if err != nil {
			return total, err
		}
		if next == nil {
			return total, nil
		}
		from = next
	}
}

// forgetScan reads events from key from on, for at most a bounded number,
// and returns the keys of those that match; next is where to go on, nil
// when done.
func (s *Store) forgetScan(from []byte, match func(acc, org []byte) bool) (keys [][]byte, next []byte, err error) {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return nil, nil, rooms.ErrHistoryUnavailable
	}
	err = s.db.view(func(r reader) error {
		c := r.cursor(spaceEvents)
		k, v := c.First()
		if from != nil {
			k, v = c.Seek(from)
		}
		for read := 0; k != nil; k, v = c.Next() {
			if read == 200_000 || len(keys) == deleteChunk {
				next = append([]byte(nil), k...)
				return nil
			}
			read++
			_, acc, org, err := eventrec.Fields(v)
			if err != nil {
				return fmt.Errorf("historystore: forget: event %x: %w", k, err)
			}
			if match(acc, org) {
				keys = append(keys, append([]byte(nil), k...))
			}
		}
		return nil
	})
	return keys, next, err
}

// deleteKeys deletes events by key in one transaction and schedules a
// scrub.
func (s *Store) deleteKeys(keys [][]byte) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	s.scrubMu.Lock()
	defer s.scrubMu.Unlock()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return 0, rooms.ErrHistoryUnavailable
	}
	s.mu.Lock()
	names := make(map[uint32]string, len(s.targets))
	for name, t := range s.targets {
		names[t.tid] = name
	}
	s.mu.Unlock()
	type d struct{ events, bytes int64 }
	deltas := map[uint32]*d{}
	var freed int64
	err := s.db.update(func(w writer) error {
		for _, k := range keys {
			tid := keyTid(k)
			n, err := deleteEvent(w, tid, keySeq(k))
			if err != nil {
				return err
			}
			if n == 0 {
				continue
			}
			if deltas[tid] == nil {
				deltas[tid] = &d{}
			}
			deltas[tid].events--
			deltas[tid].bytes -= n
			freed += n
		}
		for tid, dd := range deltas {
			name, ok := names[tid]
			if !ok {
				return fmt.Errorf("historystore: events of an unknown target %d", tid)
			}
			if err := addToRecord(w, name, tid, dd.events, dd.bytes); err != nil {
				return err
			}
		}
		return w.put(spaceMeta, keyScrub, []byte{1})
	})
	if err != nil {
		return 0, err
	}
	s.stored.Add(-freed)
	s.mu.Lock()
	s.scheduleScrub()
	s.mu.Unlock()
	n := 0
	for _, dd := range deltas {
		n -= int(dd.events)
	}
	return n, nil
}
