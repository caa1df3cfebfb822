package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/daemon/historystore"
	"github.com/livechat/livechat/daemon/roomstore"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// chathistory sends a CHATHISTORY query and returns the lines of its batch.
func (c *client) chathistory(line string) []protocol.Message {
	c.t.Helper()
	c.send(line)
	start, _ := c.expect("BATCH")
	var got []protocol.Message
	for {
		m := c.read()
		if m.Command == "BATCH" && m.Param(0) == "-"+strings.TrimPrefix(start.Param(0), "+") {
			return got
		}
		got = append(got, m)
	}
}

func TestEventPlaybackOnlyWhenNegotiated(t *testing.T) {
	_, addr := testServer(t)
	plain := connectCaps(t, addr, "plain", "batch", "draft/chathistory")
	events := connectCaps(t, addr, "events", "batch", "draft/chathistory", "draft/event-playback")
	plain.join("#ev")
	plain.send("TOPIC #ev :a topic")
	plain.expect("TOPIC")
	events.join("#ev")
	other := connect(t, addr, "other")
	other.join("#ev")
	other.send("PRIVMSG #ev :hello", "NICK other2", "PART #ev :bye")
	events.expect("PART")
	plain.expect("PART")

	if got := commands(plain.chathistory("CHATHISTORY LATEST #ev * 50")); strings.Join(got, " ") != "PRIVMSG" {
		t.Fatalf("without event-playback: %v", got)
	}
	got := strings.Join(commands(events.chathistory("CHATHISTORY LATEST #ev * 50")), " ")
	if got != "JOIN TOPIC JOIN JOIN PRIVMSG NICK PART" {
		t.Fatalf("with event-playback: %s", got)
	}
}

// sharedStores lets servers in one test play one daemon before and after
// a restart: the history log and the room store outlive each server.
func sharedStores() func(*configs.Config, *Options) {
	log := memHistory{rooms.NewMemLog(1000, 0)}
	store := roomstore.NewMemory()
	return func(_ *configs.Config, o *Options) { o.History, o.Rooms = log, store }
}

func TestRoomsAndConversationsComeBackAfterRestart(t *testing.T) {
	stores := sharedStores()
	srv, addr := testServer(t, stores)
	a := connectCaps(t, addr, "alice", "batch", "draft/chathistory", "server-time", "message-tags")
	b := connect(t, addr, "bob")
	a.join("#back")
	a.send("TOPIC #back :we stay")
	a.expect("TOPIC")
	a.send("PRIVMSG #back :before the restart", "PRIVMSG bob :psst")
	b.expect("PRIVMSG")
	before := a.chathistory("CHATHISTORY LATEST #back * 10")
	srv.Shutdown(t.Context())

	srv2, addr2 := testServer(t, stores)
	if !strings.Contains(scrape(t, srv2), "livechat_rooms_dormant 1") {
		t.Error("livechat_rooms_dormant does not count the room that came back")
	}
	c := connect(t, addr2, "carol")
	c.send("LIST")
	_, lines := c.expect("323")
	listed := false
	for _, m := range lines {
		if m.Command == "322" && m.Param(1) == "#back" && strings.Contains(m.Param(3), "we stay") {
			listed = true
		}
	}
	if !listed {
		t.Fatalf("LIST after restart: %v", lines)
	}
	c.send("JOIN #back")
	_, joined := c.expect("PRIVMSG") // the replay
	text := ""
	for _, m := range joined {
		text += m.String() + "\n"
	}
	if !strings.Contains(text, "332 carol #back :we stay") {
		t.Fatalf("join after restart:\n%s", text)
	}
	h := connectCaps(t, addr2, "historian", "batch", "draft/chathistory", "server-time", "message-tags")
	h.join("#back")
	after := h.chathistory("CHATHISTORY LATEST #back * 10")
	if len(after) != 1 || len(before) != 1 || after[0].Param(1) != "before the restart" ||
		tagOf(after[0], "msgid") != tagOf(before[0], "msgid") || tagOf(after[0], "time") != tagOf(before[0], "time") {
		t.Fatalf("history after restart %v, before %v", after, before)
	}
}

// TestFileHistorySurvivesRestart runs the durable store for real: a
// server writes, shuts down (committing what is pending), and a new server
// on the same data_dir answers CHATHISTORY from the file, from a cold
// start, beyond its ring.
func TestFileHistorySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	onFile := func(c *configs.Config, o *Options) {
		c.DataDir, c.History.Store, c.History.Size, c.History.Replay = dir, "file", 5, 5
		h, err := OpenHistory(c, o.Logger)
		if err != nil {
			t.Fatal(err)
		}
		o.History = h
	}
	srv, addr := testServer(t, onFile)
	a := connectCaps(t, addr, "alice", "batch", "draft/chathistory", "server-time", "message-tags", "echo-message")
	a.join("#disk")
	var sent []protocol.Message
	for i := range 30 {
		a.send(fmt.Sprintf("PRIVMSG #disk :line %d", i))
		m, _ := a.expect("PRIVMSG")
		sent = append(sent, m)
	}
	srv.Shutdown(t.Context())

	_, addr2 := testServer(t, onFile)
	b := connectCaps(t, addr2, "bob", "batch", "draft/chathistory", "server-time", "message-tags")
	b.join("#disk")
	got := b.chathistory("CHATHISTORY LATEST #disk * 100")
	if len(got) != len(sent) {
		t.Fatalf("after restart %d messages, want %d", len(got), len(sent))
	}
	for i := range sent {
		if got[i].Param(1) != sent[i].Param(1) || tagOf(got[i], "msgid") != tagOf(sent[i], "msgid") || tagOf(got[i], "time") != tagOf(sent[i], "time") {
			t.Fatalf("message %d after restart %q, sent %q", i, got[i].String(), sent[i].String())
		}
	}
	// Paging backwards from the oldest in memory reaches the file.
	page := b.chathistory("CHATHISTORY BEFORE #disk msgid=" + tagOf(sent[10], "msgid") + " 5")
	if len(page) != 5 || page[0].Param(1) != "line 5" || page[4].Param(1) != "line 9" {
		t.Fatalf("BEFORE line 10: %v", page)
	}
}

// TestPrivateHistoryOfAccountsSurvivesRestart: two accounts' conversation
// is theirs after a restart, found by nick, listed by TARGETS; nobody
// else sees any of it.
func TestPrivateHistoryOfAccountsSurvivesRestart(t *testing.T) {
	stores := sharedStores()
	accts := keepOpen{accounts.NewMemoryStore()} // the first server's shutdown must not close it
	shared := func(c *configs.Config, o *Options) { stores(c, o); o.Accounts = accts }
	srv, addr := testServer(t, shared)
	for _, name := range []string{"wendy", "xavier"} {
		c := dial(t, addr)
		c.send("REGISTER " + name + " hunter2hunter2")
		c.expect(protocol.RPL_LOGGEDIN)
		c.send("QUIT")
		c.expect("ERROR")
	}
	w := connectCaps(t, addr, "w1", "batch", "draft/chathistory")
	w.send("LOGIN wendy hunter2hunter2")
	w.expect("NICK") // the account's nick, after 900
	x := connectCaps(t, addr, "x1", "batch", "draft/chathistory")
	x.send("LOGIN xavier hunter2hunter2")
	x.expect("NICK")
	w.send("PRIVMSG xavier :between us")
	x.expect("PRIVMSG")
	x.send("PRIVMSG wendy :indeed")
	w.expect("PRIVMSG")
	srv.Shutdown(t.Context())

	_, addr2 := testServer(t, shared)
	guest := connectCaps(t, addr2, "guest1", "batch", "draft/chathistory") // not logged in
	if got := guest.chathistory("CHATHISTORY LATEST xavier * 10"); len(got) != 0 {
		t.Fatalf("a guest read %v", got)
	}
	x2 := connectCaps(t, addr2, "x2", "batch", "draft/chathistory")
	x2.send("LOGIN xavier hunter2hunter2")
	x2.expect("NICK")
	got := x2.chathistory("CHATHISTORY LATEST wendy * 10")
	if len(got) != 2 || got[0].Param(1) != "between us" || got[1].Param(1) != "indeed" {
		t.Fatalf("xavier's conversation after restart: %v", got)
	}
	targets := x2.chathistory("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10")
	if len(targets) != 1 || targets[0].Param(1) != "wendy" {
		t.Fatalf("TARGETS after restart: %v", targets)
	}
}

// keepOpen is an account store that outlives the servers of a test.
type keepOpen struct{ accounts.Store }

func (keepOpen) Close() error { return nil }

// TestDamagedHistoryKeepsTheServerChatting: a history file that is not a
// history file at start is logged and counted, the server chats from
// memory, and CHATHISTORY that needs the file says history is unavailable
// rather than answering short.
func TestDamagedHistoryKeepsTheServerChatting(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "history.db"), bytes.Repeat([]byte("not a database "), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, addr := testServer(t, func(c *configs.Config, o *Options) {
		c.DataDir, c.History.Store = dir, "file"
		h, err := OpenHistory(c, o.Logger)
		if err != nil {
			t.Fatalf("a damaged file refused the start: %v", err)
		}
		o.History = h
	})
	a := connectCaps(t, addr, "alice", "batch", "draft/chathistory", "echo-message")
	b := connect(t, addr, "bob")
	a.join("#still")
	b.join("#still")
	a.send("PRIVMSG #still :we go on")
	if m, _ := b.expect("PRIVMSG"); m.Param(1) != "we go on" {
		t.Fatalf("bob got %q", m.String())
	}
	a.expect("PRIVMSG")
	a.send("CHATHISTORY BEFORE #still timestamp=2020-01-01T00:00:00.000Z 10")
	a.expectFail("CHATHISTORY", "MESSAGE_ERROR")
	page := scrape(t, srv)
	// The store retries opening meanwhile; a slow run counts more than one.
	if !strings.Contains(page, "livechat_history_available 0") || !regexp.MustCompile(`livechat_history_errors_total\{op="open"\} [1-9]`).MatchString(page) {
		t.Fatal("metrics do not say history is unavailable, or why")
	}
}

// TestNewerHistoryFileRefusesTheStart: a file a newer livechatd wrote is
// not misread; the start fails and says why.
func TestNewerHistoryFileRefusesTheStart(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "history.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("schema"), []byte{0, 0, 0, 99})
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	cfg := configs.Default()
	cfg.DataDir = dir
	if _, err := OpenHistory(&cfg, zerolog.Nop()); !errors.Is(err, historystore.ErrNewerSchema) {
		t.Fatalf("newer file: %v, want ErrNewerSchema", err)
	}
}
