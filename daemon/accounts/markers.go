package accounts

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Read markers (IRCv3 draft/read-marker): per account and target (a folded
// room name or nick, chosen and validated by the caller), the time of the
// last message the user has read, so that all their clients agree.

// MaxReadMarkers bounds the markers one account keeps: setting one for a
// new target beyond it forgets the target read longest ago, so a client
// that walks through many names cannot grow the store without end.
const MaxReadMarkers = 1000

// markerLimit is MaxReadMarkers; tests lower it.
var markerLimit = MaxReadMarkers

// MaxMarkerTargetLen bounds a target in bytes: a storage guard, far above
// any room or nick length.
const MaxMarkerTargetLen = 255

var (
	// ErrInvalidTarget: an empty or overlong marker target.
	ErrInvalidTarget = errors.New("accounts: invalid read marker target")
	// ErrNoMarkers: the store keeps no read markers.
	ErrNoMarkers = errors.New("accounts: this store keeps no read markers")
)

// MarkerStore is a Store that also keeps read markers. It is a separate
// interface so that stores (and test fakes) without them keep compiling;
// the Service answers ErrNoMarkers for those.
type MarkerStore interface {
	// ReadMarker returns account's marker for target, or the zero time.
	ReadMarker(ctx context.Context, account, target string) (time.Time, error)
	// SetReadMarker moves account's marker for target forward to at and
	// returns the marker now stored (at, or the later one already there)
	// and whether it moved. Only forward: two clients racing cannot move
	// it back. ErrNotFound if the account does not exist (deleted while
	// someone was logged in).
	SetReadMarker(ctx context.Context, account, target string, at time.Time) (stored time.Time, moved bool, err error)
}

// ReadMarker returns account's read marker for target, or the zero time.
func (s *Service) ReadMarker(ctx context.Context, account, target string) (time.Time, error) {
	ms, ok := s.store.(MarkerStore)
	if !ok {
		return time.Time{}, ErrNoMarkers
	}
	if err := checkMarker(account, target); err != nil {
		return time.Time{}, err
	}
	return ms.ReadMarker(ctx, account, target)
}

// SetReadMarker moves account's read marker for target forward to at (see
// MarkerStore), at millisecond precision, and returns the marker now
// stored and whether it moved.
func (s *Service) SetReadMarker(ctx context.Context, account, target string, at time.Time) (time.Time, bool, error) {
	ms, ok := s.store.(MarkerStore)
	if !ok {
		return time.Time{}, false, ErrNoMarkers
	}
	if err := checkMarker(account, target); err != nil {
		return time.Time{}, false, err
	}
	return ms.SetReadMarker(ctx, account, target, at.UTC().Truncate(time.Millisecond))
}

func checkMarker(account, target string) error {
	if checkName(account) != nil {
		return ErrNotFound
	}
	if target == "" || len(target) > MaxMarkerTargetLen {
		return ErrInvalidTarget
	}
	return nil
}

// In the file store, bucket read_markers holds a bucket per Fold(account)
// whose keys are targets and values the marker in Unix milliseconds, 8
// bytes big-endian. An older livechatd ignores the bucket, so the schema
// version stays 1; an account's markers go with it on Delete.
var bucketMarkers = []byte("read_markers")

func encodeMarker(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.UnixMilli()))
}

func decodeMarker(v []byte) (time.Time, bool) {
	if len(v) != 8 {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(v))).UTC(), true
}

func (s *fileStore) ReadMarker(ctx context.Context, account, target string) (time.Time, error) {
	if err := s.usable(ctx); err != nil {
		return time.Time{}, err
	}
	var at time.Time
	err := s.db.View(func(tx *bolt.Tx) error {
		if all := tx.Bucket(bucketMarkers); all != nil {
			if b := all.Bucket([]byte(Fold(account))); b != nil {
				at, _ = decodeMarker(b.Get([]byte(target)))
			}
		}
		return nil
	})
	return at, s.wrap(err)
}

func (s *fileStore) SetReadMarker(ctx context.Context, account, target string, at time.Time) (time.Time, bool, error) {
	if err := s.usable(ctx); err != nil {
		return time.Time{}, false, err
	}
	key, name := []byte(target), []byte(Fold(account))
	var stored time.Time
	var moved bool
	// Batch commits concurrent markers (many users reading at once) in one
	// fsync. fn may run twice, so it only sets what it returns.
	err := s.db.Batch(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAccounts).Get(name) == nil {
			return ErrNotFound
		}
		all, err := tx.CreateBucketIfNotExists(bucketMarkers)
		if err != nil {
			return err
		}
		b, err := all.CreateBucketIfNotExists(name)
		if err != nil {
			return err
		}
		old, had := decodeMarker(b.Get(key))
		if had && !at.After(old) {
			stored, moved = old, false
			return nil
		}
		if !had {
			if err := dropOldestMarkers(b, markerLimit-1); err != nil {
				return err
			}
		}
		stored, moved = at, true
		return b.Put(key, encodeMarker(at))
	})
	if err != nil {
		return time.Time{}, false, s.wrap(err)
	}
	return stored, moved, nil
}

// dropOldestMarkers deletes the earliest markers of b until it has at most
// keep. It walks the bucket, bounded by MaxReadMarkers, and only when a
// target is new. (A cursor, not Stats: Stats does not see this
// transaction's own writes.)
func dropOldestMarkers(b *bolt.Bucket, keep int) error {
	for {
		n := 0
		var oldestKey []byte
		var oldest time.Time
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			n++
			at, ok := decodeMarker(v)
			if !ok {
				at = time.Time{} // unreadable: first to go
			}
			if oldestKey == nil || at.Before(oldest) {
				oldestKey, oldest = k, at
			}
		}
		if n <= keep {
			return nil
		}
		if err := b.Delete(append([]byte(nil), oldestKey...)); err != nil {
			return err
		}
	}
}

// deleteMarkers forgets every marker of the account key, in tx.
func deleteMarkers(tx *bolt.Tx, key []byte) error {
	all := tx.Bucket(bucketMarkers)
	if all == nil || all.Bucket(key) == nil {
		return nil
	}
	if err := all.DeleteBucket(key); err != nil {
		return fmt.Errorf("delete read markers: %w", err)
	}
	return nil
}

func (m *memStore) ReadMarker(ctx context.Context, account, target string) (time.Time, error) {
	unlock, err := m.rlock(ctx)
	if err != nil {
		return time.Time{}, err
	}
	defer unlock()
	return m.markers[Fold(account)][target], nil
}

func (m *memStore) SetReadMarker(ctx context.Context, account, target string, at time.Time) (time.Time, bool, error) {
	key := Fold(account)
	unlock, err := m.lock(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	defer unlock()
	if _, ok := m.byKey[key]; !ok {
		return time.Time{}, false, ErrNotFound
	}
	if m.markers == nil {
		m.markers = make(map[string]map[string]time.Time)
	}
	mine := m.markers[key]
	if mine == nil {
		mine = make(map[string]time.Time)
		m.markers[key] = mine
	}
	old, had := mine[target]
	if had && !at.After(old) {
		return old, false, nil
	}
	for !had && len(mine) >= markerLimit {
		oldestKey, oldest := "", time.Time{}
		for k, v := range mine {
			if oldestKey == "" || v.Before(oldest) {
				oldestKey, oldest = k, v
			}
		}
		delete(mine, oldestKey)
	}
	mine[target] = at
	return at, true, nil
}
