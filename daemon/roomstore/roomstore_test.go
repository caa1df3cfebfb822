package roomstore

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/livechat/livechat/rooms"
)

func saved() rooms.Saved {
	return rooms.Saved{
		Name: "#Home", Owner: "founder", Created: time.Unix(1700000000, 0).UTC(),
		Topic: "kept", TopicBy: "founder", TopicAt: time.Unix(1700000100, 0).UTC(),
		Flags: "mnt", Key: "sesame", Limit: 9,
		Bans: []rooms.ListEntry{{Mask: "bad!*@*", SetBy: "founder", SetAt: time.Unix(1700000200, 0).UTC()}},
	}
}

func roundTrip(t *testing.T, s rooms.Store) {
	t.Helper()
	if _, ok, err := s.Load("#home"); ok || err != nil {
		t.Fatalf("empty store: %v %v", ok, err)
	}
	if err := s.Save("#home", saved()); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Load("#home")
	if !ok || err != nil || got.Topic != "kept" || got.Key != "sesame" || len(got.Bans) != 1 || !got.Created.Equal(saved().Created) {
		t.Fatalf("load: %+v %v %v", got, ok, err)
	}
	if err := s.Delete("#home"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Load("#home"); ok {
		t.Fatal("deleted room still there")
	}
}

func TestMemory(t *testing.T) {
	m := NewMemory()
	roundTrip(t, m)
	// The room keeps changing its own lists after a save.
	sv := saved()
	m.Save("#home", sv)
	sv.Bans[0].Mask = "changed"
	if got, _, _ := m.Load("#home"); got.Bans[0].Mask != "bad!*@*" {
		t.Fatalf("the store shares the room's ban list: %q", got.Bans[0].Mask)
	}
}

func TestFileDurableAndExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "rooms.db")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, f)
	if err := f.Save("#home", saved()); err != nil {
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

// A server operator's ban keeps its mark across a restart (it alone
// matches real addresses); an entry stored before the mark existed loads
// as an ordinary one.
func TestFileKeepsOperatorBans(t *testing.T) {
	f, err := Open(filepath.Join(t.TempDir(), "rooms.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sv := saved()
	sv.Bans = append(sv.Bans, rooms.ListEntry{Mask: "*!*@192.0.2.*", SetBy: "boss", ByOper: true})
	if err := f.Save("#home", sv); err != nil {
		t.Fatal(err)
	}
	if got, _, err := f.Load("#home"); err != nil || len(got.Bans) != 2 || got.Bans[0].ByOper || !got.Bans[1].ByOper {
		t.Fatalf("load: %+v %v", got.Bans, err)
	}
	old := `{"Name":"#Old","Bans":[{"Mask":"*!*@192.0.2.*","SetBy":"op","SetAt":"2023-11-14T22:13:20Z"}]}`
	if err := f.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(roomsBucket).Put([]byte("#old"), []byte(old)) }); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := f.Load("#old"); !ok || err != nil || len(got.Bans) != 1 || got.Bans[0].ByOper || got.Bans[0].SetBy != "op" {
		t.Fatalf("old entry: %+v %v %v", got.Bans, ok, err)
	}
}
