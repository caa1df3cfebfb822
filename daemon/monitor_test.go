package daemon

import (
	"slices"
	"strings"
	"testing"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/internal/natstest"
	"github.com/livechat/livechat/protocol"
)

// monList reads until code arrives and returns its list parameter.
func (c *client) monList(code string) string {
	c.t.Helper()
	m, _ := c.expect(code)
	return m.Param(1)
}

func TestMonitorOnlineOfflineAndRenames(t *testing.T) {
	srv, addr := testServer(t)
	alice := connect(t, addr, "alice")
	alice.send("MONITOR + bob,carol")
	if got := alice.monList(protocol.RPL_MONOFFLINE); got != "bob,carol" {
		t.Fatalf("MONITOR + bob,carol with both away: 731 %q, want bob,carol", got)
	}

	bob := connect(t, addr, "bob")
	cloak := cloakOf(srv, "127.0.0.1")
	if got := alice.monList(protocol.RPL_MONONLINE); got != "bob!~bob@"+cloak {
		t.Fatalf("bob connected: 730 %q, want bob!~bob@%s (the cloak, never the address)", got, cloak)
	}

	// A rename is the old nick going offline and the new one coming online.
	bob.send("NICK carol")
	if got := alice.monList(protocol.RPL_MONOFFLINE); got != "bob" {
		t.Errorf("bob renamed: 731 %q, want bob", got)
	}
	if got := alice.monList(protocol.RPL_MONONLINE); got != "carol!~bob@"+cloak {
		t.Errorf("bob renamed to carol: 730 %q, want carol!~bob@%s", got, cloak)
	}
	// A change of case is neither.
	bob.send("NICK Carol")
	bob.expect("NICK")
	bob.sync() // the rename is done, not only announced
	if got := alice.sync(); len(got) != 0 {
		t.Errorf("NICK Carol (case only) sent the watcher %v, want nothing", commands(got))
	}

	alice.send("MONITOR S")
	online, offline := alice.monList(protocol.RPL_MONONLINE), alice.monList(protocol.RPL_MONOFFLINE)
	if online != "Carol!~bob@"+cloak || offline != "bob" {
		t.Errorf("MONITOR S: 730 %q 731 %q, want Carol online and bob offline", online, offline)
	}
	alice.send("MONITOR L")
	if got := alice.monList(protocol.RPL_MONLIST); got != "bob,carol" {
		t.Errorf("MONITOR L: 732 %q, want bob,carol", got)
	}
	alice.expect(protocol.RPL_ENDOFMONLIST)

	alice.send("MONITOR - carol")
	alice.sync()
	bob.send("QUIT :bye")
	bob.expect("ERROR")
	if got := alice.sync(); len(got) != 0 {
		t.Errorf("carol left after MONITOR - carol: the watcher got %v, want nothing", commands(got))
	}

	// Going offline is said after the nick is free: a watcher waiting for
	// a nick can take it on the 731.
	alice.send("MONITOR + dave")
	alice.expect(protocol.RPL_MONOFFLINE)
	dave := connect(t, addr, "dave")
	alice.expect(protocol.RPL_MONONLINE)
	dave.send("QUIT")
	if got := alice.monList(protocol.RPL_MONOFFLINE); got != "dave" {
		t.Fatalf("dave quit: 731 %q, want dave", got)
	}
	alice.send("NICK dave")
	if m, _ := alice.expect("NICK"); m.Param(0) != "dave" {
		t.Errorf("NICK dave after its 731: %v", m)
	}
	alice.expect(protocol.RPL_MONONLINE) // she watches dave, herself now

	alice.send("MONITOR - *!*@*", "MONITOR L") // a mask removes nothing
	if got := alice.monList(protocol.RPL_MONLIST); got != "bob,dave" {
		t.Errorf("MONITOR L after MONITOR - with a mask: 732 %q, want bob,dave", got)
	}
	alice.expect(protocol.RPL_ENDOFMONLIST)
	alice.send("MONITOR C", "MONITOR L")
	if m := alice.read(); m.Command != protocol.RPL_ENDOFMONLIST {
		t.Errorf("MONITOR L after C: %v, want 733 alone", m)
	}

	// Targets are nicks: a mask is refused and never watched.
	alice.send("MONITOR + *!*@127.0.0.1")
	alice.expect(protocol.ERR_ERRONEUSNICKNAME)
	alice.send("MONITOR L")
	if m := alice.read(); m.Command != protocol.RPL_ENDOFMONLIST {
		t.Errorf("MONITOR L after a mask: %v, want an empty list", m)
	}
}

// The limit is in 005, a list never grows past it, and a session's list
// goes with it.
func TestMonitorLimitAndCleanup(t *testing.T) {
	srv, addr := testServer(t, func(c *configs.Config, _ *Options) { c.Limits.Monitor = 2 })
	c := dial(t, addr)
	c.nick = "alice"
	c.send("NICK alice", "USER alice 0 * :alice")
	_, lines := c.expect(protocol.RPL_ENDOFMOTD)
	var isupport []string
	for _, m := range lines {
		if m.Command == protocol.RPL_ISUPPORT {
			isupport = append(isupport, m.Params[1:len(m.Params)-1]...)
		}
	}
	for _, want := range []string{"MONITOR=2", "BOT=B"} {
		if !slices.Contains(isupport, want) {
			t.Errorf("005 tokens %v lack %s", isupport, want)
		}
	}

	c.send("MONITOR + a,b,c,d")
	if got := c.monList(protocol.RPL_MONOFFLINE); got != "a,b" {
		t.Errorf("MONITOR + a,b,c,d with a limit of 2: 731 %q, want a,b", got)
	}
	full, _ := c.expect(protocol.ERR_MONLISTFULL)
	if full.Param(1) != "2" || full.Param(2) != "c,d" {
		t.Errorf("734 %v, want limit 2 and c,d", full)
	}
	c.send("MONITOR + b")
	if got := c.monList(protocol.RPL_MONOFFLINE); got != "b" {
		t.Errorf("MONITOR + b, already watched, at the limit: 731 %q, want b", got)
	}

	// The session's teardown drops its list before the client reads its
	// ERROR (see serve).
	c.send("QUIT")
	c.expect("ERROR")
	srv.monitors.mu.Lock()
	left := len(srv.monitors.lists) + len(srv.monitors.watchers)
	srv.monitors.mu.Unlock()
	if left != 0 {
		t.Errorf("the monitor registry still holds %d entries after the watcher left", left)
	}
}

// extended-monitor: a watcher hears of away, account and real name
// changes as a room peer would, once even when it is one.
func TestExtendedMonitor(t *testing.T) {
	_, addr := testServer(t)
	ext := connectCaps(t, addr, "ext", "extended-monitor", "away-notify", "setname", "account-notify")
	plain := connectCaps(t, addr, "plain", "away-notify", "setname")
	both := connectCaps(t, addr, "both", "extended-monitor", "away-notify")
	bob := connectCaps(t, addr, "bob", "setname")
	for _, w := range []*client{ext, plain, both} {
		w.send("MONITOR + bob")
		w.expect(protocol.RPL_MONONLINE)
	}
	both.join("#room")
	bob.join("#room")
	both.sync()

	bob.send("AWAY :lunch")
	bob.expect(protocol.RPL_NOWAWAY)
	if m, _ := ext.expect("AWAY"); !strings.HasPrefix(m.Source, "bob!") || m.Param(0) != "lunch" {
		t.Errorf("extended-monitor watcher: %v, want bob's AWAY :lunch", m)
	}
	bob.send("SETNAME :Robert")
	bob.expect("SETNAME")
	if m, _ := ext.expect("SETNAME"); m.Param(0) != "Robert" {
		t.Errorf("extended-monitor watcher: %v, want bob's SETNAME", m)
	}
	bob.send("REGISTER bob * sesame-sesame")
	bob.expect("REGISTER")
	if m, _ := ext.expect("ACCOUNT"); m.Param(0) != "bob" {
		t.Errorf("extended-monitor watcher: %v, want ACCOUNT bob", m)
	}
	if got := ext.sync(); len(got) != 0 {
		t.Errorf("extended-monitor watcher got more: %v", commands(got))
	}
	if got := plain.sync(); len(got) != 0 {
		t.Errorf("a watcher without extended-monitor got %v, want nothing", commands(got))
	}
	var aways int
	for _, m := range both.sync() {
		if m.Command == "AWAY" {
			aways++
		}
	}
	if aways != 1 {
		t.Errorf("a watcher sharing a room got %d AWAYs, want 1", aways)
	}
}

func TestWhowas(t *testing.T) {
	srv, addr := testServer(t, withOperator(t), func(c *configs.Config, _ *Options) { c.Limits.Whowas = 3 })
	alice := connect(t, addr, "alice")
	cloak := cloakOf(srv, "127.0.0.1")

	alice.send("WHOWAS bob")
	alice.expect(protocol.ERR_WASNOSUCHNICK)
	alice.expect(protocol.RPL_ENDOFWHOWAS)

	for _, user := range []string{"first", "second"} {
		bob := dial(t, addr)
		bob.send("NICK bob", "USER "+user+" 0 * :Bob "+user)
		bob.expectEndOfMOTD()
		bob.send("QUIT")
		bob.expect("ERROR")
	}
	whowas := func(c *client, query string) [][]string {
		c.t.Helper()
		c.send(query)
		end, lines := c.expect(protocol.RPL_ENDOFWHOWAS)
		var out [][]string
		for _, m := range append(lines, end) {
			switch m.Command {
			case protocol.RPL_WHOWASUSER, protocol.RPL_WHOISACTUALLY, protocol.RPL_WHOISSERVER, protocol.ERR_WASNOSUCHNICK, protocol.RPL_ENDOFWHOWAS:
				out = append(out, append([]string{m.Command}, m.Params[1:]...))
			}
		}
		return out
	}
	// Newest first, with the cloak. Each bob was recorded before it
	// read its ERROR (see serve).
	got := whowas(alice, "WHOWAS bob")
	if len(got) != 5 || got[0][0] != protocol.RPL_WHOWASUSER || got[0][2] != "~second" || got[0][3] != cloak || got[0][5] != "Bob second" ||
		got[1][0] != protocol.RPL_WHOISSERVER || got[1][2] != srv.Config().ServerName || got[2][2] != "~first" || got[4][0] != protocol.RPL_ENDOFWHOWAS {
		t.Fatalf("WHOWAS bob: %q, want second then first, cloaked, then 369", got)
	}
	if got := whowas(alice, "WHOWAS bob 1"); len(got) != 3 || got[0][2] != "~second" {
		t.Errorf("WHOWAS bob 1: %q, want only the newest", got)
	}

	// A rename leaves the old nick behind; an operator sees the address.
	carol := connect(t, addr, "carol")
	carol.send("NICK carla", "NICK carlos")
	carol.expect("NICK")
	carol.expect("NICK")
	boss := connect(t, addr, "boss")
	boss.send("OPER boss boss-pw")
	boss.expectNumeric(protocol.RPL_YOUREOPER)
	got = whowas(boss, "WHOWAS carol")
	if len(got) != 4 || got[0][3] != cloak || got[1][0] != protocol.RPL_WHOISACTUALLY || got[1][3] != "127.0.0.1" {
		t.Errorf("operator's WHOWAS carol: %q, want 314 with the cloak, 338 with the address", got)
	}

	// The ring holds limits.whowas entries: the first bob is gone.
	if got := whowas(alice, "WHOWAS bob"); len(got) != 3 || got[0][2] != "~second" {
		t.Errorf("WHOWAS bob with a ring of 3 after 4 entries: %q, want only the second bob", got)
	}
}

func TestWhowasRingResize(t *testing.T) {
	size := 3
	w := &whowasRing{size: func() int { return size }}
	s := &Session{srv: newTestServer(t)}
	for _, nick := range []string{"a", "b", "c", "d"} {
		w.record(s, nick)
	}
	nicks := func() string {
		var out []string
		for _, nick := range []string{"a", "b", "c", "d", "e"} {
			for range w.lookup(nick, 0) {
				out = append(out, nick)
			}
		}
		return strings.Join(out, "")
	}
	if got := nicks(); got != "bcd" {
		t.Fatalf("ring of 3 after a-d holds %q, want bcd", got)
	}
	size = 2 // a reload shrinks it: the newest stay
	w.record(s, "e")
	if got := nicks(); got != "de" {
		t.Errorf("shrunk to 2 after e: %q, want de", got)
	}
	size = 0
	w.record(s, "a")
	if got := nicks(); got != "" {
		t.Errorf("size 0 keeps %q, want nothing", got)
	}
}

func TestBotMode(t *testing.T) {
	_, addr := testServer(t)
	bot := connectCaps(t, addr, "beep", "echo-message", "message-tags")
	tagged := connectCaps(t, addr, "tagged", "message-tags")
	untagged := connect(t, addr, "untagged")

	bot.send("MODE beep +B")
	if m, _ := bot.expect("MODE"); m.Param(1) != "+B" {
		t.Fatalf("MODE beep +B echoed %v", m)
	}
	bot.send("MODE beep +B") // no change, no echo
	bot.send("MODE beep")
	if m := bot.read(); m.Command != protocol.RPL_UMODEIS || m.Param(1) != "+B" {
		t.Errorf("MODE beep: %v, want 221 +B alone", m)
	}

	for _, c := range []*client{bot, tagged, untagged} {
		c.join("#lab")
	}
	bot.sync()
	tagged.sync()
	untagged.sync()
	bot.send("PRIVMSG #lab :beep boop", "PRIVMSG tagged :hi")
	for _, c := range []*client{tagged, bot} {
		m, _ := c.expect("PRIVMSG")
		if _, ok := m.Tag("bot"); !ok {
			t.Errorf("%s got %q without the bot tag", c.nick, m.String())
		}
	}
	if m, _ := untagged.expect("PRIVMSG"); len(m.Tags) != 0 {
		t.Errorf("a client without message-tags got %q", m.String())
	}
	if m, _ := tagged.expect("PRIVMSG"); m.Param(0) != "tagged" {
		t.Errorf("private message: %v", m)
	} else if _, ok := m.Tag("bot"); !ok {
		t.Errorf("private message %q without the bot tag", m.String())
	}

	untagged.send("WHO #lab")
	for {
		m := untagged.read()
		if m.Command == protocol.RPL_ENDOFWHO {
			t.Fatal("WHO #lab did not list beep")
		}
		if m.Command == protocol.RPL_WHOREPLY && m.Param(5) == "beep" {
			if !strings.Contains(m.Param(6), "B") {
				t.Errorf("WHO flags of a bot: %q, want B", m.Param(6))
			}
			break
		}
	}
	untagged.expect(protocol.RPL_ENDOFWHO)
	untagged.send("WHOIS beep")
	if m, _ := untagged.expect(protocol.RPL_WHOISBOT); m.Param(1) != "beep" {
		t.Errorf("WHOIS beep: %v", m)
	}
	untagged.expect(protocol.RPL_ENDOFWHOIS)

	bot.send("MODE beep -B+i")
	if m, _ := bot.expect("MODE"); m.Param(1) != "-B+i" {
		t.Errorf("MODE beep -B+i echoed %v", m)
	}
	bot.send("MODE beep +x")
	bot.expect(protocol.ERR_UMODEUNKNOWNFLAG)
	bot.send("PRIVMSG tagged :human now")
	if m, _ := tagged.expect("PRIVMSG"); m.Param(1) != "human now" {
		t.Errorf("got %v", m)
	} else if _, ok := m.Tag("bot"); ok {
		t.Errorf("after -B: %q still carries the bot tag", m.String())
	}
}

// In a cluster, MONITOR sees the users of other nodes through their nick
// claims: as they come and go, and when asked.
func TestMonitorAcrossNodes(t *testing.T) {
	ns := natstest.RunServer(t, "")
	_, addrA := clusterNode(t, ns.ClientURL(), "a")
	_, addrB := clusterNode(t, ns.ClientURL(), "b")
	alice := connect(t, addrA, "alice")
	early := connect(t, addrB, "early")

	alice.send("MONITOR + bob,early")
	if on, off := alice.monList(protocol.RPL_MONONLINE), alice.monList(protocol.RPL_MONOFFLINE); on != "early" || off != "bob" {
		t.Fatalf("MONITOR + bob,early with early on node b: 730 %q 731 %q", on, off)
	}
	bob := connect(t, addrB, "bob")
	// early's claim may reach node a's watch after alice asked: a second
	// 730 for early is allowed ("at worst twice, never missed").
	got := alice.monList(protocol.RPL_MONONLINE)
	if got == "early" {
		got = alice.monList(protocol.RPL_MONONLINE)
	}
	if got != "bob" {
		t.Errorf("bob connected to node b: 730 %q, want bob", got)
	}
	bob.send("NICK robert")
	if got := alice.monList(protocol.RPL_MONOFFLINE); got != "bob" {
		t.Errorf("bob renamed on node b: 731 %q, want bob", got)
	}
	early.send("QUIT")
	if got := alice.monList(protocol.RPL_MONOFFLINE); got != "early" {
		t.Errorf("early left node b: 731 %q, want early", got)
	}

	// A user of the watcher's own node is told of once, not again when
	// its claim's release comes back from the bucket.
	alice.send("MONITOR + carol")
	alice.expect(protocol.RPL_MONOFFLINE)
	carol := connect(t, addrA, "carol")
	alice.expect(protocol.RPL_MONONLINE)
	carol.send("QUIT")
	alice.expect(protocol.RPL_MONOFFLINE)
	// A rename on node b is a claim and a release in the bucket, after
	// carol's: once alice has seen it, carol's release has passed too.
	alice.send("MONITOR + robert2")
	alice.expect(protocol.RPL_MONOFFLINE)
	bob.send("NICK robert2")
	if m, skipped := alice.expect(protocol.RPL_MONONLINE); m.Param(1) != "robert2" || len(skipped) != 0 {
		t.Errorf("after carol left: %v then 730 %q, want only robert2's 730", commands(skipped), m.Param(1))
	}
}
