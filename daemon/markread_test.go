package daemon

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// expectMarkread reads until a MARKREAD for target and returns its
// timestamp parameter.
func (c *client) expectMarkread(target string) string {
	c.t.Helper()
	for {
		m, _ := c.expect("MARKREAD")
		if m.Param(0) == target {
			return m.Param(1)
		}
	}
}

func ts(t time.Time) string { return "timestamp=" + t.UTC().Format(rooms.TimeFormat) }

func hasMarkread(lines []protocol.Message) bool {
	for _, m := range lines {
		if m.Command == "MARKREAD" {
			return true
		}
	}
	return false
}

func TestMarkReadSyncsAnAccountsClients(t *testing.T) {
	_, addr := testServer(t, separateConnections)
	laptop := accountClient(t, addr, "alice", "alice", true, "draft/read-marker")
	phone := accountClient(t, addr, "alicephone", "alice", false, "draft/read-marker")
	old := accountClient(t, addr, "aliceold", "alice", false) // no read-marker cap
	bob := accountClient(t, addr, "bob", "bob", true, "draft/read-marker")

	laptop.send("JOIN #r")
	if got := laptop.expectMarkread("#r"); got != "*" {
		t.Fatalf("first join: MARKREAD #r %s, want *", got)
	}
	t1 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	laptop.send("MARKREAD #r " + ts(t1))
	if got := laptop.expectMarkread("#r"); got != ts(t1) {
		t.Fatalf("set: %s, want %s", got, ts(t1))
	}
	if got := phone.expectMarkread("#r"); got != ts(t1) {
		t.Fatalf("the account's other client got %s", got)
	}
	if hasMarkread(old.sync()) {
		t.Fatal("a client without draft/read-marker got MARKREAD")
	}
	if hasMarkread(bob.sync()) {
		t.Fatal("another account heard of alice's marker")
	}

	// Going back is answered with the stored marker and tells no one.
	phone.send("MARKREAD #R " + ts(t1.Add(-time.Hour)))
	if got := phone.expectMarkread("#R"); got != ts(t1) {
		t.Fatalf("stale set: %s, want the stored %s", got, ts(t1))
	}
	if hasMarkread(laptop.sync()) {
		t.Fatal("a stale marker was broadcast")
	}
	phone.send("MARKREAD #r")
	if got := phone.expectMarkread("#r"); got != ts(t1) {
		t.Fatalf("get: %s", got)
	}
	bob.send("MARKREAD #r")
	if got := bob.expectMarkread("#r"); got != "*" {
		t.Fatalf("bob reads alice's marker: %s", got)
	}
	// A marker in the future is brought back to now.
	future := time.Now().Add(24 * time.Hour)
	laptop.send("MARKREAD #r " + ts(future))
	got := laptop.expectMarkread("#r")
	at, err := time.Parse(time.RFC3339Nano, got[len("timestamp="):])
	if err != nil || at.After(time.Now()) || !at.After(t1) {
		t.Fatalf("future marker stored as %s", got)
	}
	// Private conversations have markers too, asked for explicitly.
	laptop.send("MARKREAD Bob " + ts(t1))
	if got := laptop.expectMarkread("Bob"); got != ts(t1) {
		t.Fatalf("nick target: %s", got)
	}
	phone.send("MARKREAD bob")
	if got := phone.expectMarkread("bob"); got != ts(t1) {
		t.Fatalf("nick target, another spelling: %s", got)
	}
	// A rejoin brings the marker with it.
	laptop.send("PART #r")
	laptop.expect("PART")
	laptop.send("JOIN #r")
	if got := laptop.expectMarkread("#r"); got != "timestamp="+at.Format(rooms.TimeFormat) {
		t.Fatalf("rejoin: MARKREAD #r %s", got)
	}
}

func TestMarkReadBadInput(t *testing.T) {
	_, addr := testServer(t)
	c := accountClient(t, addr, "alice", "alice", true, "draft/read-marker")
	c.send("MARKREAD")
	c.expectFail("MARKREAD", "NEED_MORE_PARAMS")
	for _, line := range []string{
		"MARKREAD #r 2025-01-01T00:00:00.000Z", // no timestamp=
		"MARKREAD #r timestamp=yesterday",
		"MARKREAD #r timestamp=",
		"MARKREAD #r *", // only the server says *
		"MARKREAD #r timestamp=*",
		"MARKREAD #r timestamp=1969-12-31T23:59:59.999Z",
		"MARKREAD #r timestamp=2025-13-01T00:00:00.000Z",
		"MARKREAD #r :timestamp=2025-01-01T00:00:00.000Z; DROP TABLE",
		"MARKREAD bad,target timestamp=2025-01-01T00:00:00.000Z",
		"MARKREAD #bad\x07room",
		"MARKREAD 9nick",
	} {
		c.send(line)
		c.expectFail("MARKREAD", "INVALID_PARAMS")
	}
	c.send("MARKREAD #r")
	if got := c.expectMarkread("#r"); got != "*" {
		t.Fatalf("bad input stored a marker: %s", got)
	}
}

func TestMarkReadForGuests(t *testing.T) {
	_, addr := testServer(t)
	g := connectCaps(t, addr, "guest1", "draft/read-marker")
	g.send("JOIN #r")
	if got := g.expectMarkread("#r"); got != "*" {
		t.Fatalf("guest join: %s", got)
	}
	// A guest's markers last as long as its connection, forward only.
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	g.send("MARKREAD #r " + ts(at))
	if got := g.expectMarkread("#r"); got != ts(at) {
		t.Fatalf("guest set: %s", got)
	}
	g.send("MARKREAD #r "+ts(at.Add(-time.Hour)), "MARKREAD #r")
	for range 2 {
		if got := g.expectMarkread("#r"); got != ts(at) {
			t.Fatalf("guest marker moved back or was lost: %s", got)
		}
	}
	other := connectCaps(t, addr, "guest2", "draft/read-marker")
	other.send("MARKREAD #r")
	if got := other.expectMarkread("#r"); got != "*" {
		t.Fatalf("another guest sees %s", got)
	}
	// Without the capability a JOIN brings no MARKREAD.
	plain := connect(t, addr, "plain")
	plain.send("JOIN #r")
	plain.expect(protocol.RPL_ENDOFNAMES)
	if hasMarkread(plain.sync()) {
		t.Fatal("MARKREAD to a client without the capability")
	}
}

func TestMarkReadSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	start := func() (*Server, string) {
		store, err := accounts.OpenFileStore(filepath.Join(dir, "accounts.db"))
		if err != nil {
			t.Fatal(err)
		}
		return testServer(t, func(_ *configs.Config, o *Options) { o.Accounts = store })
	}
	srv, addr := start()
	c := accountClient(t, addr, "alice", "alice", true, "draft/read-marker")
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	c.send("MARKREAD #r " + ts(at))
	c.expectMarkread("#r")
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, addr = start()
	c = accountClient(t, addr, "someone", "alice", false, "draft/read-marker")
	c.send("JOIN #r")
	if got := c.expectMarkread("#r"); got != ts(at) {
		t.Fatalf("after a restart: %s, want %s", got, ts(at))
	}
}

// noMarkers is an account store that keeps no read markers, as a failed
// or foreign store would answer.
type noMarkers struct{ accounts.Store }

func TestMarkReadStoreFailureIsReportedAndHarmless(t *testing.T) {
	_, addr := testServer(t, func(_ *configs.Config, o *Options) { o.Accounts = noMarkers{accounts.NewMemoryStore()} })
	c := accountClient(t, addr, "alice", "alice", true, "draft/read-marker", "echo-message")
	c.send("JOIN #r")
	c.expectFail("MARKREAD", "INTERNAL_ERROR") // where the marker would be, before 366
	c.expect(protocol.RPL_ENDOFNAMES)
	c.send("MARKREAD #r " + ts(time.Now()))
	c.expectFail("MARKREAD", "INTERNAL_ERROR")
	c.send("PRIVMSG #r :still chatting")
	if m, _ := c.expect("PRIVMSG"); m.Param(1) != "still chatting" {
		t.Fatalf("got %q", m.String())
	}
}
