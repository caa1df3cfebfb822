package rooms

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/protocol"
)

const waitFor = 10 * time.Second

// fakeClient records every line a room queues to it.
type fakeClient struct {
	mu       sync.Mutex
	lines    []string
	more     chan struct{} // signalled on every line
	features Features
}

func newFake() *fakeClient { return &fakeClient{more: make(chan struct{}, 1)} }

func (f *fakeClient) Send(line []byte) bool {
	f.mu.Lock()
	f.lines = append(f.lines, strings.TrimRight(string(line), "\r\n"))
	f.mu.Unlock()
	select {
	case f.more <- struct{}{}:
	default:
	}
	return true
}

func (f *fakeClient) Away() bool { return false }

func (f *fakeClient) Reply(line []byte) bool { return f.Send(line) }

func (f *fakeClient) Features() Features { return f.features }

func (f *fakeClient) Removed(*Room) {}

func (f *fakeClient) Queue(line []byte) bool { return f.Send(line) }

func (f *fakeClient) Flush() {}

// waitLines waits until the client has at least n lines and returns them.
func (f *fakeClient) waitLines(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		f.mu.Lock()
		if len(f.lines) >= n {
			out := append([]string(nil), f.lines...)
			f.mu.Unlock()
			return out
		}
		f.mu.Unlock()
		select {
		case <-f.more:
		case <-deadline:
			t.Fatalf("waited for %d lines, have %v", n, f.lines)
		}
	}
}

func (f *fakeClient) reset() {
	f.mu.Lock()
	f.lines = nil
	f.mu.Unlock()
}

func testRegistry(t *testing.T, mutate ...func(*Options)) *Registry {
	opts := Options{ServerName: "test.server", MaxRooms: 100, MaxMembers: 100, HistorySize: 3, HistoryReplay: 2, IdleTTL: time.Hour}
	for _, f := range mutate {
		f(&opts)
	}
	g := NewRegistry(opts)
	t.Cleanup(g.Close)
	return g
}

func mem(c Client, nick string) Member {
	return Member{Client: c, Nick: nick, User: "~" + nick, Host: "127.0.0.1", Realname: nick}
}

func TestJoinSayHistory(t *testing.T) {
	g := testRegistry(t)
	a, b := newFake(), newFake()
	r, err := g.Join(mem(a, "alice"), "#Lobby", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.waitLines(t, 3); got[0] != ":alice!~alice@127.0.0.1 JOIN #Lobby" || got[1] != ":test.server 353 alice = #Lobby :@alice" {
		t.Fatalf("joiner saw %q", got)
	}
	for i := 1; i <= 4; i++ {
		r.Say(a, Speech{Command: "PRIVMSG", Text: fmt.Sprint("message ", i)}, false)
	}
	r2, err := g.Join(mem(b, "bob"), "#LOBBY", "")
	if err != nil || r2 != r {
		t.Fatalf("#LOBBY found %v, %v; want the same room", r2, err)
	}
	got := b.waitLines(t, 5)
	want := []string{
		":bob!~bob@127.0.0.1 JOIN #Lobby",
		":test.server 353 bob = #Lobby :@alice bob",
		":test.server 366 bob #Lobby :End of /NAMES list",
		":alice!~alice@127.0.0.1 PRIVMSG #Lobby :message 3", // ring of 3, replay of 2
		":alice!~alice@127.0.0.1 PRIVMSG #Lobby :message 4",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("joiner saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if lines := a.waitLines(t, 4); strings.Contains(strings.Join(lines, "\n"), "PRIVMSG") {
		t.Fatalf("sender got its own message: %q", lines)
	}
}

func TestLimits(t *testing.T) {
	g := testRegistry(t, func(o *Options) { o.MaxRooms = 1; o.MaxMembers = 1 })
	a, b := newFake(), newFake()
	if _, err := g.Join(mem(a, "alice"), "#one", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Join(mem(b, "bob"), "#one", ""); !errors.Is(err, ErrRoomFull) {
		t.Fatalf("second member: %v, want ErrRoomFull", err)
	}
	if _, err := g.Join(mem(b, "bob"), "#two", ""); !errors.Is(err, ErrTooManyRooms) {
		t.Fatalf("second room: %v, want ErrTooManyRooms", err)
	}
	if _, err := g.Join(mem(a, "alice"), "#one", ""); !errors.Is(err, ErrAlreadyMember) {
		t.Fatalf("rejoin: %v, want ErrAlreadyMember", err)
	}
}

func TestEmptyRoomWithoutHistoryIsDroppedAtOnce(t *testing.T) {
	dropped := make(chan string, 1)
	g := testRegistry(t, func(o *Options) { o.Hooks.Dropped = func(name string) { dropped <- name } })
	a := newFake()
	r, _ := g.Join(mem(a, "alice"), "#brief", "")
	if err := r.Part(a, "bye"); err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-dropped:
		if name != "#brief" || g.Get("#brief") != nil {
			t.Fatalf("dropped %q, registry still has %v", name, g.Get("#brief"))
		}
	case <-time.After(waitFor):
		t.Fatal("room was not dropped")
	}
	if err := r.Part(a, ""); !errors.Is(err, ErrNoSuchRoom) {
		t.Fatalf("request to a dropped room: %v", err)
	}
}

func TestEmptyRoomWithHistoryLivesForIdleTTL(t *testing.T) {
	dropped := make(chan string, 1)
	g := testRegistry(t, func(o *Options) {
		o.IdleTTL = 20 * time.Millisecond
		o.Hooks.Dropped = func(name string) { dropped <- name }
	})
	a, b := newFake(), newFake()
	r, _ := g.Join(mem(a, "alice"), "#kept", "")
	r.Say(a, Speech{Command: "PRIVMSG", Text: "remember me"}, false)
	r.Part(a, "")
	// Still there for a joiner before the TTL; its history replays.
	if r2, err := g.Join(mem(b, "bob"), "#kept", ""); err == nil {
		if lines := b.waitLines(t, 4); !strings.HasSuffix(lines[3], ":remember me") {
			t.Fatalf("replay %q", lines)
		}
		r2.Part(b, "")
	} else if !errors.Is(err, ErrNoSuchRoom) {
		t.Fatal(err)
	}
	select {
	case <-dropped:
	case <-time.After(waitFor):
		t.Fatal("room with history never dropped after its idle TTL")
	}
}

// TestDropNeverRacesJoin hammers the window between "the last member left,
// drop the room" and a concurrent JOIN: every JOIN must land in a room
// that is in the registry.
func TestDropNeverRacesJoin(t *testing.T) {
	g := testRegistry(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newFake()
			for i := range 300 {
				r, err := g.Join(mem(c, fmt.Sprint("n", w)), "#churn", "")
				if err != nil {
					t.Errorf("join %d: %v", i, err)
					return
				}
				if got := g.Get("#churn"); got != r {
					t.Errorf("joined room %p is not the registry's %p", r, got)
					return
				}
				if err := r.Part(c, ""); err != nil {
					t.Errorf("part %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestPanicKeepsRoomState(t *testing.T) {
	var once sync.Once
	panicked := make(chan string, 1)
	g := testRegistry(t, func(o *Options) {
		o.Hooks.BeforeRequest = func(room, req string) {
			if room == "#fragile" && req == "PRIVMSG" {
				once.Do(func() { panic("boom") })
			}
		}
		o.Hooks.Panicked = func(room, req string, v any, stack []byte) {
			if len(stack) == 0 {
				t.Error("no stack")
			}
			panicked <- room
		}
	})
	a, b := newFake(), newFake()
	r, _ := g.Join(mem(a, "alice"), "#fragile", "")
	g.Join(mem(b, "bob"), "#fragile", "")
	a.waitLines(t, 4)
	a.reset()
	r.Say(a, Speech{Command: "PRIVMSG", Text: "first"}, false) // panics
	if lines := a.waitLines(t, 1); !strings.Contains(lines[0], " 400 alice PRIVMSG :") {
		t.Fatalf("sender got %q", lines)
	}
	if room := <-panicked; room != "#fragile" {
		t.Fatal(room)
	}
	r.Say(a, Speech{Command: "PRIVMSG", Text: "second"}, false)
	if lines := b.waitLines(t, 4); !strings.HasSuffix(lines[3], ":second") {
		t.Fatalf("after the panic bob saw %q", lines)
	}
	if r.Members() != 2 {
		t.Fatalf("members after panic: %d", r.Members())
	}
}

func TestNamesSplitsLongLists(t *testing.T) {
	g := testRegistry(t)
	var r *Room
	clients := make([]*fakeClient, 60)
	for i := range clients {
		clients[i] = newFake()
		r, _ = g.Join(mem(clients[i], fmt.Sprintf("member-with-long-nick-%02d", i)), "#crowd", "")
	}
	c := newFake()
	r.Names(c, "viewer")
	seen := 0
	for {
		lines := c.waitLines(t, 1)
		last := lines[len(lines)-1]
		if strings.Contains(last, " 366 ") {
			for _, l := range lines[:len(lines)-1] {
				if len(l)+2 > 512 {
					t.Fatalf("353 line of %d bytes", len(l)+2)
				}
				m, err := protocol.ParseString(l)
				if err != nil || m.Command != protocol.RPL_NAMREPLY {
					t.Fatalf("%q: %v", l, err)
				}
				seen += len(strings.Fields(m.Params[3]))
			}
			break
		}
		c.waitLines(t, len(lines)+1)
	}
	if seen != 60 {
		t.Fatalf("NAMES listed %d members, want 60", seen)
	}
}

// LIST walks ByName: one sorted slice shared by every caller until a room
// is created or dropped, so a thousand LISTs cost one sort and no copies.
func TestByNameSharedUntilRoomsChange(t *testing.T) {
	g := testRegistry(t)
	a := newFake()
	for _, name := range []string{"#b", "#a", "#c"} {
		if _, err := g.Join(mem(a, "alice"), name, ""); err != nil {
			t.Fatal(err)
		}
	}
	names := func(rs []*Room) (out []string) {
		for _, r := range rs {
			if !r.Gone() {
				out = append(out, r.Name())
			}
		}
		return out
	}
	first := g.ByName()
	if got := names(first); strings.Join(got, " ") != "#a #b #c" {
		t.Fatalf("ByName = %v", got)
	}
	if again := g.ByName(); &again[0] != &first[0] {
		t.Fatal("ByName sorted again although no room was created or dropped")
	}

	b := g.Get("#b")
	if err := b.Part(a, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !b.Gone() {
		if time.Now().After(deadline) {
			t.Fatal("the emptied room was never dropped")
		}
		time.Sleep(time.Millisecond) // polling a state nothing signals to the test
	}
	if got := names(first); strings.Join(got, " ") != "#a #c" {
		t.Fatalf("an old slice lists %v; a dropped room must read as gone", got)
	}
	if got := g.ByName(); len(got) != 2 || names(got)[0] != "#a" {
		t.Fatalf("after the drop ByName = %v", names(got))
	}
}
