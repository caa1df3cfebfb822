package bans

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/livechat/livechat/internal/durable"
)

// Store keeps bans across restarts. Implementations are safe for
// concurrent use; Put and Delete are durable when they return nil.
type Store interface {
	// Load returns every stored ban, expired ones included.
	Load() ([]Ban, error)
	Put(b Ban) error
	// Delete forgets the ban with key; an absent key is no error.
	Delete(key string) error
	Close() error
}

// File is a Store in one JSON file, rewritten whole on every change
// (there are few bans, and they change by hand): written to a temporary
// file, synced, and renamed over the old one, so the file is always
// either the old list or the new one, and can be copied as a backup at
// any time.
type File struct {
	path string
	mu   sync.Mutex
	bans map[string]Ban
}

var _ Store = (*File)(nil)

// OpenFile opens the store at path, creating its directory if needed; a
// missing file is an empty list.
func OpenFile(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("bans: %w", err)
	}
	f := &File{path: path, bans: make(map[string]Ban)}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bans: %w", err)
	}
	var list []Ban
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("bans: %s: %w", path, err)
	}
	for _, b := range list {
		f.bans[b.Key()] = b
	}
	return f, nil
}

func (f *File) Load() ([]Ban, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listLocked(), nil
}

func (f *File) listLocked() []Ban {
	out := make([]Ban, 0, len(f.bans))
	for _, b := range f.bans {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Ban) int { return a.SetAt.Compare(b.SetAt) })
	return out
}

func (f *File) Put(b Ban) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, had := f.bans[b.Key()]
	f.bans[b.Key()] = b
	if err := f.writeLocked(); err != nil {
		if had {
			f.bans[b.Key()] = old
		} else {
			delete(f.bans, b.Key())
		}
		return err
	}
	return nil
}

func (f *File) Delete(key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, had := f.bans[key]
	if !had {
		return nil
	}
	delete(f.bans, key)
	if err := f.writeLocked(); err != nil {
		f.bans[key] = old
		return err
	}
	return nil
}

func (f *File) writeLocked() error {
	data, err := json.MarshalIndent(f.listLocked(), "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".bans-*.json")
	if err != nil {
		return fmt.Errorf("bans: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path)
	}
	if err == nil {
		err = durable.SyncDir(filepath.Dir(f.path))
	}
	if err != nil {
		return fmt.Errorf("bans: write %s: %w", f.path, err)
	}
	return nil
}

// Close does nothing: every change is on disk already.
func (f *File) Close() error { return nil }

// Memory is a Store that lasts as long as the process.
type Memory struct {
	mu   sync.Mutex
	bans map[string]Ban
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{bans: make(map[string]Ban)} }

func (m *Memory) Load() ([]Ban, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Ban, 0, len(m.bans))
	for _, b := range m.bans {
		out = append(out, b)
	}
	return out, nil
}

func (m *Memory) Put(b Ban) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bans[b.Key()] = b
	return nil
}

func (m *Memory) Delete(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.bans, key)
	return nil
}

func (m *Memory) Close() error { return nil }
