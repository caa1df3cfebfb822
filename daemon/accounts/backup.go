package accounts

import (
	"io"

	bolt "go.etcd.io/bbolt"
)

// Backup calls fn with a consistent snapshot of the account file: its
// size and a writer of exactly that many bytes, a valid bbolt file. It
// runs in a read transaction, so registrations go on meanwhile; the copy
// has every account whose registration returned before Backup was called.
func (s *fileStore) Backup(fn func(size int64, snap io.WriterTo) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.db.View(func(tx *bolt.Tx) error { return fn(tx.Size(), tx) })
}
