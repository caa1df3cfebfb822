package daemon

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// connectCaps registers like a modern client that requests caps.
func connectCaps(t *testing.T, addr, nick string, caps ...string) *client {
	t.Helper()
	c := dial(t, addr)
	c.nick = nick
	c.send("CAP LS 302", "NICK "+nick, "USER "+nick+" 0 * :"+nick)
	for {
		m := c.read()
		if m.Command == "CAP" && m.Param(1) == "LS" && m.Param(2) != "*" {
			break
		}
	}
	if len(caps) > 0 {
		c.send("CAP REQ :" + strings.Join(caps, " "))
		ack, _ := c.expect("CAP")
		if ack.Param(1) != "ACK" {
			t.Fatalf("CAP REQ %v: %q", caps, ack.String())
		}
	}
	c.send("CAP END")
	c.expectEndOfMOTD()
	return c
}

func TestServerTimeAndMsgidOnlyWhenNegotiated(t *testing.T) {
	_, addr := testServer(t)
	modern := connectCaps(t, addr, "modern", "server-time", "message-tags")
	plain := connectCaps(t, addr, "plain")
	speaker := connect(t, addr, "speaker")
	for _, c := range []*client{modern, plain, speaker} {
		c.join("#tags")
	}
	speaker.send("PRIVMSG #tags :hello")
	m, _ := modern.expect("PRIVMSG")
	ts, okTime := m.Tag("time")
	id, okID := m.Tag("msgid")
	if !okTime || !okID || id == "" {
		t.Fatalf("modern client got %q", m.String())
	}
	if at, err := time.Parse(rooms.TimeFormat, ts); err != nil || time.Since(at) > time.Minute {
		t.Fatalf("time tag %q: %v", ts, err)
	}
	p, _ := plain.expect("PRIVMSG")
	if len(p.Tags) != 0 {
		t.Fatalf("plain client got tags: %q", p.String())
	}
}

func TestEchoMessageSameMsgid(t *testing.T) {
	_, addr := testServer(t)
	a := connectCaps(t, addr, "echoer", "echo-message", "message-tags")
	b := connectCaps(t, addr, "other", "message-tags")
	a.join("#echo")
	b.join("#echo")
	a.send("@+draft/reply=abc PRIVMSG #echo :ping me back")
	echo, _ := a.expect("PRIVMSG")
	seen, _ := b.expect("PRIVMSG")
	ide, _ := echo.Tag("msgid")
	ids, _ := seen.Tag("msgid")
	if ide == "" || ide != ids {
		t.Fatalf("echo msgid %q, others saw %q", ide, ids)
	}
	if v, ok := seen.Tag("+draft/reply"); !ok || v != "abc" {
		t.Fatalf("client tag not relayed: %q", seen.String())
	}
	// Private messages echo too.
	a.send("PRIVMSG other :psst")
	pm, _ := a.expect("PRIVMSG")
	got, _ := b.expect("PRIVMSG")
	if pm.Param(0) != "other" || got.Param(1) != "psst" {
		t.Fatalf("echo %q, delivered %q", pm.String(), got.String())
	}
	if x, _ := pm.Tag("msgid"); x == "" || x != tagOf(got, "msgid") {
		t.Fatalf("private echo msgid mismatch: %q vs %q", pm.String(), got.String())
	}
}

func tagOf(m protocol.Message, key string) string {
	v, _ := m.Tag(key)
	return v
}

func TestLabeledResponse(t *testing.T) {
	_, addr := testServer(t)
	c := connectCaps(t, addr, "labeler", "labeled-response", "batch")
	c.send("@label=one PING x")
	pong, _ := c.expect("PONG")
	if tagOf(pong, "label") != "one" {
		t.Fatalf("single reply %q", pong.String())
	}
	c.join("#lab")
	c.send("@label=two NAMES #lab")
	start, _ := c.expect("BATCH")
	if tagOf(start, "label") != "two" || start.Param(1) != "labeled-response" {
		t.Fatalf("batch start %q", start.String())
	}
	id := strings.TrimPrefix(start.Param(0), "+")
	names := c.read()
	end := c.read()
	endNames, _ := c.expect("BATCH")
	if names.Command != protocol.RPL_NAMREPLY || tagOf(names, "batch") != id || end.Command != protocol.RPL_ENDOFNAMES || endNames.Param(0) != "-"+id {
		t.Fatalf("batch body %q %q %q", names.String(), end.String(), endNames.String())
	}
	c.send("@label=three PRIVMSG #lab :no reply expected")
	ack, _ := c.expect("ACK")
	if tagOf(ack, "label") != "three" {
		t.Fatalf("ACK %q", ack.String())
	}
}

func TestJoinReplayBatchedForCapableClientsOnly(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "talker")
	a.join("#past")
	a.send("PRIVMSG #past :first", "PRIVMSG #past :second")
	a.sync()

	modern := connectCaps(t, addr, "modern", "batch", "server-time", "message-tags")
	modern.send("JOIN #past")
	modern.expect(protocol.RPL_ENDOFNAMES)
	start := modern.read()
	if start.Command != "BATCH" || start.Param(1) != "chathistory" || start.Param(2) != "#past" {
		t.Fatalf("replay starts with %q", start.String())
	}
	id := strings.TrimPrefix(start.Param(0), "+")
	for _, want := range []string{"first", "second"} {
		m := modern.read()
		if m.Param(1) != want || tagOf(m, "batch") != id || tagOf(m, "time") == "" || tagOf(m, "msgid") == "" {
			t.Fatalf("replayed %q", m.String())
		}
	}
	if end := modern.read(); end.Command != "BATCH" || end.Param(0) != "-"+id {
		t.Fatalf("replay ends with %q", end.String())
	}

	plain := connect(t, addr, "plain")
	plain.send("JOIN #past")
	plain.expect(protocol.RPL_ENDOFNAMES)
	for _, want := range []string{"first", "second"} {
		if m := plain.read(); m.Command != "PRIVMSG" || m.Param(1) != want || len(m.Tags) != 0 {
			t.Fatalf("plain replay %q", m.String())
		}
	}
}

// A client that negotiated draft/chathistory asks for history itself; the
// join replays none, so its CHATHISTORY LATEST gets the only batch.
func TestJoinReplaySkippedForChathistoryClients(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "talker")
	a.join("#past")
	a.send("PRIVMSG #past :first", "PRIVMSG #past :second")
	a.sync()

	c := connectCaps(t, addr, "kiwi", "batch", "server-time", "message-tags", "draft/chathistory")
	c.send("JOIN #past")
	c.expect(protocol.RPL_ENDOFNAMES)
	c.send("CHATHISTORY LATEST #past * 50")
	start := c.read()
	if start.Command != "BATCH" || start.Param(1) != "chathistory" {
		t.Fatalf("after the join: %q, want the answer to CHATHISTORY", start.String())
	}
	var got []string
	for m := c.read(); m.Command != "BATCH"; m = c.read() {
		got = append(got, m.Param(1))
	}
	if !slices.Equal(got, []string{"first", "second"}) {
		t.Errorf("CHATHISTORY LATEST gave %q", got)
	}
	c.send("PING done")
	if m := c.read(); m.Command != "PONG" {
		t.Errorf("after the history: %q, want PONG (no second batch)", m.String())
	}
}

func TestChathistory(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) { c.History.Size = 10; c.History.Replay = 0 })
	a := connectCaps(t, addr, "historian", "batch", "server-time", "message-tags", "draft/chathistory")
	a.join("#log")
	b := connect(t, addr, "writer")
	b.join("#log")
	for i := 1; i <= 15; i++ { // more than the ring holds
		b.send(fmt.Sprintf("PRIVMSG #log :m%d", i))
	}
	for range 15 {
		a.expect("PRIVMSG")
	}
	query := func(line string) []protocol.Message {
		t.Helper()
		a.send(line)
		start, _ := a.expect("BATCH")
		var got []protocol.Message
		for {
			m := a.read()
			if m.Command == "BATCH" && m.Param(0) == "-"+strings.TrimPrefix(start.Param(0), "+") {
				return got
			}
			got = append(got, m)
		}
	}
	texts := func(ms []protocol.Message) string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Param(1))
		}
		return strings.Join(out, " ")
	}
	latest := query("CHATHISTORY LATEST #log * 3")
	if got := texts(latest); got != "m13 m14 m15" {
		t.Fatalf("LATEST: %s", got)
	}
	if got := texts(query("CHATHISTORY LATEST #log * 50")); got != "m6 m7 m8 m9 m10 m11 m12 m13 m14 m15" {
		t.Fatalf("LATEST beyond the ring: %s", got)
	}
	ref := "msgid=" + tagOf(latest[0], "msgid") // m13
	if got := texts(query("CHATHISTORY BEFORE #log " + ref + " 2")); got != "m11 m12" {
		t.Fatalf("BEFORE: %s", got)
	}
	if got := texts(query("CHATHISTORY AFTER #log " + ref + " 5")); got != "m14 m15" {
		t.Fatalf("AFTER: %s", got)
	}
	if got := texts(query("CHATHISTORY AROUND #log " + ref + " 3")); got != "m12 m13 m14" {
		t.Fatalf("AROUND: %s", got)
	}
	older := "msgid=" + tagOf(query("CHATHISTORY LATEST #log * 10")[0], "msgid") // m6
	if got := texts(query("CHATHISTORY BETWEEN #log " + older + " " + ref + " 100")); got != "m7 m8 m9 m10 m11 m12" {
		t.Fatalf("BETWEEN: %s", got)
	}
	if got := texts(query("CHATHISTORY BETWEEN #log " + ref + " " + older + " 2")); got != "m11 m12" {
		t.Fatalf("BETWEEN backwards: %s", got)
	}
	hourAgo := "timestamp=" + time.Now().Add(-time.Hour).UTC().Format(rooms.TimeFormat)
	if got := texts(query("CHATHISTORY LATEST #log " + hourAgo + " 2")); got != "m14 m15" {
		t.Fatalf("LATEST after a timestamp: %s", got)
	}
	soon := "timestamp=" + time.Now().Add(time.Hour).UTC().Format(rooms.TimeFormat)
	if got := texts(query("CHATHISTORY BEFORE #log " + soon + " 1")); got != "m15" {
		t.Fatalf("BEFORE a timestamp: %s", got)
	}
	if got := query("CHATHISTORY AFTER #log " + soon + " 5"); len(got) != 0 {
		t.Fatalf("AFTER the future: %v", got)
	}
	if got := query("CHATHISTORY LATEST #log * 1000"); len(got) != 10 {
		t.Fatalf("limit: %d", len(got))
	}
	targets := query("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10")
	if len(targets) != 1 || targets[0].Param(1) != "#log" {
		t.Fatalf("TARGETS: %v", targets)
	}
	a.send("CHATHISTORY LATEST #elsewhere * 10")
	a.expectFail("CHATHISTORY", "INVALID_TARGET")
	a.send("CHATHISTORY BEFORE #log bogus 10")
	a.expectFail("CHATHISTORY", "INVALID_PARAMS")
}

func TestTagmsg(t *testing.T) {
	_, addr := testServer(t)
	a := connectCaps(t, addr, "tagger", "message-tags")
	b := connectCaps(t, addr, "watcher", "message-tags")
	plain := connect(t, addr, "plain")
	for _, c := range []*client{a, b, plain} {
		c.join("#t")
	}
	a.send("@+typing=active TAGMSG #t")
	tm, _ := b.expect("TAGMSG")
	if tagOf(tm, "+typing") != "active" {
		t.Fatalf("%q", tm.String())
	}
	if got := plain.sync(); len(got) != 0 {
		t.Fatalf("a client without message-tags got %v", got)
	}
}

func TestExtendedJoinAccountTagAndNotifies(t *testing.T) {
	_, addr := testServer(t)
	watcher := connectCaps(t, addr, "watcher", "extended-join", "account-tag", "away-notify", "account-notify", "setname")
	watcher.join("#n")
	u := connect(t, addr, "user1")
	u.send("REGISTER user1 long-enough-pw")
	u.expect(protocol.RPL_LOGGEDIN)
	u.join("#n")
	join, _ := watcher.expect("JOIN")
	if join.Param(1) != "user1" || join.Param(2) != "Test User user1" {
		t.Fatalf("extended join %q", join.String())
	}
	u.send("PRIVMSG #n :tagged")
	msg, _ := watcher.expect("PRIVMSG")
	if tagOf(msg, "account") != "user1" {
		t.Fatalf("account-tag %q", msg.String())
	}
	u.send("AWAY :lunch")
	away, _ := watcher.expect("AWAY")
	if away.Param(0) != "lunch" {
		t.Fatalf("%q", away.String())
	}
	u.send("SETNAME :New Name")
	setname, _ := watcher.expect("SETNAME")
	if setname.Param(0) != "New Name" {
		t.Fatalf("%q", setname.String())
	}
	u.send("LOGOUT")
	acct, _ := watcher.expect("ACCOUNT")
	if acct.Param(0) != "*" {
		t.Fatalf("%q", acct.String())
	}
}

// A new holder of a nick must not read the previous holder's private
// messages: conversations belong to accounts or connections, not nicks.
func TestPrivateHistoryFollowsPeopleNotNicks(t *testing.T) {
	_, addr := testServer(t)
	carol := connectCaps(t, addr, "carol", "batch", "draft/chathistory")
	alice := connect(t, addr, "alice")
	alice.send("PRIVMSG carol :a secret for carol")
	carol.expect("PRIVMSG")
	alice.send("QUIT")
	alice.expect("ERROR")

	impostor := connectCaps(t, addr, "alice", "batch", "draft/chathistory")
	impostor.send("CHATHISTORY LATEST carol * 10")
	start, _ := impostor.expect("BATCH")
	if end := impostor.read(); end.Command != "BATCH" || end.Param(0) != "-"+strings.TrimPrefix(start.Param(0), "+") {
		t.Fatalf("the new alice read %q", end.String())
	}
	carol.send("CHATHISTORY LATEST alice * 10")
	carol.expect("BATCH")
	if m := carol.read(); m.Param(1) != "a secret for carol" {
		t.Fatalf("carol's own history: %q", m.String())
	}
}

func TestIRCClientConventions(t *testing.T) {
	srv, addr := testServer(t)
	c := connectCaps(t, addr, "strict", "labeled-response")
	other := connect(t, addr, "coolNick")
	other.send("AWAY :out")
	other.expect(protocol.RPL_NOWAWAY)

	// IRC clients write the '#' themselves: a bare name is no room.
	c.send("JOIN #valid,inv@lid")
	c.expect(protocol.RPL_ENDOFNAMES)
	bad := c.expectNumeric(protocol.ERR_NOSUCHCHANNEL)
	if bad.Param(1) != "inv@lid" {
		t.Fatalf("%q", bad.String())
	}
	c.send("NAMES invalid")
	if end := c.expectNumeric(protocol.RPL_ENDOFNAMES); end.Param(1) != "invalid" {
		t.Fatalf("%q", end.String())
	}
	// WHO by mask, USERHOST.
	c.send("WHO coolni*")
	who := c.expectNumeric(protocol.RPL_WHOREPLY)
	if who.Param(5) != "coolNick" || who.Param(6) != "G" {
		t.Fatalf("%q", who.String())
	}
	if end := c.expectNumeric(protocol.RPL_ENDOFWHO); end.Param(1) != "coolni*" {
		t.Fatalf("%q", end.String())
	}
	c.send("USERHOST coolNick nobody")
	uh := c.expectNumeric(protocol.RPL_USERHOST)
	if uh.Param(1) != "coolNick=-~coolNick@"+cloakOf(srv, "127.0.0.1") {
		t.Fatalf("%q", uh.String())
	}
	// A labeled unknown command gets a labeled 421.
	c.send("@label=x NONEXISTENT_COMMAND")
	unk := c.expectNumeric(protocol.ERR_UNKNOWNCOMMAND)
	if tagOf(unk, "label") != "x" {
		t.Fatalf("%q", unk.String())
	}
	// An empty realname is not enough for USER.
	d := dial(t, addr)
	d.send("NICK foo", "USER u * * :")
	d.expectNumeric(protocol.ERR_NEEDMOREPARAMS)
}

func TestClientTagSectionLimit(t *testing.T) {
	_, addr := testServer(t)
	a := connectCaps(t, addr, "tagger", "message-tags", "echo-message")
	b := connectCaps(t, addr, "watcher", "message-tags")
	a.join("#t")
	b.join("#t")
	atLimit := "@foo=bar;+baz=" + strings.Repeat("a", 4081) + " TAGMSG #t" // tag section of exactly 4096 bytes
	a.send(atLimit)
	if m, _ := b.expect("TAGMSG"); len(tagOf(m, "+baz")) != 4081 {
		t.Fatalf("tags not relayed intact")
	}
	a.expect("TAGMSG")
	a.send("@foo=bar;+baz=" + strings.Repeat("a", 4082) + " TAGMSG #t")
	a.expectNumeric(protocol.ERR_INPUTTOOLONG)
	if got := b.sync(); len(got) != 0 {
		t.Fatalf("relayed: %v", got)
	}
}
