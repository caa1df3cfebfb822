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
	// certOwner maps a certificate fingerprint to Fold(Name); certFPs
	// lists them by Fold(Name) (certfp.go). Both nil until the first.
	certOwner map[string]string
	certFPs   map[string][]string
	closed    bool
}

// NewMemoryStore returns an empty in-memory Store, safe for concurrent use.
func NewMemoryStore() Store {
	return &memStore{byKey: make(map[string]Account)}
}

func (m *memStore) Create(ctx context.Context, a Account) error {
	if err := checkName(a.Name); err != nil {
		return err
	}
	key := Fold(a.Name)
	// Check and insert under one write lock: that is what makes concurrent
	// Creates of the same folded name have exactly one winner.
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
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
	unlock, err := m.rlock(ctx)
	if err != nil {
		return Account{}, err
	}
	defer unlock()
	a, ok := m.byKey[Fold(name)]
	if !ok {
		return Account{}, ErrNotFound
	}
	return a, nil
}

func (m *memStore) SetPassword(ctx context.Context, name, hash, scram string) error {
	return m.update(ctx, name, func(a *Account) { a.Hash, a.SCRAM = hash, scram })
}

func (m *memStore) Rehash(ctx context.Context, name, oldHash, hash, scram string) error {
	return m.update(ctx, name, func(a *Account) {
		if a.Hash == oldHash {
			a.Hash, a.SCRAM = hash, scram
		}
	})
}

func (m *memStore) SetMulticlient(ctx context.Context, name, value string) error {
	return m.update(ctx, name, func(a *Account) { a.Multiclient = value })
}

func (m *memStore) update(ctx context.Context, name string, change func(*Account)) error {
	if err := checkName(name); err != nil {
		return ErrNotFound
	}
	key := Fold(name)
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	a, ok := m.byKey[key]
	if !ok {
		return ErrNotFound
	}
	change(&a)
	m.byKey[key] = a
	return nil
}

func (m *memStore) List(ctx context.Context) ([]Account, error) {
	unlock, err := m.rlock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
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
	key := Fold(name)
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, ok := m.byKey[key]; !ok {
		return ErrNotFound
	}
	delete(m.byKey, key)
	delete(m.markers, key)
	delete(m.tokens, key)
	m.deleteCertFPsLocked(key)
	return nil
}

// lock takes the write lock for a method given ctx, once ctx is live and
// the store open; the caller defers unlock.
func (m *memStore) lock(ctx context.Context) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	return m.mu.Unlock, nil
}

// rlock is lock for readers.
func (m *memStore) rlock(ctx context.Context) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return nil, ErrClosed
	}
	return m.mu.RUnlock, nil
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
