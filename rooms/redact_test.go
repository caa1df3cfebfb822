package rooms

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/protocol"
)

// inspectReq runs fn in the room's actor: the tests read the ring where
// the room keeps it, without depending on how CHATHISTORY asks.
type inspectReq struct {
	fn   func(*Room)
	done chan struct{}
}

func (inspectReq) kind() string   { return "INSPECT" }
func (q inspectReq) run(r *Room)  { q.fn(r) }
func (inspectReq) fail(*Room)     {}
func (q inspectReq) finish(*Room) { close(q.done) }
func inspect(r *Room, fn func(*Room)) {
	q := inspectReq{fn: fn, done: make(chan struct{})}
	if r.send(q) {
		<-q.done
	}
}

// ringIDs lists the msgids the rings hold (all events, then messages).
func ringIDs(r *Room) []string {
	var ids []string
	inspect(r, func(r *Room) {
		events, _ := r.history.Query(Query{Sel: SelLatest, Limit: 1000, Events: true})
		for _, e := range events {
			ids = append(ids, e.ID)
		}
		msgs, _ := r.history.Query(Query{Sel: SelLatest, Limit: 1000})
		for _, e := range msgs {
			ids = append(ids, e.ID)
		}
	})
	return ids
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// said sends text from c and returns its msgid, as the echo shows it.
func said(t *testing.T, r *Room, c *fakeClient, text string) string {
	t.Helper()
	c.reset()
	r.Say(c, Speech{Command: "PRIVMSG", Text: text}, true)
	for _, l := range c.waitLines(t, 1) {
		m, err := protocol.ParseString(l)
		if err == nil && m.Command == "PRIVMSG" && m.Param(1) == text {
			if id, ok := m.Tag("msgid"); ok {
				return id
			}
		}
	}
	t.Fatalf("no echo with a msgid for %q", text)
	return ""
}

// bySource says an event is c's when its source is c's nick: what the
// daemon's owns does with identities.
func bySource(nick string) func(*Event) bool {
	return func(e *Event) bool { return strings.HasPrefix(e.Source, nick+"!") }
}

// redactRoom sets up #r with alice (operator, first in), bob and carol,
// who all echo and see msgids; carol has not negotiated redaction.
func redactRoom(t *testing.T, log Log) (r *Room, alice, bob, carol *fakeClient) {
	t.Helper()
	g := testRegistry(t, func(o *Options) { o.HistorySize = 3; o.Log = log })
	alice, bob, carol = newFake(), newFake(), newFake()
	alice.features = FeatTags | FeatEcho | FeatRedaction
	bob.features = FeatTags | FeatEcho | FeatRedaction
	carol.features = FeatTags | FeatEcho
	var err error
	for _, m := range []Member{mem(alice, "alice"), mem(bob, "bob"), mem(carol, "carol")} {
		if r, err = g.Join(m, "#r", ""); err != nil {
			t.Fatal(err)
		}
	}
	return r, alice, bob, carol
}

func TestRedactOwnMessage(t *testing.T) {
	r, alice, bob, carol := redactRoom(t, nil)
	id := said(t, r, bob, "oops, wrong room")
	alice.reset()
	carol.reset()
	bob.reset()
	e, err := r.Redact(bob, id, "typo", bySource("bob"))
	if err != nil || e == nil || e.ID != id {
		t.Fatalf("Redact = %v, %v", e, err)
	}
	if contains(ringIDs(r), id) {
		t.Fatal("the ring still holds the redacted message")
	}
	for _, c := range []*fakeClient{alice, bob} {
		got := c.waitLines(t, 1)[0]
		m, _ := protocol.ParseString(got)
		if m.Command != "REDACT" || m.Source != "bob!~bob@127.0.0.1" || strings.Join(m.Params, " ") != "#r "+id+" typo" {
			t.Fatalf("got %q", got)
		}
		if rid, ok := m.Tag("msgid"); !ok || rid == id {
			t.Fatalf("REDACT line without its own msgid: %q", got)
		}
	}
	// A barrier: carol's next line is one sent after the redaction.
	said(t, r, alice, "after")
	if lines := carol.waitLines(t, 1); strings.Contains(strings.Join(lines, "\n"), "REDACT") {
		t.Fatalf("a client without the capability got %q", lines)
	}
}

func TestRedactRules(t *testing.T) {
	r, alice, bob, carol := redactRoom(t, nil)
	fromAlice := said(t, r, alice, "op speaks")
	fromCarol := said(t, r, carol, "spam spam")

	if _, err := r.Redact(bob, fromAlice, "", bySource("bob")); !errors.Is(err, ErrRedactForbidden) {
		t.Fatalf("a member redacting someone else's message: %v, want ErrRedactForbidden", err)
	}
	if _, err := r.Redact(bob, "no-such-id", "", bySource("bob")); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("unknown msgid: %v, want ErrUnknownMessage", err)
	}
	if _, err := r.Redact(bob, fromAlice, "", nil); !errors.Is(err, ErrRedactForbidden) {
		t.Fatalf("no owner test: %v, want ErrRedactForbidden", err)
	}
	outsider := newFake()
	outsider.features = FeatRedaction
	if _, err := r.Redact(outsider, fromCarol, "", func(*Event) bool { return true }); !errors.Is(err, ErrNotMember) {
		t.Fatalf("a non-member, even claiming the message: %v, want ErrNotMember", err)
	}
	if ids := ringIDs(r); !contains(ids, fromAlice) || !contains(ids, fromCarol) {
		t.Fatalf("refused redactions changed the ring: %v", ids)
	}
	// Joins are in history too, with msgids, but they are no one's words.
	var join string
	inspect(r, func(r *Room) {
		events, _ := r.history.Query(Query{Sel: SelLatest, Limit: 100, Events: true})
		for _, e := range events {
			if e.Command == "JOIN" && e.ID != "" {
				join = e.ID
			}
		}
	})
	if join == "" {
		t.Fatal("no JOIN with a msgid in the ring")
	}
	if _, err := r.Redact(alice, join, "", func(*Event) bool { return true }); !errors.Is(err, ErrRedactForbidden) {
		t.Fatalf("redacting a JOIN: %v, want ErrRedactForbidden", err)
	}
	// The operator removes anyone's message.
	if _, err := r.Redact(alice, fromCarol, "spam", bySource("alice")); err != nil {
		t.Fatalf("operator: %v", err)
	}
	if contains(ringIDs(r), fromCarol) {
		t.Fatal("the ring still holds the message the operator redacted")
	}
	if _, err := r.Redact(alice, fromCarol, "", bySource("alice")); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("redacting twice: %v, want ErrUnknownMessage", err)
	}
}

func TestRedactReachesTheLog(t *testing.T) {
	log := NewMemLog(100, 0)
	r, alice, bob, _ := redactRoom(t, log)
	// An old message only the log still has, older than the ring of 3.
	old := &Event{At: time.Now().Add(-time.Hour), ID: "old-1", Source: "bob!~bob@127.0.0.1", Command: "PRIVMSG", Params: []string{"#r", "said long ago"}}
	join := &Event{At: time.Now().Add(-time.Hour), ID: "join-1", Source: "bob!~bob@127.0.0.1", Command: "JOIN", Params: []string{"#r"}}
	log.Append("#r", old)
	log.Append("#r", join)
	recent := said(t, r, bob, "recent") // the room appends it to the log itself

	inLog := func(id string) bool {
		events, _ := log.Query("#r", aroundID(id))
		return len(events) == 1 && events[0].ID == id
	}
	if _, err := r.Redact(alice, "join-1", "", bySource("alice")); !errors.Is(err, ErrRedactForbidden) || !inLog("join-1") {
		t.Fatalf("redacting a JOIN: %v, want ErrRedactForbidden and the JOIN kept", err)
	}
	if _, err := r.Redact(bob, "old-1", "", bySource("bob")); err != nil || inLog("old-1") {
		t.Fatalf("redacting a message only the log has: %v (still there: %v)", err, inLog("old-1"))
	}
	if _, err := r.Redact(bob, recent, "", bySource("bob")); err != nil || inLog(recent) || contains(ringIDs(r), recent) {
		t.Fatalf("redacting a recent message: %v (in log %v, ring %v)", err, inLog(recent), ringIDs(r))
	}
}

// failingLog is a MemLog whose store has failed.
type failingLog struct{ *MemLog }

func (failingLog) Query(string, Query) ([]*Event, error) { return nil, ErrHistoryUnavailable }
func (failingLog) Redact(string, string) (*Event, error) { return nil, ErrHistoryUnavailable }

func TestRedactWithAFailedLogChangesNothing(t *testing.T) {
	r, alice, bob, _ := redactRoom(t, failingLog{NewMemLog(10, 0)})
	id := said(t, r, bob, "keep me")
	alice.reset()
	if _, err := r.Redact(bob, id, "", bySource("bob")); !errors.Is(err, ErrHistoryUnavailable) {
		t.Fatalf("got %v, want ErrHistoryUnavailable", err)
	}
	if _, err := r.Redact(bob, "older", "", bySource("bob")); !errors.Is(err, ErrHistoryUnavailable) {
		t.Fatalf("a miss in the ring with the log down: %v, want ErrHistoryUnavailable", err)
	}
	if !contains(ringIDs(r), id) {
		t.Fatal("the ring lost a message the log could not redact")
	}
	said(t, r, bob, "barrier")
	if lines := alice.waitLines(t, 1); strings.Contains(strings.Join(lines, "\n"), "REDACT") {
		t.Fatalf("members were told of a redaction that failed: %q", lines)
	}
}
