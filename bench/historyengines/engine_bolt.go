package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// boltEngine keeps events under "ev" and the msgid index in "id". Nested
// (the default layout), each target has a bucket of its own under "ev",
// keyed by sequence; flat, "ev" holds every event keyed by target and
// sequence. A target's keys only ever grow at the end, so its pages are
// filled to 100% (bbolt's default 50% is for keys inserted anywhere).
type boltEngine struct {
	label string
	path  string
	db    *bolt.DB
	flat  bool
	// idxFill is the msgid index's fill: rooms.IDs' ids (a prefix and a
	// counter) grow at the end, so its pages can be filled too; random
	// ids land anywhere and want bbolt's default half-full pages.
	idxFill float64
}

var (
	bktEvents = []byte("ev")
	bktIndex  = []byte("id")
)

// openBolt opens a store in dir. tuned turns off what costs every commit
// without buying anything a history needs: writing the freelist (rebuilt
// by a scan at open instead) and the array freelist (slow once the file
// has many free pages, as it will after retention).
func openBolt(dir string, tuned, flat, randIDs bool) (*boltEngine, error) {
	opts := &bolt.Options{}
	label := "bbolt-default"
	if tuned {
		opts.NoFreelistSync = true
		opts.FreelistType = bolt.FreelistMapType
		label = "bbolt"
	}
	if flat {
		label += "-flat"
	}
	path := filepath.Join(dir, "history.db")
	db, err := bolt.Open(path, 0o600, opts)
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bktEvents); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bktIndex)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	e := &boltEngine{label: label, path: path, db: db, flat: flat, idxFill: 1.0}
	if randIDs {
		e.idxFill = bolt.DefaultFillPercent
	}
	return e, nil
}

func (e *boltEngine) name() string { return e.label }

func tidName(tid uint32) []byte { return binary.BigEndian.AppendUint32(nil, tid) }

func (e *boltEngine) commit(recs []rec, sync bool) error {
	e.db.NoSync = !sync
	return e.db.Update(func(tx *bolt.Tx) error {
		evs, idx := tx.Bucket(bktEvents), tx.Bucket(bktIndex)
		idx.FillPercent = e.idxFill
		evs.FillPercent = 1.0
		// A group holds events of many targets; look each bucket up once.
		var last uint32
		b := evs
		// bbolt keeps the key and value slices given to Put until the
		// transaction commits: each record needs bytes of its own (one
		// allocation for all here), never a reused buffer.
		buf := make([]byte, 0, 24*len(recs))
		for i := range recs {
			r := &recs[i]
			if !e.flat && (b == evs || r.tid != last) {
				name := tidName(r.tid)
				if b = evs.Bucket(name); b == nil {
					var err error
					if b, err = evs.CreateBucket(name); err != nil {
						return err
					}
				}
				b.FillPercent = 1.0
				last = r.tid
			}
			k := len(buf)
			if e.flat {
				buf = binary.BigEndian.AppendUint32(buf, r.tid)
			}
			buf = seqKey(buf, r.seq)
			if err := b.Put(buf[k:], r.val); err != nil {
				return err
			}
			buf = idxVal(buf, r.tid, r.seq)
			if err := idx.Put(r.id, buf[len(buf)-12:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// tcur walks one target's events in either layout.
type tcur struct {
	c    *bolt.Cursor
	b    *bolt.Bucket
	pfx  []byte // flat: the target's key prefix; nested: nil
	pbuf [4]byte
	kbuf [12]byte
}

func (e *boltEngine) cursor(tx *bolt.Tx, tid uint32) *tcur {
	evs := tx.Bucket(bktEvents)
	t := &tcur{}
	if e.flat {
		t.b = evs
		t.pfx = binary.BigEndian.AppendUint32(t.pbuf[:0], tid)
	} else {
		var name [4]byte
		binary.BigEndian.PutUint32(name[:], tid)
		if t.b = evs.Bucket(name[:]); t.b == nil {
			return nil
		}
	}
	t.c = t.b.Cursor()
	return t
}

// ret turns a cursor position into the target's sequence and event, or
// ok false past either end of the target.
func (t *tcur) ret(k, v []byte) (uint64, []byte, bool) {
	if k == nil || len(k) != len(t.pfx)+8 || !bytes.HasPrefix(k, t.pfx) {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(k[len(t.pfx):]), v, true
}

func (t *tcur) seek(seq uint64) (uint64, []byte, bool) {
	return t.ret(t.c.Seek(seqKey(append(t.kbuf[:0], t.pfx...), seq)))
}

func (t *tcur) first() (uint64, []byte, bool) {
	if t.pfx == nil {
		return t.ret(t.c.First())
	}
	return t.seek(0)
}

func (t *tcur) last() (uint64, []byte, bool) {
	if t.pfx == nil {
		return t.ret(t.c.Last())
	}
	// Just past the target's keys, then one back.
	if k, _ := t.c.Seek(binary.BigEndian.AppendUint32(t.kbuf[:0], binary.BigEndian.Uint32(t.pfx)+1)); k == nil {
		return t.ret(t.c.Last())
	}
	return t.ret(t.c.Prev())
}

func (t *tcur) next() (uint64, []byte, bool) { return t.ret(t.c.Next()) }
func (t *tcur) prev() (uint64, []byte, bool) { return t.ret(t.c.Prev()) }

func (e *boltEngine) latest(tid uint32, n int, out *result) error {
	out.reset()
	return e.db.View(func(tx *bolt.Tx) error {
		c := e.cursor(tx, tid)
		if c == nil {
			return nil
		}
		for _, v, ok := c.last(); ok && out.len() < n; _, v, ok = c.prev() {
			out.add(v)
		}
		out.reverse()
		return nil
	})
}

// seqOf looks a msgid up in the index.
func (e *boltEngine) seqOf(tx *bolt.Tx, tid uint32, id []byte) (uint64, bool) {
	v := tx.Bucket(bktIndex).Get(id)
	if len(v) != 12 || binary.BigEndian.Uint32(v) != tid {
		return 0, false
	}
	return binary.BigEndian.Uint64(v[4:]), true
}

func (e *boltEngine) before(tid uint32, id []byte, n int, out *result) error {
	out.reset()
	return e.db.View(func(tx *bolt.Tx) error {
		seq, ok := e.seqOf(tx, tid, id)
		c := e.cursor(tx, tid)
		if !ok || c == nil {
			return errNotFound
		}
		c.seek(seq)
		for _, v, ok := c.prev(); ok && out.len() < n; _, v, ok = c.prev() {
			out.add(v)
		}
		out.reverse()
		return nil
	})
}

// afterTime finds the first event at or after at by bisecting the
// target's sequence: times only grow along it, and a seek costs about a
// microsecond, so no time index is kept (it would cost a write per event
// for a query clients rarely make).
func (e *boltEngine) afterTime(tid uint32, at int64, n int, out *result) error {
	out.reset()
	return e.db.View(func(tx *bolt.Tx) error {
		c := e.cursor(tx, tid)
		if c == nil {
			return nil
		}
		lo, _, ok := c.first()
		if !ok {
			return nil
		}
		hi, _, _ := c.last()
		hi++
		for lo < hi { // first seq whose time is >= at
			mid := lo + (hi-lo)/2
			seq, v, ok := c.seek(mid)
			if !ok {
				hi = mid
				continue
			}
			if valTime(v) < at {
				lo = seq + 1
			} else {
				hi = mid
			}
		}
		for _, v, ok := c.seek(lo); ok && out.len() < n; _, v, ok = c.next() {
			out.add(v)
		}
		return nil
	})
}

func (e *boltEngine) around(tid uint32, id []byte, n int, out *result) error {
	out.reset()
	return e.db.View(func(tx *bolt.Tx) error {
		seq, ok := e.seqOf(tx, tid, id)
		c := e.cursor(tx, tid)
		if !ok || c == nil {
			return errNotFound
		}
		c.seek(seq)
		for _, v, ok := c.prev(); ok && out.len() < n/2; _, v, ok = c.prev() {
			out.add(v)
		}
		out.reverse()
		for _, v, ok := c.seek(seq); ok && out.len() < n; _, v, ok = c.next() {
			out.add(v)
		}
		return nil
	})
}

func (e *boltEngine) deleteBefore(tid uint32, at int64, max int) (int, error) {
	e.db.NoSync = false
	var n int
	err := e.db.Update(func(tx *bolt.Tx) error {
		c := e.cursor(tx, tid)
		if c == nil {
			return errNothing
		}
		idx := tx.Bucket(bktIndex)
		// Collect first: deleting under a cursor moves it.
		var keys [][]byte
		for seq, v, ok := c.first(); ok && len(keys) < max && valTime(v) < at; seq, v, ok = c.next() {
			keys = append(keys, seqKey(bytes.Clone(c.pfx), seq))
			if err := idx.Delete(bytes.Clone(valID(v))); err != nil {
				return err
			}
		}
		if len(keys) == 0 {
			return errNothing // roll back: an empty commit still costs bbolt an fsync
		}
		for _, k := range keys {
			if err := c.b.Delete(k); err != nil {
				return err
			}
		}
		n = len(keys)
		return nil
	})
	if err == errNothing {
		err = nil
	}
	return n, err
}

var errNothing = errors.New("nothing to delete")

func (e *boltEngine) settle() error { return nil }

func (e *boltEngine) quiesce() {}

func (e *boltEngine) diskBytes() (int64, error) {
	fi, err := os.Stat(e.path)
	if err != nil {
		return 0, err
	}
	return allocated(fi), nil
}

// freeBytes is how much of the file bbolt holds free for reuse.
func (e *boltEngine) freeBytes() int64 {
	s := e.db.Stats()
	return int64(s.FreePageN+s.PendingPageN) * int64(e.db.Info().PageSize)
}

func (e *boltEngine) close() error { return e.db.Close() }
