package daemon

import (
	"fmt"
	"strings"
	"testing"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
)

// saslDevice connects an IRC client that logs in to account with SASL
// PLAIN before registering, as irssi, WeeChat and The Lounge do, with
// caps, and reads up to the end of the MOTD.
func saslDevice(t *testing.T, addr, nick, account string, caps ...string) *client {
	t.Helper()
	c := dial(t, addr)
	c.nick = nick
	c.send("CAP LS 302", "NICK "+nick, "USER "+nick+" 0 * :"+nick)
	c.capLS()
	c.send("CAP REQ :" + strings.Join(append([]string{"sasl"}, caps...), " "))
	if ack, _ := c.expect("CAP"); ack.Param(1) != "ACK" {
		t.Fatalf("CAP REQ: %q", ack.String())
	}
	c.send("AUTHENTICATE PLAIN")
	c.expect("AUTHENTICATE")
	c.send("AUTHENTICATE " + saslPlain(account, testPassword))
	c.expect(protocol.RPL_SASLSUCCESS)
	c.send("CAP END")
	c.expectEndOfMOTD()
	return c
}

// One account on a laptop and a phone: the phone gets the laptop's nick and
// rooms, each device sees what the other sends, peers see one user, and
// the user leaves only when the last device goes or one of them PARTs.
func TestMulticlientDevicesShareNickAndRooms(t *testing.T) {
	_, addr := testServer(t)
	laptop := accountClient(t, addr, "alice", "alice", true, "echo-message")
	laptop.join("#room")
	bob := connect(t, addr, "bob")
	bob.join("#room")
	laptop.sync()

	phone := saslDevice(t, addr, "alicephone", "alice")
	m, _ := phone.expect("JOIN")
	if m.Source != "alice" && !strings.HasPrefix(m.Source, "alice!") || m.Param(0) != "#room" {
		t.Fatalf("phone: want alice's JOIN #room, got %q", m.String())
	}
	names, _ := phone.expect(protocol.RPL_NAMREPLY)
	if got := names.Param(3); strings.Count(got, "alice") != 1 || !strings.Contains(got, "bob") {
		t.Fatalf("phone's NAMES %q: want alice once and bob", got)
	}
	phone.expect(protocol.RPL_ENDOFNAMES)
	for _, l := range bob.sync() {
		if l.Command == "JOIN" || l.Command == "QUIT" {
			t.Fatalf("bob heard of the second device: %q", l.String())
		}
	}

	bob.send("PRIVMSG #room :hello alice")
	for _, c := range []*client{laptop, phone} {
		if m, _ := c.expect("PRIVMSG"); m.Param(1) != "hello alice" {
			t.Fatalf("%s: %q", c.nick, m.String())
		}
	}
	phone.send("PRIVMSG #room :from my phone")
	for _, c := range []*client{laptop, bob} {
		if m, _ := c.expect("PRIVMSG"); m.Param(1) != "from my phone" || !strings.HasPrefix(m.Source, "alice!") {
			t.Fatalf("%s: %q", c.nick, m.String())
		}
	}
	// Private messages reach every device, and one device's reply shows
	// on the other as its own message would.
	bob.send("PRIVMSG alice :psst")
	for _, c := range []*client{laptop, phone} {
		if m, _ := c.expect("PRIVMSG"); m.Param(0) != "alice" || m.Param(1) != "psst" {
			t.Fatalf("%s: %q", c.nick, m.String())
		}
	}
	laptop.send("PRIVMSG bob :hi from the laptop")
	if m, _ := phone.expect("PRIVMSG"); m.Param(0) != "bob" || m.Param(1) != "hi from the laptop" || !strings.HasPrefix(m.Source, "alice!") {
		t.Fatalf("phone: want the laptop's message to bob, got %q", m.String())
	}
	bob.expect("PRIVMSG")

	// A nick change from one device renames the user everywhere, once.
	phone.send("NICK alicia")
	for _, c := range []*client{laptop, phone, bob} {
		if m, _ := c.expect("NICK"); m.Param(0) != "alicia" {
			t.Fatalf("%s: %q", c.nick, m.String())
		}
	}
	bob.send("WHOIS alicia")
	bob.expect(protocol.RPL_WHOISUSER)

	// The laptop goes: nobody sees a QUIT, the nick stays with the phone.
	laptop.send("QUIT :closing the lid")
	laptop.expect("ERROR")
	bob.send("PRIVMSG alicia :still there?")
	if m, _ := phone.expect("PRIVMSG"); m.Param(1) != "still there?" {
		t.Fatalf("phone: %q", m.String())
	}
	for _, l := range bob.sync() {
		if l.Command == "QUIT" {
			t.Fatalf("bob saw a device leave: %q", l.String())
		}
	}
	other := connect(t, addr, "mallory")
	other.send("NICK alicia")
	if m, _ := other.expect(protocol.ERR_NICKNAMEINUSE); m.Param(1) != "alicia" {
		t.Fatalf("the nick was freed with a device still on: %q", m.String())
	}

	// The last device PARTs, then quits: bob sees both, once.
	phone.send("PART #room :bye")
	if m, _ := bob.expect("PART"); !strings.HasPrefix(m.Source, "alicia!") {
		t.Fatalf("bob: %q", m.String())
	}
	phone.send("QUIT")
	phone.expect("ERROR")
	other.sync()
	other.send("NICK alicia")
	if m, _ := other.expect("NICK"); m.Param(0) != "alicia" {
		t.Fatalf("nick not free after the last device left: %q", m.String())
	}
}

// A PART from one device takes the user out of the room on all of them,
// a JOIN from one brings all of them in, and LOGOUT of one device is
// refused with a reason.
func TestMulticlientJoinAndPartFollowTheUser(t *testing.T) {
	_, addr := testServer(t)
	laptop := accountClient(t, addr, "carol", "carol", true)
	phone := saslDevice(t, addr, "carolphone", "carol")
	phone.sync()
	laptop.sync()

	laptop.send("JOIN #new")
	laptop.expect(protocol.RPL_ENDOFNAMES)
	if m, _ := phone.expect("JOIN"); m.Param(0) != "#new" {
		t.Fatalf("phone: %q", m.String())
	}
	phone.expect(protocol.RPL_ENDOFNAMES)
	phone.send("PART #new")
	for _, c := range []*client{phone, laptop} {
		if m, _ := c.expect("PART"); m.Param(0) != "#new" {
			t.Fatalf("%s: %q", c.nick, m.String())
		}
	}
	laptop.send("NAMES #new")
	m, skipped := laptop.expect(protocol.RPL_ENDOFNAMES)
	if m.Param(1) != "#new" {
		t.Fatalf("laptop: %q", m.String())
	}
	for _, l := range skipped {
		if l.Command == protocol.RPL_NAMREPLY {
			t.Fatalf("laptop still sees #new's members after the PART: %q", l.String())
		}
	}
	phone.send("LOGOUT")
	if m, _ := phone.expect("FAIL"); m.Param(1) != "SHARED_NICK" {
		t.Fatalf("LOGOUT of one device: %q", m.String())
	}
}

// With NickServ SET MULTICLIENT OFF, the account's second connection
// keeps a nick of its own, as with accounts.multiclient false.
func TestMulticlientOffForAnAccount(t *testing.T) {
	_, addr := testServer(t)
	first := accountClient(t, addr, "dave", "dave", true)
	first.send("PRIVMSG NickServ :SET MULTICLIENT OFF")
	if m, _ := first.expect("NOTICE"); !strings.Contains(m.Param(1), "Multiclient for dave is now off") {
		t.Fatalf("SET MULTICLIENT: %q", m.String())
	}
	second := saslDevice(t, addr, "davephone", "dave")
	second.send("JOIN #x")
	second.expect(protocol.RPL_ENDOFNAMES)
	if got := first.sync(); len(got) != 0 {
		t.Fatalf("the first connection got %q from a connection kept apart", got)
	}
	second.send("WHOIS davephone")
	if m, _ := second.expect(protocol.RPL_WHOISUSER); m.Param(1) != "davephone" {
		t.Fatalf("second connection's nick: %q", m.String())
	}
}

// A device joining while the user's only other connection quits either
// joins it or becomes the user on its own; either way exactly one user
// holds the nick afterwards, and a stranger cannot take it.
func TestMulticlientJoinRacesLastDeviceLeaving(t *testing.T) {
	_, addr := testServer(t)
	accountClient(t, addr, "erin", "erin", true).send("QUIT")
	for i := range 20 {
		first := saslDevice(t, addr, "erin1", "erin")
		first.join("#r")
		done := make(chan *client)
		go func() {
			first.send("QUIT")
			done <- nil
		}()
		second := saslDevice(t, addr, "erinphone", "erin")
		<-done
		second.send("WHOIS erin")
		if m, _ := second.expect(protocol.RPL_WHOISUSER); m.Param(1) != "erin" {
			t.Fatalf("round %d: erin is not online: %q", i, m.String())
		}
		stranger := connect(t, addr, "stranger")
		stranger.send("NICK erin")
		got := stranger.sync()
		for _, l := range got {
			if l.Command == "NICK" {
				t.Fatalf("round %d: a stranger took erin while a device of erin is connected", i)
			}
		}
		stranger.send("QUIT")
		stranger.expect("ERROR")
		second.send("QUIT")
		second.expect("ERROR")
	}
}

// A message to one's own nick arrives as a message (and once more as the
// echo for echo-message), with or without other devices.
func TestMessageToOwnNick(t *testing.T) {
	_, addr := testServer(t)
	c := connectCaps(t, addr, "narcissus", "echo-message")
	c.send("PRIVMSG narcissus :note to self")
	for i := range 2 {
		if m, _ := c.expect("PRIVMSG"); m.Param(1) != "note to self" {
			t.Fatalf("copy %d: %q", i, m.String())
		}
	}
}

// A client that logs in by SASL and asks for the nick its other
// connection holds (as every client configured with the account's nick
// does) joins that connection instead of getting 433.
func TestMulticlientDeviceAsksForItsNick(t *testing.T) {
	_, addr := testServer(t)
	first := accountClient(t, addr, "gina", "gina", true)
	first.join("#g")
	second := dial(t, addr)
	second.send("CAP LS 302", "CAP REQ :sasl", "AUTHENTICATE PLAIN")
	second.expect("AUTHENTICATE")
	second.send("AUTHENTICATE " + saslPlain("gina", testPassword))
	second.expect(protocol.RPL_SASLSUCCESS)
	second.send("NICK gina", "USER gina 0 * :gina", "CAP END") // after SASL, as irctest's clients do
	if m, _ := second.expect(protocol.RPL_WELCOME); m.Param(0) != "gina" {
		t.Fatalf("second: %q", m.String())
	}
	if m, _ := second.expect("JOIN"); m.Param(0) != "#g" || !strings.HasPrefix(m.Source, "gina!") {
		t.Fatalf("second: %q", m.String())
	}
}

// The web page beside an IRC client: a browser that logs in joins the
// IRC client's user, gets its rooms, and the two see each other's lines;
// closing the tab leaves the IRC client in the room.
func TestMulticlientBrowserBesideIRCClient(t *testing.T) {
	srv, addr := testServer(t)
	url := wsListen(t, srv)
	irc := accountClient(t, addr, "hana", "hana", true, "echo-message")
	irc.join("#room")
	bob := connect(t, addr, "bob")
	bob.join("#room")
	irc.sync()

	web := dialWS(t, url)
	web.send("LOGIN hana " + testPassword)
	if m, _ := web.expect("JOIN"); m.Param(0) != "#room" || !strings.HasPrefix(m.Source, "hana!") {
		t.Fatalf("browser: %q", m.String())
	}
	web.nick = "hana"
	web.expect(protocol.RPL_ENDOFNAMES)

	web.send("PRIVMSG #room :typed in the browser")
	for _, c := range []*client{irc, bob} {
		if m, _ := c.expect("PRIVMSG"); m.Param(1) != "typed in the browser" || !strings.HasPrefix(m.Source, "hana!") {
			t.Fatalf("%s: %q", c.nick, m.String())
		}
	}
	if m, _ := web.expect("PRIVMSG"); m.Param(1) != "typed in the browser" {
		t.Fatalf("browser's own line (a person's session echoes): %q", m.String())
	}
	irc.send("PRIVMSG #room :typed in irssi")
	if m, _ := web.expect("PRIVMSG"); m.Param(1) != "typed in irssi" {
		t.Fatalf("browser: %q", m.String())
	}
	bob.expect("PRIVMSG")

	web.send("QUIT")
	web.expect("ERROR")
	bob.send("NAMES #room")
	if m, _ := bob.expect(protocol.RPL_NAMREPLY); !strings.Contains(m.Param(3), "hana") {
		t.Fatalf("hana left with the browser: %q", m.String())
	}
	for _, l := range bob.sync() {
		if l.Command == "QUIT" {
			t.Fatalf("bob saw a device leave: %q", l.String())
		}
	}
}

// Beyond limits.devices_per_account a login keeps a nick of its own, is
// told why, and the limit is counted.
func TestMulticlientDeviceLimit(t *testing.T) {
	srv, addr := testServer(t, func(c *configs.Config, _ *Options) { c.Limits.DevicesPerAccount = 2 })
	accountClient(t, addr, "ivy", "ivy", true)
	saslDevice(t, addr, "ivy2", "ivy")
	third := dial(t, addr)
	third.nick = "ivy3"
	third.send("CAP LS 302", "NICK ivy3", "USER ivy3 0 * :ivy3", "CAP REQ :sasl", "AUTHENTICATE PLAIN")
	third.expect("AUTHENTICATE")
	third.send("AUTHENTICATE "+saslPlain("ivy", testPassword), "CAP END")
	m, _ := third.expect("NOTICE")
	for !strings.Contains(m.Param(1), "limit 2") {
		m, _ = third.expect("NOTICE")
	}
	third.send("WHOIS ivy3")
	if w, _ := third.expect(protocol.RPL_WHOISUSER); w.Param(1) != "ivy3" {
		t.Fatalf("the third connection's nick: %q", w.String())
	}
	if got := sample(t, scrape(t, srv), `livechat_limits_hit_total{limit="devices"}`); got != 1 {
		t.Fatalf(`livechat_limits_hit_total{limit="devices"} = %v, want 1`, got)
	}
}

// A device that stops reading is cut as a slow consumer; the user stays,
// nobody sees a QUIT, and the device that reads gets every line.
func TestMulticlientSlowDeviceIsCutAlone(t *testing.T) {
	srv, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Limits.SendQBytes = 64 << 10 // the reading device takes a round (8 KB) at a time
		c.Limits.FloodBurst = 1_000_000
	})
	laptop := accountClient(t, addr, "kim", "kim", true)
	laptop.join("#room")
	bob := connect(t, addr, "bob")
	bob.join("#room")
	laptop.expect("JOIN")

	slow := dialSmallWindow(t, addr)
	slow.send("CAP LS 302", "NICK kimslow", "USER k 0 * :k", "CAP REQ :sasl", "AUTHENTICATE PLAIN")
	slow.expect("AUTHENTICATE")
	slow.send("AUTHENTICATE "+saslPlain("kim", testPassword), "CAP END")
	slow.expect(protocol.RPL_ENDOFNAMES) // joined #room as kim's device; it reads no more

	// The kernel takes a few MB into the socket before the queue fills.
	text := strings.Repeat("x", 400)
	for round := 0; testCounter(t, srv, "livechat_slow_consumer_disconnects_total") == 0; round++ {
		if round == 2000 {
			t.Fatal("the device that stopped reading was never cut")
		}
		for i := range 20 {
			bob.send(fmt.Sprintf("PRIVMSG #room :%d.%d %s", round, i, text))
		}
		for i := range 20 {
			if m, _ := laptop.expect("PRIVMSG"); !strings.HasPrefix(m.Param(1), fmt.Sprintf("%d.%d ", round, i)) {
				t.Fatalf("laptop got %q", m.Param(1))
			}
		}
	}
	bob.send("NAMES #room")
	if m, _ := bob.expect(protocol.RPL_NAMREPLY); !strings.Contains(m.Param(3), "kim") {
		t.Fatalf("kim left with the slow device: %q", m.String())
	}
	for _, l := range bob.sync() {
		if l.Command == "QUIT" {
			t.Fatalf("bob saw a QUIT: %q", l.String())
		}
	}
	bob.send("PRIVMSG #room :still here?")
	if m, _ := laptop.expect("PRIVMSG"); m.Param(1) != "still here?" {
		t.Fatalf("laptop: %q", m.String())
	}
}

// A device that disconnects while its twin's JOIN is bringing it into a
// room is not left there: once the last device goes, the room hears the
// QUIT and lists nobody of that user (found in review: 3 of 40 rounds
// left a closed session in the room for good).
func TestMulticlientJoinRacesDeviceLeaving(t *testing.T) {
	_, addr := testServer(t)
	accountClient(t, addr, "fay", "fay", true).send("QUIT")
	for i := range 20 {
		room := fmt.Sprintf("#race%d", i)
		watcher := connect(t, addr, fmt.Sprintf("w%d", i))
		watcher.join(room)
		a := saslDevice(t, addr, "faya", "fay")
		b := saslDevice(t, addr, "fayb", "fay")
		done := make(chan struct{})
		go func() { defer close(done); b.send("QUIT") }()
		a.send("JOIN " + room)
		a.expect(protocol.RPL_ENDOFNAMES)
		<-done
		b.expect("ERROR")
		a.send("QUIT")
		a.expect("ERROR")
		for {
			m, _ := watcher.expect("QUIT")
			if strings.HasPrefix(m.Source, "fay!") {
				break
			}
		}
		watcher.send("NAMES " + room)
		if m, _ := watcher.expect(protocol.RPL_NAMREPLY); strings.Contains(m.Param(3), "fay") {
			t.Fatalf("round %d: fay is still in %s after every device left: %q", i, room, m.String())
		}
		watcher.send("QUIT")
		watcher.expect("ERROR")
	}
}

// Two devices of one user JOINing the same room at once (two clients with
// autojoin reconnecting together) make one member: the room hears one
// JOIN and lists the nick once (found in review: 2 of 30 rooms listed it
// twice).
func TestMulticlientDevicesJoinAtOnce(t *testing.T) {
	_, addr := testServer(t)
	accountClient(t, addr, "gus", "gus", true).send("QUIT")
	a := saslDevice(t, addr, "gusa", "gus")
	b := saslDevice(t, addr, "gusb", "gus")
	for i := range 20 {
		room := fmt.Sprintf("#both%d", i)
		watcher := connect(t, addr, fmt.Sprintf("v%d", i))
		watcher.join(room)
		a.send("JOIN " + room)
		b.send("JOIN " + room)
		a.expect(protocol.RPL_ENDOFNAMES)
		b.expect(protocol.RPL_ENDOFNAMES)
		watcher.send("NAMES " + room)
		m, before := watcher.expect(protocol.RPL_NAMREPLY)
		if strings.Count(m.Param(3), "gus") != 1 {
			t.Fatalf("round %d: NAMES %q, want gus once", i, m.Param(3))
		}
		joins := 0
		for _, l := range before {
			if l.Command == "JOIN" && strings.HasPrefix(l.Source, "gus!") {
				joins++
			}
		}
		if joins != 1 {
			t.Fatalf("round %d: the room heard %d JOINs of gus, want 1", i, joins)
		}
		watcher.expect(protocol.RPL_ENDOFNAMES)
		watcher.send("QUIT")
		watcher.expect("ERROR")
	}
}
