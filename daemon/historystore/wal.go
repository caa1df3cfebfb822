package historystore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/livechat/livechat/internal/durable"
	"github.com/livechat/livechat/internal/eventrec"
	"github.com/livechat/livechat/rooms"
)

// The write-ahead log. A bbolt commit of the few events a chat writes in
// 10 ms costs about half a millisecond of CPU whatever it carries: it
// rewrites every page on the path to each target's newest events (12 to 40
// pages) and syncs twice. Appending those events to a log and syncing it
// once costs a seventh of that (BenchmarkCommitSmall). So the group
// commit every SyncInterval goes to the log, and the events go into the
// file in bulk (a checkpoint) every checkpointInterval, at maxBatch
// events, when the log reaches walMaxBytes, before a redaction, and at
// Close; a kill -9 loses what it lost before, and the next open writes
// what the log holds beyond the file into the file.
//
// The log is <path>.wal, a sequence of records from offset 0:
//
//	length(4) crc32c(4) | lsn(8) seq(8) len(name)(2) name event-record
//
// A record without an event record is a deletion: every event of name
// numbered below seq is gone (Store.Delete). It may wait in the log like
// an event, since replaying it removes that run from the log's records
// and from the file alike.
//
// lsn numbers the records one by one. The file's meta space holds the lsn
// of the newest record it contains ("wal"): opening replays the records
// after it. Once a checkpoint holds every record, the next ones overwrite
// the log from offset 0 (a block rewritten costs its sync less than one
// allocated); reading stops at the first record whose lsn does not follow,
// or that is torn.

// checkpointInterval bounds how long events wait in the log and in
// memory before they are in the file. A variable so that tests can keep
// them in the log.
var checkpointInterval = time.Second

const (
	walSuffix = ".wal"
	// walMaxBytes starts a checkpoint early when the log is this long.
	walMaxBytes  = 4 << 20
	walHeaderLen = 8
)

var keyWAL = []byte("wal")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type walLog struct {
	f   *os.File
	off int64  // where the next record goes
	lsn uint64 // the newest record's lsn
	buf []byte
}

// walRecord is a record read back from the log.
type walRecord struct {
	lsn  uint64
	seq  uint64
	name string
	val  []byte // the event record, as the file stores it; empty for a deletion
}

// walItem is an event to log (en), or a deletion of name's events below
// below. e is taken under mu, since trimPending may clear en.e while the
// writer encodes. write sets lsn.
type walItem struct {
	en    *entry
	e     *rooms.Event
	name  string
	below uint64
	lsn   uint64
}

// write appends the items' records and syncs the log, numbering each
// entry. It returns the bytes the events will take in the file (what
// StoredBytes counts).
func (w *walLog) write(items []walItem) (stored int64, err error) {
	b := w.buf[:0]
	lsn := w.lsn
	for _, it := range items {
		lsn++
		name, seq := it.name, it.below
		if it.en != nil {
			name, seq = it.en.t.name, it.en.seq
		}
		start := len(b)
		b = append(b, make([]byte, walHeaderLen)...)
		b = binary.BigEndian.AppendUint64(b, lsn)
		b = binary.BigEndian.AppendUint64(b, seq)
		b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
		b = append(b, name...)
		if it.en != nil {
			rec := len(b)
			b = eventrec.Append(b, it.e)
			stored += evKeyLen + int64(len(b)-rec)
			if id := it.e.ID; id != "" {
				stored += 4 + int64(len(id)) + seqLen
			}
		}
		payload := b[start+walHeaderLen:]
		binary.BigEndian.PutUint32(b[start:], uint32(len(payload)))
		binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(payload, crcTable))
	}
	if cap(b) <= 1<<20 {
		w.buf = b
	}
	// A failed write or sync may still leave the records in the file:
	// their numbers are used up either way, so that the checkpoint that
	// must follow claims them (Store.commit) and no replay brings back
	// what was redacted since.
	if _, err := w.f.WriteAt(b, w.off); err != nil {
		w.lsn = lsn
		return 0, err
	}
	if err := fdatasync(w.f); err != nil {
		w.lsn = lsn
		return 0, err
	}
	w.off += int64(len(b))
	for i := range items {
		items[i].lsn = w.lsn + uint64(i) + 1
		if en := items[i].en; en != nil {
			en.lsn = items[i].lsn
		}
	}
	w.lsn = lsn
	return stored, nil
}

// reset makes the next records overwrite the log: the file holds every
// record written so far.
func (w *walLog) reset() { w.off = 0 }

// openWAL opens the log at path and returns it with the records after lsn
// from, in order.
func openWAL(path string, from uint64) (*walLog, []walRecord, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	// A log just created must survive a power loss as a name too.
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	w := &walLog{f: f, lsn: from}
	var recs []walRecord
	var prev uint64
	for off := 0; off+walHeaderLen <= len(data); {
		n := int(binary.BigEndian.Uint32(data[off:]))
		end := off + walHeaderLen + n
		if n < 18 || end > len(data) {
			break
		}
		p := data[off+walHeaderLen : end]
		if crc32.Checksum(p, crcTable) != binary.BigEndian.Uint32(data[off+4:]) {
			break
		}
		lsn, seq, nl := binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:]), int(binary.BigEndian.Uint16(p[16:]))
		if off > 0 && lsn != prev+1 || 18+nl > len(p) {
			break // a record of an earlier round, left behind
		}
		prev = lsn
		off = end
		if lsn > from {
			recs = append(recs, walRecord{lsn: lsn, seq: seq, name: string(p[18 : 18+nl]), val: p[18+nl:]})
		}
		w.lsn = max(w.lsn, lsn)
	}
	return w, recs, nil
}

// replayWAL writes the logged records into the file, in transactions of
// at most maxBatch, skipping any the file holds already.
func replayWAL(eng engine, recs []walRecord) error {
	// A deletion removes the events numbered below it, wherever they are
	// in the log: what a target got after it is numbered above.
	below := map[string]uint64{}
	for _, r := range recs {
		if len(r.val) == 0 {
			below[r.name] = max(below[r.name], r.seq)
		}
	}
	for len(recs) > 0 {
		chunk := recs[:min(len(recs), maxBatch)]
		recs = recs[len(chunk):]
		err := eng.update(func(w writer) error {
			scrub := false
			type tgt struct {
				tid           uint32
				known         bool // the file has a record of it
				last          uint64
				events, bytes int64
			}
			targets := map[string]*tgt{}
			var nextTid uint32
			for _, r := range chunk {
				t := targets[r.name]
				if t == nil {
					t = &tgt{}
					if v := w.get(spaceTargets, []byte(r.name)); v != nil {
						rec, err := decodeTargetRecord(v)
						if err != nil {
							return err
						}
						t.tid, t.known = rec.tid, true
					} else {
						if nextTid == 0 {
							nextTid = 1
							c := w.cursor(spaceTargets)
							for k, v := c.First(); k != nil; k, v = c.Next() {
								if rec, err := decodeTargetRecord(v); err == nil {
									nextTid = max(nextTid, rec.tid+1)
								}
							}
						}
						t.tid = nextTid
						nextTid++
					}
					t.last = lastSeq(w, t.tid)
					targets[r.name] = t
				}
				if len(r.val) == 0 {
					if t.known {
						n, b, _, err := deleteBelow(w, t.tid, r.seq, math.MaxInt-1)
						if err != nil {
							return err
						}
						t.events -= n
						t.bytes -= b
						if n > 0 {
							scrub = true
						}
					}
					continue
				}
				if r.seq <= t.last || r.seq < below[r.name] {
					continue
				}
				t.last = r.seq
				k := evKey(t.tid, r.seq)
				if err := w.put(spaceEvents, k, r.val); err != nil {
					return err
				}
				n := int64(len(k) + len(r.val))
				id, _, _, err := eventrec.Fields(r.val)
				if err != nil {
					return fmt.Errorf("historystore: a logged event of %s: %w", r.name, err)
				}
				if len(id) > 0 {
					ik := idKey(t.tid, string(id))
					if err := w.put(spaceIDs, ik, binary.BigEndian.AppendUint64(nil, r.seq)); err != nil {
						return err
					}
					n += int64(len(ik)) + seqLen
				}
				t.events++
				t.bytes += n
			}
			for name, t := range targets {
				if err := addToRecord(w, name, t.tid, t.events, t.bytes); err != nil {
					return err
				}
			}
			if scrub {
				// Deleted events are in free pages until a scrub.
				if err := w.put(spaceMeta, keyScrub, []byte{1}); err != nil {
					return err
				}
			}
			return w.put(spaceMeta, keyWAL, binary.BigEndian.AppendUint64(nil, chunk[len(chunk)-1].lsn))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// walFrom reads the lsn of the newest logged record the file holds; has
// is false for a file that never had a log (new, or from a livechatd
// before it), whose log, if one is there, is not its own.
func walFrom(r reader) (lsn uint64, has bool, err error) {
	v := r.get(spaceMeta, keyWAL)
	if v == nil {
		return 0, false, nil
	}
	if len(v) != 8 {
		return 0, false, errors.New("historystore: corrupt log position")
	}
	return binary.BigEndian.Uint64(v), true, nil
}
