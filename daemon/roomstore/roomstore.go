// Package roomstore keeps claimed rooms (their owner, topic, modes and
// bans) for rooms.Registry: durably in a bbolt file under data_dir, or in
// memory when accounts.store is memory.
package roomstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/livechat/livechat/rooms"
)

var roomsBucket = []byte("rooms")

// File is a rooms.Store in a bbolt file; every Save is synced to disk
// before it returns. Safe for concurrent use.
type File struct {
	db *bolt.DB
}

var _ rooms.Store = (*File)(nil)

// Open opens (creating if needed) the store at path. A second daemon on the
// same file fails after a second instead of waiting forever.
func Open(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("roomstore: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("roomstore: %s is in use by another livechatd", path)
	}
	if err != nil {
		return nil, fmt.Errorf("roomstore: open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(roomsBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("roomstore: %w", err)
	}
	return &File{db: db}, nil
}

// Load returns the saved state of a claimed room.
func (f *File) Load(folded string) (rooms.Saved, bool, error) {
	var s rooms.Saved
	found := false
	err := f.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(roomsBucket).Get([]byte(folded))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &s)
	})
	if err != nil {
		return rooms.Saved{}, false, fmt.Errorf("roomstore: load %s: %w", folded, err)
	}
	return s, found, nil
}

// Save stores a claimed room's state.
func (f *File) Save(folded string, s rooms.Saved) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return f.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(roomsBucket).Put([]byte(folded), v)
	})
}

// Delete forgets a room.
func (f *File) Delete(folded string) error {
	return f.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(roomsBucket).Delete([]byte(folded))
	})
}

// List returns every saved room.
func (f *File) List() (map[string]rooms.Saved, error) {
	out := make(map[string]rooms.Saved)
	err := f.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(roomsBucket).ForEach(func(k, v []byte) error {
			var s rooms.Saved
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("room %q: %w", k, err)
			}
			out[string(k)] = s
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("roomstore: list: %w", err)
	}
	return out, nil
}

// Close closes the file.
func (f *File) Close() error { return f.db.Close() }

// Memory is a rooms.Store that lasts as long as the process.
type Memory struct {
	mu    sync.Mutex
	rooms map[string]rooms.Saved
}

var _ rooms.Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{rooms: make(map[string]rooms.Saved)} }

func (m *Memory) Load(folded string) (rooms.Saved, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.rooms[folded]
	return s, ok, nil
}

func (m *Memory) Save(folded string, s rooms.Saved) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Copy the lists: the room keeps mutating its own.
	s.Bans = append([]rooms.ListEntry(nil), s.Bans...)
	s.Excepts = append([]rooms.ListEntry(nil), s.Excepts...)
	s.Invex = append([]rooms.ListEntry(nil), s.Invex...)
	m.rooms[folded] = s
	return nil
}

func (m *Memory) Delete(folded string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rooms, folded)
	return nil
}

func (m *Memory) List() (map[string]rooms.Saved, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]rooms.Saved, len(m.rooms))
	for k, s := range m.rooms {
		out[k] = s
	}
	return out, nil
}

// Close does nothing.
func (m *Memory) Close() error { return nil }
