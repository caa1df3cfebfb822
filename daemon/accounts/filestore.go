package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// lockTimeout bounds how long OpenFileStore waits for the file lock. A
// second daemon on the same data_dir would otherwise block forever inside
// flock; a short bound turns that into a clear startup error.
const lockTimeout = 1 * time.Second

var bucketAccounts = []byte("accounts")

// The meta bucket records the file format so that a future livechatd can
// migrate it and an older one can refuse it instead of misreading it.
var (
	bucketMeta       = []byte("meta")
	keySchemaVersion = []byte("schema_version") // decimal ASCII, readable with the bbolt CLI
)

// schemaVersion is the newest file format this code reads and writes.
// Version 1: bucket "accounts", key Fold(name), value a JSON record.
// Files from before the meta bucket existed are in exactly that format.
// Buckets "read_markers" (markers.go), "login_tokens" (tokens.go),
// "cert_fps" and "account_cert_fps" (certfp.go) and the record's "scram"
// field came later within version 1: older code ignores them.
const schemaVersion = 1

// schemaTooNewError is returned by OpenFileStore for a file written by a
// newer livechatd. It is its own type so the message can name the path and
// both versions while errors.Is(err, ErrSchemaTooNew) still holds.
type schemaTooNewError struct {
	path    string
	version uint64
}

func (e *schemaTooNewError) Error() string {
	return fmt.Sprintf("accounts: %s has schema version %d; this livechatd understands up to %d; upgrade livechatd",
		e.path, e.version, schemaVersion)
}

func (e *schemaTooNewError) Is(target error) bool { return target == ErrSchemaTooNew }

// record is the on-disk JSON form of an Account. It is separate from Account
// so that renaming Go fields never silently changes the file format.
type record struct {
	Name    string    `json:"name"`
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
	// SCRAM came later within version 1: older code drops it when it
	// rewrites a record (a password change), which is what a password
	// change must do anyway.
	SCRAM       string `json:"scram,omitempty"`
	Multiclient string `json:"multiclient,omitempty"` // as SCRAM: older code drops it on a password change
}

// fileStore is a Store in a bbolt file. bbolt serialises writers and fsyncs
// on every commit, so a Create that returned nil survives kill -9 and power
// loss (given honest disks). Safe for concurrent use.
type fileStore struct {
	db     *bolt.DB
	path   string
	count  atomic.Int64 // mirrors the bucket's key count so Count needs no transaction
	closed atomic.Bool
}

// OpenFileStore opens (creating if needed) the account database at path. The
// directory is created with mode 0700 and the file with 0600, because it
// holds password hashes. If another process holds the file, it fails after
// about a second with an error wrapping ErrLocked rather than hanging.
func OpenFileStore(path string) (Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("accounts: create directory for %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("accounts: %s is in use (is another daemon running on the same data_dir?): %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("accounts: open %s: %w", path, err)
	}
	// Check the version in a read-only transaction first, so that a file
	// this code does not understand is left exactly as it was found.
	var version uint64
	var haveVersion bool
	err = db.View(func(tx *bolt.Tx) error {
		var verr error
		version, haveVersion, verr = readSchemaVersion(tx)
		return verr
	})
	if err == nil && version > schemaVersion {
		err = &schemaTooNewError{path: path, version: version}
	}
	if err != nil {
		db.Close()
		if errors.Is(err, ErrSchemaTooNew) {
			return nil, err
		}
		return nil, fmt.Errorf("accounts: %s: %w", path, err)
	}
	s := &fileStore{db: db, path: path}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAccounts)
		if err != nil {
			return err
		}
		if !haveVersion {
			// New file, or one from before versioning (which is version
			// 1 by definition): stamp it.
			m, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			if err := m.Put(keySchemaVersion, []byte(strconv.Itoa(schemaVersion))); err != nil {
				return err
			}
		}
		s.count.Store(int64(b.Stats().KeyN))
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("accounts: initialise %s: %w", path, err)
	}
	return s, nil
}

// readSchemaVersion returns the version stamped in tx's file, and whether
// there was one. A stamp that is not a positive decimal number is an error:
// guessing could mean misreading the file.
func readSchemaVersion(tx *bolt.Tx) (uint64, bool, error) {
	m := tx.Bucket(bucketMeta)
	if m == nil {
		return 0, false, nil
	}
	v := m.Get(keySchemaVersion)
	if v == nil {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil || n == 0 {
		return 0, false, errors.New("invalid schema_version in meta bucket")
	}
	return n, true, nil
}

func (s *fileStore) Create(ctx context.Context, a Account) error {
	if err := checkName(a.Name); err != nil {
		return err
	}
	if err := s.usable(ctx); err != nil {
		return err
	}
	val, err := json.Marshal(record(a))
	if err != nil {
		return fmt.Errorf("accounts: encode account: %w", err)
	}
	key := []byte(Fold(a.Name))
	// The existence check and the Put share one read-write transaction;
	// bbolt allows one writer at a time, so concurrent Creates of the same
	// key cannot both pass the check.
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		if b.Get(key) != nil {
			return ErrExists
		}
		return b.Put(key, val)
	})
	if err != nil {
		return s.wrap(err)
	}
	s.count.Add(1)
	return nil
}

func (s *fileStore) Get(ctx context.Context, name string) (Account, error) {
	if checkName(name) != nil {
		return Account{}, ErrNotFound
	}
	if err := s.usable(ctx); err != nil {
		return Account{}, err
	}
	var rec record
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAccounts).Get([]byte(Fold(name)))
		if v == nil {
			return ErrNotFound
		}
		// Unmarshal inside the transaction: v is only valid until it ends.
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return Account{}, s.wrap(err)
	}
	return Account(rec), nil
}

func (s *fileStore) SetPassword(ctx context.Context, name, hash, scram string) error {
	return s.update(ctx, name, func(rec *record) { rec.Hash, rec.SCRAM = hash, scram })
}

func (s *fileStore) Rehash(ctx context.Context, name, oldHash, hash, scram string) error {
	return s.update(ctx, name, func(rec *record) {
		if rec.Hash == oldHash {
			rec.Hash, rec.SCRAM = hash, scram
		}
	})
}

func (s *fileStore) SetMulticlient(ctx context.Context, name, value string) error {
	return s.update(ctx, name, func(rec *record) { rec.Multiclient = value })
}

// update changes the record of name in one transaction.
func (s *fileStore) update(ctx context.Context, name string, change func(*record)) error {
	if checkName(name) != nil {
		return ErrNotFound
	}
	if err := s.usable(ctx); err != nil {
		return err
	}
	key := []byte(Fold(name))
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		v := b.Get(key)
		if v == nil {
			return ErrNotFound
		}
		var rec record
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		change(&rec)
		nv, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put(key, nv)
	})
	return s.wrap(err)
}

func (s *fileStore) List(ctx context.Context) ([]Account, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	var out []Account
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		out = make([]Account, 0, b.Stats().KeyN)
		// bbolt iterates in byte order of the keys, which are the folded
		// names: that is the promised order, no sort needed.
		return b.ForEach(func(_, v []byte) error {
			var rec record
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			out = append(out, Account(rec))
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

func (s *fileStore) Delete(ctx context.Context, name string) error {
	if checkName(name) != nil {
		return ErrNotFound
	}
	if err := s.usable(ctx); err != nil {
		return err
	}
	key := []byte(Fold(name))
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		if b.Get(key) == nil {
			return ErrNotFound
		}
		if err := deleteMarkers(tx, key); err != nil {
			return err
		}
		if err := deleteTokens(tx, key); err != nil {
			return err
		}
		if err := deleteCertFPs(tx, key); err != nil {
			return err
		}
		return b.Delete(key)
	})
	if err != nil {
		return s.wrap(err)
	}
	// Update has committed and fsynced, so the deletion is durable here.
	s.count.Add(-1)
	return nil
}

func (s *fileStore) Count() int { return int(s.count.Load()) }

func (s *fileStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	// bbolt's Close waits for open transactions, so in-flight calls finish
	// cleanly; calls that start afterwards see ErrClosed.
	return s.db.Close()
}

// usable rejects calls on a closed store or with a dead context. bbolt
// transactions cannot be cancelled, so the context is only checked up front.
func (s *fileStore) usable(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// wrap maps bbolt's errors onto ours and adds the path to anything else.
// Account data never appears in these messages.
func (s *fileStore) wrap(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrExists), errors.Is(err, ErrNotFound):
		return err
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return ErrClosed
	}
	return fmt.Errorf("accounts: %s: %w", s.path, err)
}
