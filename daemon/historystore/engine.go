package historystore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The store sees its engine as four ordered key spaces and transactions
// over them: everything bbolt-specific is in this file, so that another
// ordered key-value engine (an LSM such as Pebble, with the spaces as key
// prefixes) can replace it without touching the history logic.

type space uint8

const (
	spaceMeta    space = iota // "schema" (the layout version), "scrub" (a scrub is due)
	spaceTargets              // target name -> targetRecord
	spaceEvents               // tid(4) seq(8) -> event record
	spaceIDs                  // tid(4) msgid -> seq(8)
	nSpaces
)

var spaceNames = [nSpaces][]byte{[]byte("meta"), []byte("targets"), []byte("events"), []byte("ids")}

// cursor walks one space in key order. Keys and values are valid only in
// the transaction.
type cursor interface {
	First() (k, v []byte)
	Last() (k, v []byte)
	Seek(k []byte) (kk, v []byte)
	Next() (k, v []byte)
	Prev() (k, v []byte)
}

type reader interface {
	get(s space, k []byte) []byte
	cursor(s space) cursor
}

type writer interface {
	reader
	put(s space, k, v []byte) error
	del(s space, k []byte) error
}

// engine is a file of spaces. view and update recover a panic inside the
// engine (bbolt panics on some corrupt pages) into errEngine.
type engine interface {
	view(fn func(reader) error) error
	update(fn func(writer) error) error
	// size is the file's size in bytes.
	size() int64
	// copyTo writes the live data alone to a new file at path, durably
	// (what was deleted is not in it), and returns it open. started is
	// called once the copy's snapshot is taken: writes after it are not
	// in the copy.
	copyTo(path string, started func()) (engine, error)
	// snapshot calls fn with the file as of now: its size and a writer
	// of exactly that many bytes, a file the engine opens. Writes go on
	// meanwhile and are not in it.
	snapshot(fn func(size int64, snap io.WriterTo) error) error
	close() error
}

// errEngine wraps a panic from the engine: the file is not to be trusted.
var errEngine = errors.New("historystore: storage engine failure")

// ErrInUse: another process (a running livechatd) holds the store.
var ErrInUse = errors.New("historystore: the history store is in use by another livechatd")

type boltEngine struct {
	db *bolt.DB
}

// openBolt opens or creates the file at path.
func openBolt(path string) (eng engine, err error) {
	defer func() {
		if p := recover(); p != nil {
			eng, err = nil, fmt.Errorf("%w: opening %s: %v", errEngine, path, p)
		}
	}()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second,
		// The hashmap freelist stays fast when retention leaves many free
		// pages; the array one degrades with fragmentation.
		FreelistType: bolt.FreelistMapType,
		// Reads do not wait for a write that grows the map while the file
		// is under this size.
		InitialMmapSize: 256 << 20,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w (%s)", ErrInUse, path)
	}
	if err != nil {
		return nil, err
	}
	return &boltEngine{db: db}, nil
}

type boltTx struct {
	tx      *bolt.Tx
	buckets [nSpaces]*bolt.Bucket
}

// bucket returns a space's bucket, creating it in a write transaction
// (so a file is only changed once the schema check passed); nil when a
// read finds none.
func (t *boltTx) bucket(s space) *bolt.Bucket {
	if t.buckets[s] == nil {
		b := t.tx.Bucket(spaceNames[s])
		if b == nil && t.tx.Writable() {
			var err error
			if b, err = t.tx.CreateBucket(spaceNames[s]); err != nil {
				panic(err) // only for an invalid name or a read-only tx
			}
		}
		if b == nil {
			return nil
		}
		if s == spaceEvents || s == spaceIDs {
			// Events, and mostly their msgids (a per-process prefix and
			// a counter), arrive in key order per target: splitting pages
			// 90% full instead of half saves an eighth of the file
			// (measured: 291 instead of 329 bytes a message).
			b.FillPercent = 0.9
		}
		t.buckets[s] = b
	}
	return t.buckets[s]
}

func (t *boltTx) get(s space, k []byte) []byte {
	if b := t.bucket(s); b != nil {
		return b.Get(k)
	}
	return nil
}

func (t *boltTx) cursor(s space) cursor {
	if b := t.bucket(s); b != nil {
		return b.Cursor()
	}
	return emptyCursor{}
}

// emptyCursor walks a space a file does not have yet.
type emptyCursor struct{}

func (emptyCursor) First() (k, v []byte)      { return nil, nil }
func (emptyCursor) Last() (k, v []byte)       { return nil, nil }
func (emptyCursor) Seek([]byte) (k, v []byte) { return nil, nil }
func (emptyCursor) Next() (k, v []byte)       { return nil, nil }
func (emptyCursor) Prev() (k, v []byte)       { return nil, nil }
func (t *boltTx) put(s space, k, v []byte) error {
	return t.bucket(s).Put(k, v)
}
func (t *boltTx) del(s space, k []byte) error { return t.bucket(s).Delete(k) }

func recoverEngine(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%w: %v", errEngine, p)
	}
}

func (e *boltEngine) view(fn func(reader) error) (err error) {
	defer recoverEngine(&err)
	return e.db.View(func(tx *bolt.Tx) error { return fn(&boltTx{tx: tx}) })
}

func (e *boltEngine) update(fn func(writer) error) (err error) {
	defer recoverEngine(&err)
	return e.db.Update(func(tx *bolt.Tx) error { return fn(&boltTx{tx: tx}) })
}

func (e *boltEngine) size() int64 {
	var n int64
	e.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

func (e *boltEngine) copyTo(path string, started func()) (out engine, err error) {
	defer recoverEngine(&err)
	os.Remove(path)
	dst, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second, FreelistType: bolt.FreelistMapType, InitialMmapSize: 256 << 20,
	})
	if err != nil {
		return nil, err
	}
	err = e.db.View(func(src *bolt.Tx) error {
		started()
		return src.ForEach(func(name []byte, b *bolt.Bucket) error {
			// Bounded transactions keep the copy's memory small; keys come
			// in order, so full pages waste nothing.
			c := b.Cursor()
			k, v := c.First()
			for first := true; first || k != nil; first = false {
				err := dst.Update(func(tx *bolt.Tx) error {
					db, err := tx.CreateBucketIfNotExists(name)
					if err != nil {
						return err
					}
					db.FillPercent = 1.0
					for size := 0; k != nil && size < 4<<20; k, v = c.Next() {
						if v == nil {
							return fmt.Errorf("historystore: unexpected nested bucket %q", k)
						}
						if err := db.Put(k, v); err != nil {
							return err
						}
						size += len(k) + len(v)
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		dst.Close()
		os.Remove(path)
		return nil, err
	}
	return &boltEngine{db: dst}, nil
}

func (e *boltEngine) snapshot(fn func(size int64, snap io.WriterTo) error) (err error) {
	defer recoverEngine(&err)
	return e.db.View(func(tx *bolt.Tx) error { return fn(tx.Size(), tx) })
}

func (e *boltEngine) close() error { return e.db.Close() }
