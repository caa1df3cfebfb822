package accounts

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// boltUpdate edits a closed store file directly, the way an older or newer
// livechatd would have left it.
func boltUpdate(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// storedVersion reads meta/schema_version from a closed store file; nil if
// absent.
func storedVersion(t *testing.T, path string) []byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v []byte
	db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			v = bytes.Clone(m.Get(keySchemaVersion))
		}
		return nil
	})
	return v
}

func TestFileStoreNewFileHasSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.db")
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if v := storedVersion(t, path); string(v) != "1" {
		t.Fatalf("schema_version = %q, want \"1\"", v)
	}
}

// A file written before versioning existed is version 1: it opens, keeps
// its accounts, and gets stamped.
func TestFileStoreUnversionedFileIsVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.db")
	boltUpdate(t, path, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketAccounts)
		if err != nil {
			return err
		}
		return b.Put([]byte("alice"), []byte(`{"name":"Alice","hash":"h","created":"2024-01-02T03:04:05Z"}`))
	})
	if v := storedVersion(t, path); v != nil {
		t.Fatalf("test setup: file already versioned (%q)", v)
	}
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Get(bg, "ALICE")
	if err != nil || a.Name != "Alice" || a.Hash != "h" || s.Count() != 1 {
		t.Fatalf("legacy account: %+v, %v, Count %d", a, err, s.Count())
	}
	s.Close()
	if v := storedVersion(t, path); string(v) != "1" {
		t.Fatalf("schema_version after open = %q, want \"1\"", v)
	}
}

// A file from a newer livechatd, or with a stamp that cannot be read, must
// be refused without writing a byte: the newer daemon must find it as it
// left it.
func TestFileStoreRefusesUnknownSchema(t *testing.T) {
	for _, tc := range []struct {
		stamp   string
		tooNew  bool
		message string
	}{
		{"2", true, "accounts.db has schema version 2; this livechatd understands up to 1; upgrade livechatd"},
		{"not a number", false, "invalid schema_version"},
		{"0", false, "invalid schema_version"},
	} {
		t.Run(tc.stamp, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "accounts.db")
			s, err := OpenFileStore(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Create(bg, Account{Name: "alice", Hash: "h"}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			boltUpdate(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte(tc.stamp))
			})
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			s, err = OpenFileStore(path)
			if err == nil {
				s.Close()
				t.Fatal("opened a file with an unknown schema")
			}
			if errors.Is(err, ErrSchemaTooNew) != tc.tooNew {
				t.Errorf("errors.Is(%v, ErrSchemaTooNew) = %v, want %v", err, !tc.tooNew, tc.tooNew)
			}
			if !strings.Contains(err.Error(), tc.message) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q should name %s and say %q", err, path, tc.message)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatal("refused file was modified")
			}
			// The refusal released the lock.
			if v := storedVersion(t, path); string(v) != tc.stamp {
				t.Fatalf("schema_version now %q", v)
			}
		})
	}
}
