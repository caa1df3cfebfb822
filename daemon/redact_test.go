package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/historystore"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

const testPassword = "correct-horse-battery"

// redactCaps are what a client that deletes messages negotiates.
var redactCaps = []string{"message-tags", "echo-message", "server-time", "batch", "draft/chathistory", "draft/message-redaction"}

// accountClient connects with caps and registers the account (or logs in
// to it), then waits until the server is quiet.
func accountClient(t *testing.T, addr, nick, account string, register bool, caps ...string) *client {
	t.Helper()
	c := connectCaps(t, addr, nick, caps...)
	if register {
		c.send("REGISTER " + account + " " + testPassword)
	} else {
		c.send("LOGIN " + account + " " + testPassword)
	}
	c.expect(protocol.RPL_LOGGEDIN)
	c.sync()
	return c
}

// say sends a PRIVMSG and returns its msgid from the echo.
func (c *client) say(target, text string) string {
	c.t.Helper()
	c.send("PRIVMSG " + target + " :" + text)
	for {
		m, _ := c.expect("PRIVMSG")
		if m.Param(1) == text {
			id := tagOf(m, "msgid")
			if id == "" {
				c.t.Fatalf("echo without a msgid: %q", m.String())
			}
			return id
		}
	}
}

// history returns the texts CHATHISTORY LATEST gives c for target.
func (c *client) history(target string) []string {
	c.t.Helper()
	c.send("CHATHISTORY LATEST " + target + " * 100")
	start, _ := c.expect("BATCH")
	var texts []string
	for {
		m := c.read()
		if m.Command == "BATCH" && m.Param(0) == "-"+strings.TrimPrefix(start.Param(0), "+") {
			return texts
		}
		texts = append(texts, m.Param(1))
	}
}

// redacts reports whether lines hold a REDACT of id from source nick.
func redacts(lines []protocol.Message, nick, target, id string) bool {
	for _, m := range lines {
		if m.Command == "REDACT" && strings.HasPrefix(m.Source, nick+"!") && m.Param(0) == target && m.Param(1) == id {
			return true
		}
	}
	return false
}

func TestRedactInRoom(t *testing.T) {
	_, addr := testServer(t)
	alice := accountClient(t, addr, "alice", "alice", true, redactCaps...) // first in: operator
	bob := accountClient(t, addr, "bob", "bob", true, redactCaps...)
	carol := accountClient(t, addr, "carol", "carol", true, "message-tags", "echo-message") // no redaction cap
	dave := accountClient(t, addr, "dave", "dave", true, redactCaps...)                     // never joins
	for _, c := range []*client{alice, bob, carol} {
		c.join("#r")
	}
	oops := bob.say("#r", "oops, wrong room")
	fromAlice := alice.say("#r", "welcome all")
	spam := carol.say("#r", "buy cheap watches")
	for _, c := range []*client{alice, bob, carol} {
		c.sync()
	}

	// Attacks first: none of them changes anything.
	dave.send("REDACT #r " + oops)
	dave.expectFail("REDACT", "INVALID_TARGET")
	dave.send("REDACT #nowhere " + oops)
	dave.expectFail("REDACT", "INVALID_TARGET")
	bob.send("REDACT #r " + fromAlice + " :not yours")
	if m := bob.expectFail("REDACT", "REDACT_FORBIDDEN"); m.Param(2) != "#r" || m.Param(3) != fromAlice {
		t.Fatalf("FAIL without its target and msgid: %q", m.String())
	}
	carol.send("REDACT #r " + oops)
	carol.expectFail("REDACT", "REDACT_FORBIDDEN")
	bob.send("REDACT #r nosuchid")
	bob.expectFail("REDACT", "UNKNOWN_MSGID")
	bob.send("REDACT #r :" + oops + " x") // a msgid with a space names nothing
	bob.expectFail("REDACT", "UNKNOWN_MSGID")
	bob.send("REDACT #r " + strings.Repeat("a", 200))
	bob.expectFail("REDACT", "UNKNOWN_MSGID")
	bob.send("REDACT #r " + oops + " :bad\x07reason")
	bob.expectFail("REDACT", "INVALID_TEXT")
	bob.send("REDACT #r")
	bob.expect(protocol.ERR_NEEDMOREPARAMS)
	if got := strings.Join(alice.history("#r"), "|"); got != "oops, wrong room|welcome all|buy cheap watches" {
		t.Fatalf("refused redactions changed the history: %s", got)
	}

	// The sender takes back their own message.
	bob.send("REDACT #r " + oops + " :wrong room")
	echo, _ := bob.expect("REDACT")
	if echo.Param(0) != "#r" || echo.Param(1) != oops || echo.Param(2) != "wrong room" || tagOf(echo, "msgid") == "" || tagOf(echo, "time") == "" {
		t.Fatalf("echo %q", echo.String())
	}
	if m, _ := alice.expect("REDACT"); !redacts([]protocol.Message{m}, "bob", "#r", oops) || m.Param(2) != "wrong room" {
		t.Fatalf("alice got %q", m.String())
	}
	if lines := carol.sync(); redacts(lines, "bob", "#r", oops) {
		t.Fatal("a client without draft/message-redaction got the REDACT")
	}
	// The operator removes someone else's.
	alice.send("REDACT #r " + spam + " :spam")
	alice.expect("REDACT")
	if m, _ := bob.expect("REDACT"); !redacts([]protocol.Message{m}, "alice", "#r", spam) {
		t.Fatalf("bob got %q", m.String())
	}
	if got := strings.Join(bob.history("#r"), "|"); got != "welcome all" {
		t.Fatalf("history after the redactions: %s", got)
	}
	bob.send("REDACT #r " + oops)
	bob.expectFail("REDACT", "UNKNOWN_MSGID")

	// Someone who left cannot redact what they said while in.
	late := bob.say("#r", "one more thing")
	bob.send("PART #r")
	bob.expect("PART")
	bob.send("REDACT #r " + late)
	bob.expectFail("REDACT", "INVALID_TARGET")
}

func TestRedactLoggedOutCannotTakeAccountsMessages(t *testing.T) {
	_, addr := testServer(t, separateConnections)
	alice := accountClient(t, addr, "alice", "alice", true, redactCaps...)
	alice.join("#r")
	mallory := connectCaps(t, addr, "mallory", redactCaps...)
	mallory.join("#r")
	alice.send("MODE #r -o alice") // nobody is operator now
	alice.expect("MODE")
	id := alice.say("#r", "mine")
	mallory.send("REDACT #r " + id)
	mallory.expectFail("REDACT", "REDACT_FORBIDDEN")
	// The account, not the connection, owns it: another session of the
	// account may take it back.
	alice2 := accountClient(t, addr, "alice2", "alice", false, redactCaps...)
	alice2.join("#r")
	alice2.send("REDACT #r " + id)
	alice2.expect("REDACT")
}

func TestRedactPrivate(t *testing.T) {
	_, addr := testServer(t)
	alice := accountClient(t, addr, "alice", "alice", true, redactCaps...)
	bob := accountClient(t, addr, "bob", "bob", true, redactCaps...)
	alicePhone := accountClient(t, addr, "alicephone", "alice", false, redactCaps...)
	carol := accountClient(t, addr, "carol", "carol", true, redactCaps...)
	id := alice.say("bob", "my password is hunter2")
	bob.expect("PRIVMSG")
	reply := bob.say("alice", "oh no")
	alice.expect("PRIVMSG")

	bob.send("REDACT alice " + id)
	bob.expectFail("REDACT", "REDACT_FORBIDDEN") // no one moderates a conversation
	carol.send("REDACT bob " + id)
	carol.expectFail("REDACT", "UNKNOWN_MSGID") // not carol's conversation
	alice.send("REDACT bob nosuchid")
	alice.expectFail("REDACT", "UNKNOWN_MSGID")
	alice.send("REDACT bad,nick " + id)
	alice.expectFail("REDACT", "INVALID_TARGET")

	alice.send("REDACT bob " + id + " :oops")
	if m, _ := alice.expect("REDACT"); m.Param(0) != "bob" || m.Param(1) != id {
		t.Fatalf("echo %q", m.String())
	}
	if m, _ := bob.expect("REDACT"); !redacts([]protocol.Message{m}, "alice", "bob", id) {
		t.Fatalf("bob got %q", m.String())
	}
	if m, _ := alicePhone.expect("REDACT"); !redacts([]protocol.Message{m}, "alice", "bob", id) {
		t.Fatalf("alice's other connection got %q", m.String())
	}
	if got := strings.Join(bob.history("alice"), "|"); got != "oh no" {
		t.Fatalf("bob's history with alice: %s", got)
	}
	bob.send("REDACT alice " + reply)
	bob.expect("REDACT")
	if got := alice.history("bob"); len(got) != 0 {
		t.Fatalf("alice's history with bob: %q", got)
	}
}

// The Log half of private REDACT, which the private history's move onto
// the Log calls.
func TestRedactConversationInLog(t *testing.T) {
	log := rooms.NewMemLog(10, 0)
	target := rooms.ConversationTarget("a:alice", "a:bob")
	at := time.Now()
	log.Append(target, &rooms.Event{At: at, ID: "m1", Origin: "a:alice", Command: "PRIVMSG", Params: []string{"bob", "secret"}})
	log.Append(target, &rooms.Event{At: at, ID: "m2", Origin: "a:bob", Command: "PRIVMSG", Params: []string{"alice", "reply"}})
	log.Append(target, &rooms.Event{At: at, ID: "n1", Origin: "a:alice", Command: "NICK", Params: []string{"alicia"}})
	isAlice := func(e *rooms.Event) bool { return e.Origin == "a:alice" }
	for id, want := range map[string]error{"m2": rooms.ErrRedactForbidden, "n1": rooms.ErrRedactForbidden, "zz": rooms.ErrUnknownMessage} {
		if _, err := redactConversation(log, target, id, isAlice); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", id, err, want)
		}
	}
	if e, err := redactConversation(log, target, "m1", isAlice); err != nil || e.ID != "m1" {
		t.Fatalf("own message: %v, %v", e, err)
	}
	events, _ := log.Query(target, rooms.Query{Sel: rooms.SelLatest, Limit: 10, Events: true})
	if len(events) != 2 || events[0].ID != "m2" {
		t.Fatalf("left in the log: %v", events)
	}
}

func TestRedactCapabilityOffered(t *testing.T) {
	_, addr := testServer(t)
	c := connectCaps(t, addr, "x", "draft/message-redaction", "draft/read-marker")
	c.send("CAP LIST")
	m, _ := c.expect("CAP")
	if !strings.Contains(m.Param(2), "draft/message-redaction") || !strings.Contains(m.Param(2), "draft/read-marker") {
		t.Fatalf("CAP LIST %q", m.String())
	}
}

// inLog reports whether target's log still holds id, whatever its kind.
func inLog(log rooms.Log, target, id string) bool {
	events, _ := log.Query(target, aroundID(id))
	for _, e := range events {
		if e.ID == id {
			return true
		}
	}
	return false
}

// The text leaves the history store, not just memory: a recent message,
// one only the log still has (older than the ring), and a private one.
func TestRedactRemovesFromTheHistoryStore(t *testing.T) {
	log := rooms.NewMemLog(100, 0)
	_, addr := testServer(t, func(c *configs.Config, o *Options) {
		c.History.Size, c.History.Replay = 2, 0
		o.History = memHistory{log}
	})
	alice := accountClient(t, addr, "alice", "alice", true, redactCaps...)
	bob := accountClient(t, addr, "bob", "bob", true, redactCaps...)
	alice.join("#r")
	bob.join("#r")
	old := bob.say("#r", "said long ago")
	for i := range 4 { // push it out of the ring of 2
		bob.say("#r", fmt.Sprint("filler ", i))
	}
	recent := bob.say("#r", "said just now")
	for _, id := range []string{old, recent} {
		if !inLog(log, "#r", id) {
			t.Fatalf("%s is not in the log to begin with", id)
		}
		bob.send("REDACT #r " + id)
		bob.expect("REDACT")
		if m, _ := alice.expect("REDACT"); m.Param(1) != id {
			t.Fatalf("alice got %q", m.String())
		}
		if inLog(log, "#r", id) {
			t.Fatalf("%s is still in the log", id)
		}
	}
	for _, text := range bob.history("#r") {
		if text == "said long ago" || text == "said just now" {
			t.Fatalf("CHATHISTORY still has %q", text)
		}
	}

	secret := alice.say("bob", "a secret")
	bob.expect("PRIVMSG")
	target := rooms.ConversationTarget("a:alice", "a:bob")
	if !inLog(log, target, secret) {
		t.Fatal("the private message is not in the log to begin with")
	}
	alice.send("REDACT bob " + secret)
	alice.expect("REDACT")
	bob.expect("REDACT")
	if inLog(log, target, secret) {
		t.Fatal("the private message is still in the log")
	}
}

// A guest owns what it said from its connection, in a room and privately.
func TestRedactAsGuest(t *testing.T) {
	_, addr := testServer(t)
	op := connectCaps(t, addr, "op", redactCaps...)
	op.join("#r")
	g := connectCaps(t, addr, "guesty", redactCaps...)
	g.join("#r")
	mine := g.say("#r", "guest words")
	theirs := op.say("#r", "op words")
	g.send("REDACT #r " + theirs)
	g.expectFail("REDACT", "REDACT_FORBIDDEN")
	g.send("REDACT #r " + mine)
	g.expect("REDACT")
	dm := g.say("op", "psst")
	op.expect("PRIVMSG")
	op.send("REDACT guesty " + dm)
	op.expectFail("REDACT", "REDACT_FORBIDDEN")
	g.send("REDACT op " + dm)
	g.expect("REDACT")
	if m, _ := op.expect("REDACT"); m.Param(0) != "op" || m.Param(1) != dm {
		t.Fatalf("op got %q", m.String())
	}
}

// failingHistory is a history store whose redactions fail.
type failingHistory struct{ memHistory }

func (failingHistory) Redact(string, string) (*rooms.Event, error) {
	return nil, rooms.ErrHistoryUnavailable
}

func TestRedactWithAFailedStoreDeletesNothing(t *testing.T) {
	_, addr := testServer(t, func(_ *configs.Config, o *Options) {
		o.History = failingHistory{memHistory{rooms.NewMemLog(100, 0)}}
	})
	alice := accountClient(t, addr, "alice", "alice", true, redactCaps...)
	bob := accountClient(t, addr, "bob", "bob", true, redactCaps...)
	alice.join("#r")
	bob.join("#r")
	id := bob.say("#r", "keep me")
	alice.sync()
	bob.send("REDACT #r " + id)
	bob.expectFail("REDACT", "TEMPORARILY_UNAVAILABLE")
	if lines := alice.sync(); redacts(lines, "bob", "#r", id) {
		t.Fatal("members were told of a redaction that failed")
	}
	if got := strings.Join(alice.history("#r"), "|"); got != "keep me" {
		t.Fatalf("history after a failed redaction: %s", got)
	}
}

// End to end on the embedded store: REDACT takes the words off the disk,
// not just out of sight, and a restart does not bring them back.
func TestRedactTakesTheTextOffTheDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	open := func() *historystore.Store {
		st, err := historystore.Open(path, historystore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// What is on the disk: the file and its write-ahead log.
	onDisk := func() string {
		file, _ := os.ReadFile(path)
		log, _ := os.ReadFile(path + ".wal")
		return string(file) + string(log)
	}
	st := open()
	srv, addr := testServer(t, func(_ *configs.Config, o *Options) { o.History = st })
	alice := accountClient(t, addr, "alice", "alice", true, redactCaps...)
	bob := accountClient(t, addr, "bob", "bob", true, redactCaps...)
	alice.join("#r")
	bob.join("#r")
	const secret = "my bank pin is 4921"
	id := bob.say("#r", secret)
	bob.say("#r", "a message that stays")
	dm := bob.say("alice", secret+" (private)")
	if err := st.Sync(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(onDisk(), secret) {
		t.Fatal("the message never reached the disk; the test proves nothing")
	}
	bob.send("REDACT #r " + id)
	bob.expect("REDACT")
	bob.send("REDACT alice " + dm)
	bob.expect("REDACT")
	if err := st.Scrub(); err != nil { // the daemon scrubs by itself within history's scrub interval
		t.Fatal(err)
	}
	if strings.Contains(onDisk(), secret) {
		t.Fatal("the redacted text is still on the disk")
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	st = open()
	_, addr = testServer(t, func(_ *configs.Config, o *Options) { o.History = st })
	alice = accountClient(t, addr, "alice", "alice", true, redactCaps...) // accounts were in memory
	alice.join("#r")
	if got := strings.Join(alice.history("#r"), "|"); got != "a message that stays" {
		t.Fatalf("history after a restart: %s", got)
	}
}
