package rooms

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// mapStore is a Store in a map, shared by registries that play one
// process before and after a restart.
type mapStore struct {
	mu sync.Mutex
	m  map[string]Saved
}

func (s *mapStore) Load(folded string) (Saved, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[folded]
	return v, ok, nil
}

func (s *mapStore) Save(folded string, v Saved) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[folded] = v
	return nil
}

func (s *mapStore) Delete(folded string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, folded)
	return nil
}

func (s *mapStore) List() (map[string]Saved, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Saved, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out, nil
}

// TestRoomsComeBackAfterRestart: a room with history survives its actor
// going idle and a restart of the registry: LIST shows it with its topic,
// a JOIN replays its history, CHATHISTORY reaches past the ring.
func TestRoomsComeBackAfterRestart(t *testing.T) {
	log, store := NewMemLog(1000, 0), &mapStore{m: map[string]Saved{}}
	dropped := make(chan string, 4)
	withStores := func(o *Options) {
		o.Log, o.Store, o.IdleTTL = log, store, 10*time.Millisecond
		o.Hooks.Dropped = func(name string) { dropped <- name }
	}
	g := testRegistry(t, withStores)
	a := newFake()
	r, err := g.Join(mem(a, "alice"), "#Kept", "")
	if err != nil {
		t.Fatal(err)
	}
	topic := "stays"
	r.Topic(a, "alice", &topic)
	for _, text := range []string{"one", "two", "three", "four", "five"} {
		r.Say(a, Speech{Command: "PRIVMSG", Text: text}, true)
	}
	r.Part(a, "")
	select {
	case <-dropped:
	case <-time.After(waitFor):
		t.Fatal("the empty room never went idle")
	}
	if g.Len() != 0 || g.Dormant() != 1 {
		t.Fatalf("after idling: %d live, %d dormant; want 0 and 1", g.Len(), g.Dormant())
	}
	g.Close()

	g2 := testRegistry(t, withStores)
	if err := g2.Restore(); err != nil {
		t.Fatal(err)
	}
	list := g2.ByName()
	if len(list) != 1 || list[0].Info().Name != "#Kept" || list[0].Info().Topic != "stays" {
		t.Fatalf("LIST after restart: %v", list)
	}
	b := newFake()
	r2, err := g2.Join(mem(b, "bob"), "#kept", "")
	if err != nil {
		t.Fatal(err)
	}
	lines := b.waitLines(t, 7) // JOIN, 332, 333, 353, 366, two replayed
	joined := strings.Join(lines, "\n")
	if !strings.Contains(lines[0], "JOIN #Kept") || !strings.Contains(joined, "332 bob #Kept :stays") || !strings.HasSuffix(lines[6], ":five") {
		t.Fatalf("joiner after restart saw:\n%s", joined)
	}
	// The ring holds 3 events; the first messages come from the log.
	events, err := r2.History(b, Query{Sel: SelLatest, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, e := range events {
		texts = append(texts, e.Params[1])
	}
	if strings.Join(texts, " ") != "one two three four five" {
		t.Fatalf("CHATHISTORY LATEST after restart: %q", texts)
	}
	all, _ := r2.History(b, Query{Sel: SelLatest, Limit: 20, Events: true})
	var commands []string
	for _, e := range all {
		commands = append(commands, e.Command)
	}
	if got := strings.Join(commands, " "); got != "JOIN TOPIC PRIVMSG PRIVMSG PRIVMSG PRIVMSG PRIVMSG PART JOIN" {
		t.Fatalf("event playback: %s", got)
	}
}

// TestRoomWithoutMessagesIsForgotten: joining and leaving leaves nothing
// behind, in the registry or the log.
func TestRoomWithoutMessagesIsForgotten(t *testing.T) {
	log := NewMemLog(1000, 0)
	g := testRegistry(t, func(o *Options) { o.Log = log })
	a := newFake()
	r, _ := g.Join(mem(a, "alice"), "#brief", "")
	r.Part(a, "")
	deadline := time.Now().Add(waitFor)
	for g.Get("#brief") != nil {
		if time.Now().After(deadline) {
			t.Fatal("room without messages kept")
		}
		time.Sleep(time.Millisecond)
	}
	if targets, _ := log.Targets("#"); len(targets) != 0 {
		t.Fatalf("log still has %v", targets)
	}
}

// TestDormantRoomsWakeWithinLimits: a lookup wakes a dormant room only
// while live rooms are under max_rooms, and Sweep forgets an unowned
// dormant room once its history is gone.
func TestDormantRoomsWakeWithinLimits(t *testing.T) {
	log, store := NewMemLog(1000, 0), &mapStore{m: map[string]Saved{}}
	log.Append("#old", &Event{At: time.Now(), ID: "x", Command: "PRIVMSG", Params: []string{"#old", "hi"}})
	g := testRegistry(t, func(o *Options) { o.Log, o.Store, o.MaxRooms = log, store, 1 })
	if err := g.Restore(); err != nil {
		t.Fatal(err)
	}
	a := newFake()
	if _, err := g.Join(mem(a, "alice"), "#busy", ""); err != nil {
		t.Fatal(err)
	}
	if g.Get("#old") != nil {
		t.Fatal("a dormant room woke past max_rooms")
	}
	if _, err := g.Join(mem(a, "alice"), "#old", ""); !errors.Is(err, ErrTooManyRooms) {
		t.Fatalf("JOIN of a dormant room past max_rooms: %v", err)
	}
	log.Delete("#old")
	if err := g.Sweep(); err != nil {
		t.Fatal(err)
	}
	if g.Dormant() != 0 {
		t.Fatalf("%d dormant rooms after their history expired", g.Dormant())
	}
}

// TestDormantRoomsAreBounded: rooms made to be abandoned cannot grow the
// registry without end; beyond max_rooms the least recently active
// unowned one leaves the list (its history stays in the log).
func TestDormantRoomsAreBounded(t *testing.T) {
	log := NewMemLog(100, 0)
	dropped := make(chan string, 8)
	g := testRegistry(t, func(o *Options) {
		o.Log, o.MaxRooms, o.IdleTTL = log, 2, time.Millisecond
		o.Hooks.Dropped = func(name string) { dropped <- name }
	})
	a := newFake()
	for _, name := range []string{"#one", "#two", "#three"} {
		r, err := g.Join(mem(a, "alice"), name, "")
		if err != nil {
			t.Fatal(err)
		}
		r.Say(a, Speech{Command: "PRIVMSG", Text: "hi"}, true)
		r.Part(a, "")
		select {
		case <-dropped:
		case <-time.After(waitFor):
			t.Fatalf("%s never went dormant", name)
		}
	}
	if g.Len() != 0 || g.Dormant() != 2 {
		t.Fatalf("%d live, %d dormant; want 0 and 2", g.Len(), g.Dormant())
	}
	var names []string
	for _, r := range g.ByName() {
		names = append(names, r.Name())
	}
	if strings.Join(names, " ") != "#three #two" {
		t.Fatalf("remembered %v, want the two most recent", names)
	}
	if events, _ := log.Query("#one", Query{Sel: SelLatest, Limit: 10}); len(events) != 1 {
		t.Fatalf("#one's history went with it: %v", events)
	}
}
