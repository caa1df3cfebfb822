package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// boltEngine keeps each target's events in a bucket of its own under
// "ev", keyed by sequence, and the msgid index in "id". A target's keys
// only ever grow at the end, so its bucket is filled to 100% (bbolt's
// default 50% is for keys inserted anywhere).
type boltEngine struct {
	label string
	path  string
	db    *bolt.DB
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
func openBolt(dir string, tuned, randIDs bool) (*boltEngine, error) {
	opts := &bolt.Options{}
	label := "bbolt (defaults)"
	if tuned {
		opts.NoFreelistSync = true
		opts.FreelistType = bolt.FreelistMapType
		label = "bbolt"
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
	e := &boltEngine{label: label, path: path, db: db, idxFill: 1.0}
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
		// A group holds events of many targets; look each bucket up once.
		var last uint32
		var b *bolt.Bucket
		// bbolt keeps the key and value slices given to Put until the
		// transaction commits: each record needs bytes of its own (one
		// allocation for both here), never a reused buffer.
		buf := make([]byte, 0, 20*len(recs))
		for i := range recs {
			r := &recs[i]
			if b == nil || r.tid != last {
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
			buf = seqKey(buf, r.seq)
			if err := b.Put(buf[len(buf)-8:], r.val); err != nil {
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

func (e *boltEngine) target(tx *bolt.Tx, tid uint32) *bolt.Bucket {
	var name [4]byte
	binary.BigEndian.PutUint32(name[:], tid)
	return tx.Bucket(bktEvents).Bucket(name[:])
}

func (e *boltEngine) latest(tid uint32, n int, out *result) error {
	out.reset()
	return e.db.View(func(tx *bolt.Tx) error {
		b := e.target(tx, tid)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && out.len() < n; k, v = c.Prev() {
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
		b := e.target(tx, tid)
		if !ok || b == nil {
			return errNotFound
		}
		var k [8]byte
		c := b.Cursor()
		c.Seek(seqKey(k[:0], seq))
		for k, v := c.Prev(); k != nil && out.len() < n; k, v = c.Prev() {
			out.add(v)
		}
		out.reverse()
		return nil
	})
}

// afterTime finds the first event at or after at by bisecting the
// target's sequence: times only grow along it, and a seek costs a few
// hundred nanoseconds, so no time index is kept (it would cost a write
// per event for a query clients rarely make).
func (e *boltEngine) afterTime(tid uint32, at int64, n int, out *result) error {
	out.reset()
	return e.db.View(func(tx *bolt.Tx) error {
		b := e.target(tx, tid)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		fk, _ := c.First()
		lk, _ := c.Last()
		if fk == nil {
			return nil
		}
		lo, hi := binary.BigEndian.Uint64(fk), binary.BigEndian.Uint64(lk)+1
		var kb [8]byte
		for lo < hi { // first seq whose time is >= at
			mid := lo + (hi-lo)/2
			k, v := c.Seek(seqKey(kb[:0], mid))
			if k == nil {
				hi = mid
				continue
			}
			if valTime(v) < at {
				lo = binary.BigEndian.Uint64(k) + 1
			} else {
				hi = mid
			}
		}
		for k, v := c.Seek(seqKey(kb[:0], lo)); k != nil && out.len() < n; k, v = c.Next() {
			out.add(v)
		}
		return nil
	})
}

func (e *boltEngine) around(tid uint32, id []byte, n int, out *result) error {
	out.reset()
	return e.db.View(func(tx *bolt.Tx) error {
		seq, ok := e.seqOf(tx, tid, id)
		b := e.target(tx, tid)
		if !ok || b == nil {
			return errNotFound
		}
		var kb [8]byte
		c := b.Cursor()
		c.Seek(seqKey(kb[:0], seq))
		for k, v := c.Prev(); k != nil && out.len() < n/2; k, v = c.Prev() {
			out.add(v)
		}
		out.reverse()
		for k, v := c.Seek(seqKey(kb[:0], seq)); k != nil && out.len() < n; k, v = c.Next() {
			out.add(v)
		}
		return nil
	})
}

func (e *boltEngine) deleteBefore(tid uint32, at int64, max int) (int, error) {
	e.db.NoSync = false
	var n int
	err := e.db.Update(func(tx *bolt.Tx) error {
		b := e.target(tx, tid)
		if b == nil {
			return errNothing
		}
		idx := tx.Bucket(bktIndex)
		// Collect first: deleting under a cursor moves it.
		var keys [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(keys) < max && valTime(v) < at; k, v = c.Next() {
			keys = append(keys, bytes.Clone(k))
			if err := idx.Delete(bytes.Clone(valID(v))); err != nil {
				return err
			}
		}
		if len(keys) == 0 {
			return errNothing // roll back: an empty commit still costs bbolt an fsync
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
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
