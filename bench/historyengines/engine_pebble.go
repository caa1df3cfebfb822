package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// pebbleEngine keeps events under 'e' + target + sequence and the msgid
// index under 'i' + msgid, in one keyspace. A committed batch goes to the
// write-ahead log (one append, one fdatasync for a Sync batch; concurrent
// committers share it) and to the memtable; full memtables are flushed to
// sstables and compacted in the background.
type pebbleEngine struct {
	dir string
	db  *pebble.DB

	stalls     atomic.Int64
	stallNanos atomic.Int64
	stallStart atomic.Int64
}

// openPebble opens a store in dir; memtable 0 keeps Pebble's 4 MiB.
func openPebble(dir string, memtable uint64) (*pebbleEngine, error) {
	e := &pebbleEngine{dir: dir}
	// The default 8 MiB block cache keeps nothing here (4 shards of
	// 2 MiB admit no block: 0 hits in 300,000 reads), so every block read
	// is a pread, a checksum and a snappy decode; 64 MiB is what a store
	// would be given.
	c := pebble.NewCache(64 << 20)
	defer c.Unref()
	opts := &pebble.Options{
		Cache:  c,
		Logger: quietLogger{},
		EventListener: &pebble.EventListener{
			WriteStallBegin: func(pebble.WriteStallBeginInfo) {
				e.stalls.Add(1)
				e.stallStart.Store(time.Now().UnixNano())
			},
			WriteStallEnd: func() {
				e.stallNanos.Add(time.Now().UnixNano() - e.stallStart.Load())
			},
		},
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	e.db = db
	return e, nil
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic("pebble: fatal")
}

func (e *pebbleEngine) name() string { return "pebble" }

func evKey(b []byte, tid uint32, seq uint64) []byte {
	b = append(b, 'e')
	b = binary.BigEndian.AppendUint32(b, tid)
	return binary.BigEndian.AppendUint64(b, seq)
}

func idxKey(b []byte, id []byte) []byte { return append(append(b, 'i'), id...) }

func (e *pebbleEngine) commit(recs []rec, sync bool) error {
	b := e.db.NewBatch()
	defer b.Close()
	var k [13]byte
	var ik [64]byte
	var iv [12]byte
	for i := range recs {
		r := &recs[i]
		if err := b.Set(evKey(k[:0], r.tid, r.seq), r.val, nil); err != nil {
			return err
		}
		if err := b.Set(idxKey(ik[:0], r.id), idxVal(iv[:0], r.tid, r.seq), nil); err != nil {
			return err
		}
	}
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	return b.Commit(opt)
}

// iter opens an iterator bounded to one target's events: the bounds let
// Pebble skip every sstable that holds none of them.
func (e *pebbleEngine) iter(tid uint32, lower, upper *[13]byte) (*pebble.Iterator, error) {
	return e.db.NewIter(&pebble.IterOptions{
		LowerBound: evKey(lower[:0], tid, 0),
		UpperBound: evKey(upper[:0], tid+1, 0)[:5],
	})
}

func (e *pebbleEngine) latest(tid uint32, n int, out *result) error {
	out.reset()
	var lo, hi [13]byte
	it, err := e.iter(tid, &lo, &hi)
	if err != nil {
		return err
	}
	for ok := it.Last(); ok && out.len() < n; ok = it.Prev() {
		out.add(it.Value())
	}
	out.reverse()
	return it.Close()
}

func (e *pebbleEngine) seqOf(tid uint32, id []byte) (uint64, error) {
	var ik [64]byte
	v, closer, err := e.db.Get(idxKey(ik[:0], id))
	if err == pebble.ErrNotFound {
		return 0, errNotFound
	} else if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 12 || binary.BigEndian.Uint32(v) != tid {
		return 0, errNotFound
	}
	return binary.BigEndian.Uint64(v[4:]), nil
}

func (e *pebbleEngine) before(tid uint32, id []byte, n int, out *result) error {
	out.reset()
	seq, err := e.seqOf(tid, id)
	if err != nil {
		return err
	}
	var lo, hi, k [13]byte
	it, err := e.iter(tid, &lo, &hi)
	if err != nil {
		return err
	}
	for ok := it.SeekLT(evKey(k[:0], tid, seq)); ok && out.len() < n; ok = it.Prev() {
		out.add(it.Value())
	}
	out.reverse()
	return it.Close()
}

// afterTime bisects the sequence as the bbolt engine does.
func (e *pebbleEngine) afterTime(tid uint32, at int64, n int, out *result) error {
	out.reset()
	var lo, hi, kb [13]byte
	it, err := e.iter(tid, &lo, &hi)
	if err != nil {
		return err
	}
	defer it.Close()
	if !it.First() {
		return nil
	}
	l := binary.BigEndian.Uint64(it.Key()[5:])
	it.Last()
	h := binary.BigEndian.Uint64(it.Key()[5:]) + 1
	for l < h {
		mid := l + (h-l)/2
		if !it.SeekGE(evKey(kb[:0], tid, mid)) {
			h = mid
			continue
		}
		if valTime(it.Value()) < at {
			l = binary.BigEndian.Uint64(it.Key()[5:]) + 1
		} else {
			h = mid
		}
	}
	for ok := it.SeekGE(evKey(kb[:0], tid, l)); ok && out.len() < n; ok = it.Next() {
		out.add(it.Value())
	}
	return nil
}

func (e *pebbleEngine) around(tid uint32, id []byte, n int, out *result) error {
	out.reset()
	seq, err := e.seqOf(tid, id)
	if err != nil {
		return err
	}
	var lo, hi, k [13]byte
	it, err := e.iter(tid, &lo, &hi)
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.SeekLT(evKey(k[:0], tid, seq)); ok && out.len() < n/2; ok = it.Prev() {
		out.add(it.Value())
	}
	out.reverse()
	for ok := it.SeekGE(evKey(k[:0], tid, seq)); ok && out.len() < n; ok = it.Next() {
		out.add(it.Value())
	}
	return nil
}

// deleteBefore drops the events with one range tombstone (cheap to
// write; the space comes back when compaction reaches it) but must still
// read them for their msgids, whose index entries are deleted one by one.
func (e *pebbleEngine) deleteBefore(tid uint32, at int64, max int) (int, error) {
	var lo, hi, k [13]byte
	it, err := e.iter(tid, &lo, &hi)
	if err != nil {
		return 0, err
	}
	b := e.db.NewBatch()
	defer b.Close()
	var n int
	var last []byte
	var ik [64]byte
	for ok := it.First(); ok && n < max && valTime(it.Value()) < at; ok = it.Next() {
		if err := b.Delete(idxKey(ik[:0], valID(it.Value())), nil); err != nil {
			it.Close()
			return 0, err
		}
		last = append(last[:0], it.Key()...)
		n++
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	end := evKey(k[:0], tid, binary.BigEndian.Uint64(last[5:])+1)
	if err := b.DeleteRange(bytes.Clone(lo[:13]), end, nil); err != nil {
		return 0, err
	}
	return n, b.Commit(pebble.Sync)
}

func (e *pebbleEngine) settle() error {
	if err := e.db.Flush(); err != nil {
		return err
	}
	err := e.db.Compact(context.Background(), []byte{0}, []byte{0xff}, false)
	e.quiesce()
	return err
}

// quiesce waits, 20 s at most, until no compaction runs and the size of
// the directory has stopped changing (obsolete files are deleted in the
// background after the compaction that replaced them).
func (e *pebbleEngine) quiesce() {
	deadline := time.Now().Add(20 * time.Second)
	last := int64(-1)
	for time.Now().Before(deadline) {
		n, _ := dirBytes(e.dir)
		if e.db.Metrics().Compact.NumInProgress == 0 && n == last {
			return
		}
		last = n
		time.Sleep(250 * time.Millisecond)
	}
}

func (e *pebbleEngine) diskBytes() (int64, error) { return dirBytes(e.dir) }

// stallStats reports Pebble's write stalls (memtables or L0 full: writes
// wait for flushes and compactions).
func (e *pebbleEngine) stallStats() (int64, time.Duration) {
	return e.stalls.Load(), time.Duration(e.stallNanos.Load())
}

func (e *pebbleEngine) close() error { return e.db.Close() }
