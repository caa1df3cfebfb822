package daemon

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/daemon/roomstore"
	"github.com/livechat/livechat/protocol"
)

// expectNumeric reads until code arrives.
func (c *client) expectNumeric(code string) protocol.Message {
	c.t.Helper()
	m, _ := c.expect(code)
	return m
}

func TestOpsTopicLockAndKick(t *testing.T) {
	_, addr := testServer(t)
	op := connect(t, addr, "founder")
	user := connect(t, addr, "visitor")
	op.join("#mod")
	user.send("JOIN #mod")
	names := user.expectNumeric(protocol.RPL_NAMREPLY)
	if !strings.Contains(names.Param(3), "@founder") || strings.Contains(names.Param(3), "@visitor") {
		t.Fatalf("first joiner is op, second is not: %q", names.String())
	}
	user.expectNumeric(protocol.RPL_ENDOFNAMES)

	user.send("TOPIC #mod :mine now")
	user.expectNumeric(protocol.ERR_CHANOPRIVSNEEDED)
	user.send("KICK #mod founder")
	user.expectNumeric(protocol.ERR_CHANOPRIVSNEEDED)
	op.send("TOPIC #mod :house rules")
	topic, _ := user.expect("TOPIC")
	if topic.Param(1) != "house rules" {
		t.Fatalf("%q", topic.String())
	}
	third := connect(t, addr, "third")
	third.join("#mod")
	op.send("KICK #mod visitor :bye now")
	for _, c := range []*client{op, user, third} {
		k, _ := c.expect("KICK")
		if k.Param(1) != "visitor" || k.Param(2) != "bye now" {
			t.Fatalf("%s saw %q", c.nick, k.String())
		}
	}
	// The kicked user is out: speaking is refused and NAMES lacks them.
	user.send("PRIVMSG #mod :still here?")
	user.expectNumeric(protocol.ERR_CANNOTSENDTOCHAN)
	third.send("NAMES #mod")
	n := third.expectNumeric(protocol.RPL_NAMREPLY)
	if strings.Contains(n.Param(3), "visitor") {
		t.Fatalf("kicked member still listed: %q", n.String())
	}
}

func TestRoomModes(t *testing.T) {
	_, addr := testServer(t)
	op := connect(t, addr, "boss")
	op.join("#club")

	// +m: only voiced members and operators speak.
	quiet := connect(t, addr, "quiet")
	quiet.join("#club")
	op.send("MODE #club +m")
	op.expect("MODE")
	quiet.send("PRIVMSG #club :can I talk?")
	quiet.expectNumeric(protocol.ERR_CANNOTSENDTOCHAN)
	op.send("VOICE #club quiet")
	mode, _ := quiet.expect("MODE")
	if mode.Param(1) != "+v" || mode.Param(2) != "quiet" {
		t.Fatalf("%q", mode.String())
	}
	quiet.send("PRIVMSG #club :now I can")
	if m, _ := op.expect("PRIVMSG"); m.Param(1) != "now I can" {
		t.Fatalf("%q", m.String())
	}

	// +i: only invited users join.
	op.send("MODE #club +i")
	op.expect("MODE")
	guest := connect(t, addr, "guest1")
	guest.send("JOIN #club")
	guest.expectNumeric(protocol.ERR_INVITEONLYCHAN)
	op.send("INVITE guest1 #club")
	op.expectNumeric(protocol.RPL_INVITING)
	inv, _ := guest.expect("INVITE")
	if inv.Param(1) != "#club" {
		t.Fatalf("%q", inv.String())
	}
	guest.join("#club")
	op.send("MODE #club -i")
	op.expect("MODE")

	// +k: the key is needed.
	op.send("MODE #club +k sesame")
	op.expect("MODE")
	keyless := connect(t, addr, "keyless")
	keyless.send("JOIN #club wrong")
	keyless.expectNumeric(protocol.ERR_BADCHANNELKEY)
	keyless.send("JOIN #club sesame")
	keyless.expectNumeric(protocol.RPL_ENDOFNAMES)
	op.send("MODE #club -k *")
	op.expect("MODE")

	// +l: full at the limit.
	op.send("MODE #club +l 4")
	op.expect("MODE")
	late := connect(t, addr, "late")
	late.send("JOIN #club")
	late.expectNumeric(protocol.ERR_CHANNELISFULL)

	// Queries.
	op.send("MODE #club")
	is := op.expectNumeric(protocol.RPL_CHANNELMODEIS)
	if is.Param(2) != "+lmnt" || is.Param(3) != "4" {
		t.Fatalf("324 %q", is.String())
	}
	op.send("MODE #club +x")
	op.expectNumeric(protocol.ERR_UNKNOWNMODE)
}

func TestBansAndExceptions(t *testing.T) {
	srv, addr := testServer(t)
	cloaked := "*!*@" + cloakOf(srv, "127.0.0.1")
	op := connect(t, addr, "keeper")
	op.join("#gate")
	troll := connect(t, addr, "troll")
	troll.join("#gate")

	op.send("BAN #gate troll")
	op.expect("MODE")
	ban, _ := troll.expect("MODE")
	if ban.Param(1) != "+b" || ban.Param(2) != cloaked {
		t.Fatalf("BAN by nick set %q", ban.String())
	}
	troll.send("PRIVMSG #gate :you can't stop me")
	troll.expectNumeric(protocol.ERR_CANNOTSENDTOCHAN)
	troll.send("NICK troll2")
	troll.expectNumeric(protocol.ERR_BANNICKCHANGE)
	troll.send("PART #gate")
	troll.expect("PART")
	troll.send("JOIN #gate")
	troll.expectNumeric(protocol.ERR_BANNEDFROMCHAN)

	op.send("MODE #gate +e troll!*@*")
	op.expect("MODE")
	troll.join("#gate")
	op.send("MODE #gate b")
	list := op.expectNumeric(protocol.RPL_BANLIST)
	if list.Param(2) != cloaked || list.Param(3) != "keeper" {
		t.Fatalf("367 %q", list.String())
	}
	op.expectNumeric(protocol.RPL_ENDOFBANLIST)
	op.send("UNBAN #gate "+cloaked, "MODE #gate -e troll!*@*")
	op.expect("MODE")
	op.expect("MODE")

	// An account ban follows the account whatever the nick.
	owner := connect(t, addr, "acct")
	owner.send("REGISTER spammer long-enough-pw")
	owner.expect(protocol.RPL_LOGGEDIN)
	op.send("MODE #gate +b $a:spammer")
	op.expect("MODE")
	owner.send("JOIN #gate")
	owner.expectNumeric(protocol.ERR_BANNEDFROMCHAN)
}

func TestClaimedRoomSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	start := func() (*Server, string) {
		store, err := roomstore.Open(filepath.Join(dir, "rooms.db"))
		if err != nil {
			t.Fatal(err)
		}
		accts, err := accounts.OpenFileStore(filepath.Join(dir, "accounts.db"))
		if err != nil {
			t.Fatal(err)
		}
		return testServer(t, func(_ *configs.Config, o *Options) { o.Rooms, o.Accounts = store, accts })
	}
	srv, addr := start()
	a := connect(t, addr, "founder")
	a.send("ROOM CLAIM #home")
	a.expectNumeric(protocol.ERR_NOSUCHCHANNEL)
	a.join("#home")
	a.send("ROOM CLAIM #home")
	a.expectNumeric(protocol.ERR_UNKNOWNERROR) // must log in first
	a.send("REGISTER founder long-enough-pw")
	a.expect(protocol.RPL_LOGGEDIN)
	a.send("ROOM CLAIM #home")
	a.expect("NOTICE")
	a.send("TOPIC #home :kept forever", "MODE #home +m", "MODE #home +b badguy!*@*")
	a.expect("TOPIC")
	a.expect("MODE")
	a.expect("MODE")
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	_, addr = start()
	early := connect(t, addr, "early")
	early.send("JOIN #home")
	topic := early.expectNumeric(protocol.RPL_TOPIC)
	if topic.Param(2) != "kept forever" {
		t.Fatalf("topic after restart: %q", topic.String())
	}
	names := early.expectNumeric(protocol.RPL_NAMREPLY)
	if names.Param(3) != "early" {
		t.Fatalf("a claimed room makes no stranger op: %q", names.String())
	}
	early.send("MODE #home")
	if is := early.expectNumeric(protocol.RPL_CHANNELMODEIS); is.Param(2) != "+mnt" {
		t.Fatalf("modes after restart: %q", is.String())
	}
	early.send("MODE #home b")
	if ban := early.expectNumeric(protocol.RPL_BANLIST); ban.Param(2) != "badguy!*@*" {
		t.Fatalf("bans after restart: %q", ban.String())
	}
	owner := dial(t, addr)
	owner.send("LOGIN founder long-enough-pw")
	owner.expect(protocol.RPL_LOGGEDIN)
	owner.send("JOIN #home")
	n := owner.expectNumeric(protocol.RPL_NAMREPLY)
	if !strings.Contains(n.Param(3), "@founder") {
		t.Fatalf("owner is op on join: %q", n.String())
	}
	owner.expectNumeric(protocol.RPL_ENDOFNAMES)
	owner.send("ROOM DROP #home")
	owner.expectPlain() // a person in a terminal reads the notice as a sentence
}

func TestSecretRoom(t *testing.T) {
	_, addr := testServer(t)
	op := connect(t, addr, "spy")
	op.join("#hideout")
	op.send("MODE #hideout +s")
	op.expect("MODE")
	op.send("NAMES #hideout")
	if n := op.expectNumeric(protocol.RPL_NAMREPLY); n.Param(1) != "@" {
		t.Fatalf("secret rooms use the @ symbol: %q", n.String())
	}
	outsider := connect(t, addr, "outsider")
	outsider.send("LIST")
	outsider.expectNumeric(protocol.RPL_LISTSTART)
	if m := outsider.read(); m.Command != protocol.RPL_LISTEND {
		t.Fatalf("a secret room was listed to a non-member: %q", m.String())
	}
	outsider.send("WHOIS spy")
	_, whois := outsider.expect(protocol.RPL_ENDOFWHOIS)
	for _, m := range whois {
		if m.Command == protocol.RPL_WHOISCHANNELS {
			t.Fatalf("WHOIS showed a secret room to a non-member: %q", m.String())
		}
	}
	outsider.send("MODE #hideout +o nobody-here")
	outsider.expectNumeric(protocol.ERR_NOSUCHNICK)
}

// STATUSMSG: "@#room" reaches the operators only, "+#room" the voiced
// and the operators; neither is kept in history.
func TestStatusMsg(t *testing.T) {
	_, addr := testServer(t)
	op := connectCaps(t, addr, "op", "echo-message")
	op.join("#s")
	voiced, plain := connect(t, addr, "voiced"), connect(t, addr, "plain")
	voiced.join("#s")
	plain.join("#s")
	op.send("MODE #s +v voiced")
	voiced.expect("MODE")
	plain.expect("MODE")
	plain.send("PRIVMSG @#s :to the ops", "PRIVMSG +#s :to the voiced", "PRIVMSG #s :to all")
	if m, _ := op.expect("PRIVMSG"); m.Param(0) != "@#s" || m.Param(1) != "to the ops" {
		t.Fatalf("op got %v", m)
	}
	if m, _ := op.expect("PRIVMSG"); m.Param(0) != "+#s" {
		t.Fatalf("op got %v", m)
	}
	if m, _ := voiced.expect("PRIVMSG"); m.Param(0) != "+#s" || m.Param(1) != "to the voiced" {
		t.Fatalf("voiced got %v", m)
	}
	if m, _ := voiced.expect("PRIVMSG"); m.Param(0) != "#s" {
		t.Fatalf("voiced got %v", m)
	}
	op.send("PRIVMSG @#s :echoed")
	if m, _ := op.expect("PRIVMSG"); m.Param(1) != "to all" {
		t.Fatalf("op got %v", m)
	}
	if m, _ := op.expect("PRIVMSG"); m.Param(0) != "@#s" || m.Param(1) != "echoed" {
		t.Fatalf("op's echo: %v", m)
	}
}
