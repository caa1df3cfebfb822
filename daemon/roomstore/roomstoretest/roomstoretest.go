// Package roomstoretest is the conformance suite of rooms.Store: the
// memory and file stores of package roomstore and the JetStream KV one
// run the same tests.
package roomstoretest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/livechat/livechat/rooms"
)

// Run runs the suite as subtests of t; open returns a new, empty store.
func Run(t *testing.T, open func(t *testing.T) rooms.Store) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, rooms.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"NotSharingLists", testNotSharingLists},
		{"OperatorBans", testOperatorBans},
		{"List", testList},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// Saved is a room with every field set.
func Saved() rooms.Saved {
	return rooms.Saved{
		Name: "#Home", Owner: "founder", Created: time.Unix(1700000000, 0).UTC(),
		Topic: "kept", TopicBy: "founder", TopicAt: time.Unix(1700000100, 0).UTC(),
		Flags: "mnt", Key: "sesame", Limit: 9,
		Bans:    []rooms.ListEntry{{Mask: "bad!*@*", SetBy: "founder", SetAt: time.Unix(1700000200, 0).UTC()}},
		Excepts: []rooms.ListEntry{{Mask: "good!*@*", SetBy: "founder", SetAt: time.Unix(1700000300, 0).UTC()}},
	}
}

func testRoundTrip(t *testing.T, s rooms.Store) {
	if _, ok, err := s.Load("#home"); ok || err != nil {
		t.Fatalf("empty store: %v %v", ok, err)
	}
	if err := s.Save("#home", Saved()); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Load("#home")
	if !ok || err != nil || !reflect.DeepEqual(got, Saved()) {
		t.Fatalf("load: %+v %v %v; want %+v", got, ok, err, Saved())
	}
	// A later save replaces the earlier one.
	changed := Saved()
	changed.Topic, changed.Bans = "new", nil
	if err := s.Save("#home", changed); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Load("#home"); got.Topic != "new" || len(got.Bans) != 0 {
		t.Fatalf("after a second save: %+v", got)
	}
	if err := s.Delete("#home"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Load("#home"); ok {
		t.Fatal("deleted room still there")
	}
	if err := s.Delete("#never"); err != nil {
		t.Fatalf("deleting a room never saved: %v", err)
	}
}

// The room keeps changing its own lists after a save.
func testNotSharingLists(t *testing.T, s rooms.Store) {
	sv := Saved()
	if err := s.Save("#home", sv); err != nil {
		t.Fatal(err)
	}
	sv.Bans[0].Mask = "changed"
	sv.Excepts[0].Mask = "changed"
	if got, _, _ := s.Load("#home"); got.Bans[0].Mask != "bad!*@*" || got.Excepts[0].Mask != "good!*@*" {
		t.Fatalf("the store shares the room's lists: %q %q", got.Bans[0].Mask, got.Excepts[0].Mask)
	}
}

// A server operator's ban keeps its mark (it alone matches real
// addresses).
func testOperatorBans(t *testing.T, s rooms.Store) {
	sv := Saved()
	sv.Bans = append(sv.Bans, rooms.ListEntry{Mask: "*!*@192.0.2.*", SetBy: "boss", ByOper: true})
	if err := s.Save("#home", sv); err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.Load("#home"); err != nil || len(got.Bans) != 2 || got.Bans[0].ByOper || !got.Bans[1].ByOper {
		t.Fatalf("load: %+v %v", got.Bans, err)
	}
}

// List returns every saved room under its folded name, whatever bytes the
// name holds.
func testList(t *testing.T, s rooms.Store) {
	if l, err := s.List(); err != nil || len(l) != 0 {
		t.Fatalf("empty store lists %v, %v", l, err)
	}
	want := make(map[string]rooms.Saved)
	for i, name := range []string{"#a", "#b.c", "&local", "#ünï 🎉", "#*>", "##"} {
		sv := Saved()
		sv.Name, sv.Topic = name, fmt.Sprint("topic ", i)
		if err := s.Save(name, sv); err != nil {
			t.Fatal(err)
		}
		want[name] = sv
	}
	if err := s.Delete("#b.c"); err != nil {
		t.Fatal(err)
	}
	delete(want, "#b.c")
	got, err := s.List()
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %v, %v; want %v", got, err, want)
	}
}
