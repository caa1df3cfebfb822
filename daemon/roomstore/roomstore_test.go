package roomstore

import (
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/livechat/livechat/daemon/roomstore/roomstoretest"
	"github.com/livechat/livechat/rooms"
)

func TestConformance(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		roomstoretest.Run(t, func(*testing.T) rooms.Store { return NewMemory() })
	})
	t.Run("file", func(t *testing.T) {
		roomstoretest.Run(t, func(t *testing.T) rooms.Store {
			f, err := Open(filepath.Join(t.TempDir(), "rooms.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return f
		})
	})
}

func TestFileDurableAndExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "rooms.db")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Save("#home", roomstoretest.Saved()); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
	f.Close()
	again, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if got, ok, _ := again.Load("#home"); !ok || got.Owner != "founder" {
		t.Fatalf("after reopen: %+v %v", got, ok)
	}
}

// An entry stored before the operator mark existed loads as an ordinary
// one.
func TestFileReadsOldBans(t *testing.T) {
	f, err := Open(filepath.Join(t.TempDir(), "rooms.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := `{"Name":"#Old","Bans":[{"Mask":"*!*@192.0.2.*","SetBy":"op","SetAt":"2023-11-14T22:13:20Z"}]}`
	if err := f.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(roomsBucket).Put([]byte("#old"), []byte(old)) }); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := f.Load("#old"); !ok || err != nil || len(got.Bans) != 1 || got.Bans[0].ByOper || got.Bans[0].SetBy != "op" {
		t.Fatalf("old entry: %+v %v %v", got.Bans, ok, err)
	}
}
