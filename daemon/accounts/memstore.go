package accounts

import (
	"context"
	"slices"
	"sync"
	"time"
)

// memStore is a Store held in memory, for tests and for running without a
// data_dir. Nothing survives a restart. Safe for concurrent use.
type memStore struct {
	mu    sync.RWMutex
	byKey map[string]Account // key: Fold(Name)
	// markers are read markers by Fold(Name), then target (markers.go).
	markers map[string]map[string]time.Time
	// tokens are login tokens by Fold(Name), then id (tokens.go).
	tokens map[string]map[string]Token
	closed bool
}

// NewMemoryStore returns an empty in-memory Store, safe for concurrent use.
func NewMemoryStore() Store {
	return &memStore{byKey: make(map[string]Account)}
}

func (m *memStore) Create(ctx context.Context, a Account) error {
	if err := checkName(a.Name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	key := Fold(a.Name)
	// Check and insert under one write lock: that is what makes concurrent
	// Creates of the same folded name have exactly one winner.
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if _, ok := m.byKey[key]; ok {
		return ErrExists
	}
	m.byKey[key] = a
	return nil
}

func (m *memStore) Get(ctx context.Context, name string) (Account, error) {
	if err := checkName(name); err != nil {
		return Account{}, ErrNotFound
	}
	if err := ctx.Err(); err != nil {
		return Account{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return Account{}, ErrClosed
	}
	a, ok := m.byKey[Fold(name)]
	if !ok {
		return Account{}, ErrNotFound
	}
	return a, nil
}

func (m *memStore) SetPassword(ctx context.Context, name, hash string) error {
	if err := checkName(name); err != nil {
		return ErrNotFound
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	key := Fold(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	a, ok := m.byKey[key]
	if !ok {
		return ErrNotFound
	}
	a.Hash = hash
	m.byKey[key] = a
	return nil
}

func (m *memStore) List(ctx context.Context) ([]Account, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	keys := make([]string, 0, len(m.byKey))
	for k := range m.byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys) // byte order of the folded names, as in the file store
	out := make([]Account, 0, len(keys))
	for _, k := range keys {
		out = append(out, m.byKey[k])
	}
	return out, nil
}

func (m *memStore) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return ErrNotFound
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	key := Fold(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if _, ok := m.byKey[key]; !ok {
		return ErrNotFound
	}
	delete(m.byKey, key)
	delete(m.markers, key)
	delete(m.tokens, key)
	return nil
}

func (m *memStore) Count() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.byKey)
}

func (m *memStore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
