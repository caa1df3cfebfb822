package historystore

import (
	"io"

	"github.com/livechat/livechat/rooms"
)

// Backup commits what is pending, then calls fn with a consistent
// snapshot of the file: its size and a writer of exactly that many bytes,
// a valid store. Appends and commits go on meanwhile; every event appended
// before Backup was called is in the copy. A scrub cannot swap the file
// while the snapshot is being written.
func (s *Store) Backup(fn func(size int64, snap io.WriterTo) error) error {
	if err := s.syncFile(); err != nil {
		return err
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return rooms.ErrHistoryUnavailable
	}
	return s.db.snapshot(fn)
}
