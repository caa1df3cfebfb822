package roomstore

import (
	"io"

	bolt "go.etcd.io/bbolt"
)

// Backup calls fn with a consistent snapshot of the file: its size and a
// writer of exactly that many bytes, a valid bbolt file. Saves go on
// meanwhile.
func (f *File) Backup(fn func(size int64, snap io.WriterTo) error) error {
	return f.db.View(func(tx *bolt.Tx) error { return fn(tx.Size(), tx) })
}
