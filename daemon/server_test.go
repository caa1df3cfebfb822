package daemon

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

func TestNetcatStyleChat(t *testing.T) {
	_, addr := testServer(t)
	bob := dial(t, addr)
	bob.send("JOIN lobby")
	welcome, _ := bob.expect(protocol.RPL_WELCOME)
	bob.nick = welcome.Params[0]
	if !strings.HasPrefix(bob.nick, "guest-") {
		t.Fatalf("netcat user got nick %q, want guest-xxxx", bob.nick)
	}
	join, _ := bob.expect("JOIN")
	if join.Param(0) != "#lobby" {
		t.Fatalf("JOIN echo %v, want #lobby", join)
	}
	bob.expect(protocol.RPL_ENDOFNAMES)

	alice := dial(t, addr)
	alice.send("JOIN Lobby", "MSG lobby hello there")
	alice.expect(protocol.RPL_ENDOFNAMES)
	// A person's own message is confirmed: echoed as the room got it.
	if echo, _ := alice.expect("PRIVMSG"); echo.Params[0] != "#lobby" || echo.Params[1] != "hello there" {
		t.Fatalf("alice's confirmation %q", echo.String())
	}

	joined, _ := bob.expect("JOIN")
	msg, _ := bob.expect("PRIVMSG")
	if msg.Params[0] != "#lobby" || msg.Params[1] != "hello there" {
		t.Fatalf("bob got %q, want PRIVMSG #lobby :hello there", msg.String())
	}
	if msg.Source != joined.Source || !strings.HasPrefix(msg.Source, "guest-") || !strings.Contains(msg.Source, "!") {
		t.Fatalf("message source %q, want the joiner's nick!user@host %q", msg.Source, joined.Source)
	}
	if got := alice.sync(); len(got) != 0 {
		t.Fatalf("sender got more than its confirmation: %v", got)
	}
}

func TestIRCClientRegistration(t *testing.T) {
	_, addr := testServer(t)
	c := dial(t, addr)
	c.nick = "alice"
	c.send("CAP LS 302", "NICK alice", "USER alice 0 * :Alice Liddell")
	ls := c.capLS()
	if ls.Param(1) != "LS" {
		t.Fatalf("CAP reply %v, want LS", ls)
	}
	// Registration waits for CAP END.
	if got := c.sync(); len(got) != 0 {
		t.Fatalf("got %v before CAP END", commands(got))
	}
	c.send("CAP END")
	var codes []string
	var isupport []string
	for len(codes) < 5 {
		m := c.read()
		codes = append(codes, m.Command)
		if m.Command == protocol.RPL_ISUPPORT {
			isupport = append(isupport, m.Params[1:len(m.Params)-1]...)
			for {
				m = c.read()
				if m.Command != protocol.RPL_ISUPPORT {
					break
				}
				isupport = append(isupport, m.Params[1:len(m.Params)-1]...)
			}
		}
	}
	if strings.Join(codes, " ") != "001 002 003 004 005" {
		t.Fatalf("welcome burst %v, want 001..005", codes)
	}
	tokens := strings.Join(isupport, " ")
	for _, want := range []string{"CHANTYPES=#", "CASEMAPPING=ascii", "NICKLEN=30", "CHANNELLEN=64", "TOPICLEN=390", "NETWORK=livechat", "UTF8ONLY"} {
		if !strings.Contains(tokens, want) {
			t.Errorf("ISUPPORT lacks %s: %s", want, tokens)
		}
	}
	c.expectEndOfMOTD()

	c.send("JOIN #Rust")
	join, _ := c.expect("JOIN")
	if join.Param(0) != "#Rust" || !strings.HasPrefix(join.Source, "alice!~alice@") {
		t.Fatalf("JOIN echo %q", join.String())
	}
	names, _ := c.expect(protocol.RPL_NAMREPLY)
	if names.Params[2] != "#Rust" || names.Params[3] != "@alice" {
		t.Fatalf("353 %q", names.String())
	}
	c.expect(protocol.RPL_ENDOFNAMES)

	c.send("PING :are you there")
	pong, _ := c.expect("PONG")
	if pong.Param(1) != "are you there" {
		t.Fatalf("PONG %q", pong.String())
	}
}

func TestHistoryReplayedToJoiner(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "alice")
	b := connect(t, addr, "bob")
	a.join("#books")
	b.join("#books")
	a.send("PRIVMSG #books :one", "PRIVMSG #books :two")
	b.expect("PRIVMSG")
	b.expect("PRIVMSG")
	b.send("PRIVMSG #books :three")
	a.expect("PRIVMSG")

	c := connect(t, addr, "carol")
	c.send("JOIN #books")
	_, before := c.expect(protocol.RPL_ENDOFNAMES)
	if cmds := strings.Join(commands(before), " "); cmds != "JOIN 353" {
		t.Fatalf("before 366: %s, want JOIN 353 (history comes after the member list)", cmds)
	}
	for _, want := range []string{"alice:one", "alice:two", "bob:three"} {
		m := c.read()
		got := strings.SplitN(m.Source, "!", 2)[0] + ":" + m.Param(1)
		if m.Command != "PRIVMSG" || got != want {
			t.Fatalf("replay got %q, want %s", m.String(), want)
		}
	}
	if rest := c.sync(); len(rest) != 0 {
		t.Fatalf("after replay: %v", commands(rest))
	}
}

func TestErrors(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "alice")
	b := connect(t, addr, "bob")
	b.join("#quiet")

	cases := []struct {
		name string
		line string
		want string
	}{
		{"nick in use", "NICK bob", protocol.ERR_NICKNAMEINUSE},
		{"nick in use, other case", "NICK BOB", protocol.ERR_NICKNAMEINUSE},
		{"invalid nick", "NICK 9lives", protocol.ERR_ERRONEUSNICKNAME},
		{"unknown command", "FROBNICATE now", protocol.ERR_UNKNOWNCOMMAND},
		{"message to a room not joined", "PRIVMSG #quiet :hi", protocol.ERR_CANNOTSENDTOCHAN},
		{"message to a missing room", "PRIVMSG #nowhere :hi", protocol.ERR_NOSUCHCHANNEL},
		{"message to a missing nick", "PRIVMSG nobody :hi", protocol.ERR_NOSUCHNICK},
		{"no text", "PRIVMSG bob", protocol.ERR_NOTEXTTOSEND},
		{"not enough params", "JOIN", protocol.ERR_NEEDMOREPARAMS},
		{"part a room not joined", "PART #quiet", protocol.ERR_NOTONCHANNEL},
		{"invalid room name", "JOIN #bad\x07name", protocol.ERR_NOSUCHCHANNEL},
		{"control characters", "PRIVMSG bob :ring\x07ring", "FAIL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a.t = t
			a.send(tc.line)
			got := a.sync()
			if len(got) != 1 || got[0].Command != tc.want {
				t.Fatalf("%q: got %v, want one %s", tc.line, commands(got), tc.want)
			}
		})
	}
	a.t = t
	if got := b.sync(); len(got) != 0 {
		t.Fatalf("bob saw %v", commands(got))
	}
}

func TestOverlongLineKeepsConnection(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "alice")
	a.send("PRIVMSG bob :" + strings.Repeat("x", 600))
	m := a.read()
	if m.Command != protocol.ERR_INPUTTOOLONG {
		t.Fatalf("got %q, want 417", m.String())
	}
	a.send("PING next")
	pong, _ := a.expect("PONG")
	if pong.Param(1) != "next" {
		t.Fatalf("line after the long one: %q", pong.String())
	}
}

func TestInvalidUTF8NotBroadcast(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "alice")
	b := connect(t, addr, "bob")
	a.join("#utf")
	b.join("#utf")
	a.sync()
	a.send("PRIVMSG #utf :bad \xff\xfe bytes")
	got := a.sync()
	if len(got) != 1 || got[0].Command != "FAIL" || got[0].Param(1) != "INVALID_UTF8" {
		t.Fatalf("got %v, want FAIL PRIVMSG INVALID_UTF8", got)
	}
	if got := b.sync(); len(got) != 0 {
		t.Fatalf("bob received %v", got)
	}
}

func TestNickAndQuitSeenByPeers(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "alice")
	b := connect(t, addr, "bob")
	a.join("#one")
	a.join("#two")
	b.join("#one")
	b.join("#two")
	a.sync()

	a.send("NICK alicia")
	self, _ := a.expect("NICK")
	if self.Param(0) != "alicia" || !strings.HasPrefix(self.Source, "alice!") {
		t.Fatalf("own NICK %q", self.String())
	}
	got := b.sync()
	if len(got) != 1 || got[0].Command != "NICK" || got[0].Param(0) != "alicia" {
		t.Fatalf("bob saw %v, want one NICK although two rooms are shared", got)
	}
	a.send("PRIVMSG #two :renamed")
	msg, _ := b.expect("PRIVMSG")
	if !strings.HasPrefix(msg.Source, "alicia!") {
		t.Fatalf("message after rename from %q", msg.Source)
	}

	a.send("QUIT :gone fishing")
	errLine, _ := a.expect("ERROR")
	if !strings.Contains(errLine.Param(0), "gone fishing") {
		t.Fatalf("ERROR %q", errLine.String())
	}
	got = b.sync()
	if len(got) != 1 || got[0].Command != "QUIT" || got[0].Param(0) != "Quit: gone fishing" || !strings.HasPrefix(got[0].Source, "alicia!") {
		t.Fatalf("bob saw %v, want one QUIT", got)
	}
	b.send("NAMES #one")
	names, _ := b.expect(protocol.RPL_NAMREPLY)
	if names.Param(3) != "bob" {
		t.Fatalf("NAMES after quit: %q", names.String())
	}
}

func TestShutdownSendsError(t *testing.T) {
	srv, addr := testServer(t)
	a := connect(t, addr, "alice")
	b := dial(t, addr) // not registered yet
	b.send("CAP LS 302")
	b.capLS()
	go srv.Shutdown(t.Context())
	for _, c := range []*client{a, b} {
		m, _ := c.expect("ERROR")
		if m.Param(0) != "Server shutting down" {
			t.Fatalf("got %q", m.String())
		}
	}
}

func TestSlowConsumerDisconnected(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) { c.Limits.SendQBytes = 8192 })
	talker := connect(t, addr, "talker")
	reader := connect(t, addr, "reader")
	stuck := connect(t, addr, "stuck")
	for _, c := range []*client{talker, reader, stuck} {
		c.join("#busy")
	}
	talker.sync()
	reader.sync()

	// stuck never reads again. Talk in small rounds that the reader keeps
	// up with, until the server gives up on stuck; the kernel's socket
	// buffers absorb some megabytes first, so the loop is bounded by count.
	// After the overflow the server gives stuck closeTimeout to take its
	// ERROR line, so keep talking until the QUIT shows, within a deadline.
	line := "PRIVMSG #busy :" + strings.Repeat("y", 400)
	deadline := time.Now().Add(2 * waitFor)
	for round := 0; round < 1_000_000 && time.Now().Before(deadline); round++ {
		talker.send(line, line, line, line, line, line, line, line)
		for got := 0; got < 8; {
			m := reader.read()
			switch {
			case m.Command == "PRIVMSG":
				got++
			case m.Command == "QUIT" && strings.HasPrefix(m.Source, "stuck!"):
				if m.Param(0) != "SendQ exceeded" {
					t.Fatalf("quit reason %q", m.Param(0))
				}
				talker.send("PRIVMSG #busy :still here")
				for {
					if m := reader.read(); m.Command == "PRIVMSG" && m.Param(1) == "still here" {
						return
					}
				}
			default:
				t.Fatalf("unexpected %q", m.String())
			}
		}
	}
	t.Fatal("the stuck client was never disconnected")
}

func TestRoomPanicIsContained(t *testing.T) {
	var armed atomic.Bool
	srv, addr := testServer(t, func(_ *configs.Config, o *Options) {
		o.RoomHooks.BeforeRequest = func(room, req string) {
			if room == "#boom" && req == "PRIVMSG" && armed.CompareAndSwap(true, false) {
				panic("injected fault")
			}
		}
	})
	a := connect(t, addr, "alice")
	b := connect(t, addr, "bob")
	c := connect(t, addr, "carol")
	a.join("#boom")
	b.join("#boom")
	c.join("#calm")
	b.join("#calm")
	a.send("PRIVMSG #boom :before")
	b.expect("PRIVMSG")

	armed.Store(true)
	a.send("PRIVMSG #boom :this one panics")
	errReply, _ := a.expect(protocol.ERR_UNKNOWNERROR)
	if !strings.Contains(errReply.String(), "not delivered") {
		t.Fatalf("error reply %q", errReply.String())
	}
	c.send("PRIVMSG #calm :unaffected")
	if m, _ := b.expect("PRIVMSG"); m.Param(1) != "unaffected" {
		t.Fatalf("bob got %q first", m.String())
	}
	a.send("PRIVMSG #boom :after")
	if m, _ := b.expect("PRIVMSG"); m.Param(1) != "after" {
		t.Fatalf("bob got %q", m.String())
	}
	// Members and history are intact.
	d := connect(t, addr, "dave")
	d.send("JOIN #boom")
	names, _ := d.expect(protocol.RPL_NAMREPLY)
	if got := strings.Fields(names.Param(3)); len(got) != 3 {
		t.Fatalf("members after panic: %v", got)
	}
	d.expect(protocol.RPL_ENDOFNAMES)
	for _, want := range []string{"before", "after"} {
		if m := d.read(); m.Param(1) != want {
			t.Fatalf("replay %q, want %s", m.String(), want)
		}
	}
	if got := testCounter(t, srv, "livechat_room_restarts_total"); got != 1 {
		t.Fatalf("livechat_room_restarts_total = %v", got)
	}
}

// testCounter reads a label-less counter or gauge from the server's registry.
func testCounter(t *testing.T, srv *Server, name string) float64 {
	t.Helper()
	families, err := srv.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			m := f.GetMetric()[0]
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestPingTimeout(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Limits.PingInterval = 50 * time.Millisecond
		c.Limits.PingTimeout = 50 * time.Millisecond
	})
	a := connect(t, addr, "sleepy")
	ping, _ := a.expect("PING")
	if ping.Param(0) == "" {
		t.Fatal("PING without token")
	}
	m, _ := a.expect("ERROR")
	if !strings.Contains(m.Param(0), "Ping timeout") {
		t.Fatalf("got %q", m.String())
	}
}

func TestRegistrationTimeout(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) { c.Limits.RegistrationTimeout = 50 * time.Millisecond })
	a := dial(t, addr)
	a.send("NICK halfway")
	m, _ := a.expect("ERROR")
	if m.Param(0) != "Registration timed out" {
		t.Fatalf("got %q", m.String())
	}
}

func TestFloodDisconnects(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Limits.FloodBurst = 5
		c.Limits.FloodRate = 10
		c.Limits.FloodMaxLag = 250 * time.Millisecond
	})
	a := connect(t, addr, "spammer")
	for range 20 {
		a.send("PRIVMSG spammer :spam")
	}
	m, _ := a.expect("ERROR")
	if m.Param(0) != "Excess flood" {
		t.Fatalf("got %q", m.String())
	}
}

var _ rooms.Client = (*Session)(nil)

// Replies that rooms send come before the client's next command's replies:
// clients use PING as a barrier, and so do these tests.
func TestRoomRepliesKeepCommandOrder(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "alice")
	a.join("#order")
	a.send("TOPIC #order", "NAMES #order", "WHO #order", "TOPIC #order :fresh", "LIST")
	got := strings.Join(commands(a.sync()), " ")
	if want := "331 353 366 352 315 TOPIC 321 322 323"; got != want {
		t.Fatalf("replies %s, want %s", got, want)
	}
}

func TestListConditions(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "alice")
	b := connect(t, addr, "bob")
	a.join("#big")
	b.join("#big")
	a.join("#small")
	a.send("TOPIC #small :has a topic")
	a.expect("TOPIC")
	list := func(arg string) string {
		t.Helper()
		a.send("LIST " + arg)
		var names []string
		for {
			m := a.read()
			if m.Command == protocol.RPL_LISTEND {
				return strings.Join(names, " ")
			}
			if m.Command == protocol.RPL_LIST {
				names = append(names, m.Param(1))
			}
		}
	}
	cases := map[string]string{
		">1":          "#big",
		"<2":          "#small",
		"#sm*":        "#small",
		"!#sm*":       "#big",
		"C<60":        "#big #small", // created less than an hour ago
		"C>60":        "",
		"T<60":        "#small", // only rooms with a topic have a topic time
		"#big,#small": "#big #small",
	}
	for arg, want := range cases {
		if got := list(arg); got != want {
			t.Errorf("LIST %s = %q, want %q", arg, got, want)
		}
	}
}

func TestRoomAndConnectionLimits(t *testing.T) {
	srv, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Limits.MaxJoinedRooms = 2
		c.Limits.MaxRoomMembers = 2
		c.Limits.MaxRooms = 3
		c.Limits.MaxClients = 3
	})
	a := connect(t, addr, "alice")
	a.join("#one")
	a.join("#two")
	a.send("JOIN #three")
	a.expectNumeric(protocol.ERR_TOOMANYCHANNELS)

	b := connect(t, addr, "bob")
	b.join("#one")
	c := connect(t, addr, "carol")
	c.send("JOIN #one")
	c.expectNumeric(protocol.ERR_CHANNELISFULL)
	c.join("#three") // the third room
	c.send("JOIN #four")
	if m := c.expectNumeric(protocol.ERR_NOSUCHCHANNEL); !strings.Contains(m.Param(2), "too many rooms") {
		t.Fatalf("%q", m.String())
	}

	d := dial(t, addr) // a fourth connection
	if m, _ := d.expect("ERROR"); !strings.Contains(m.Param(0), "full") {
		t.Fatalf("%q", m.String())
	}
	families, err := srv.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	hits := map[string]float64{}
	for _, f := range families {
		if f.GetName() == "livechat_limits_hit_total" {
			for _, m := range f.GetMetric() {
				hits[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if hits["joined_rooms"] != 1 || hits["room_members"] != 1 || hits["rooms"] != 1 {
		t.Fatalf("livechat_limits_hit_total %v", hits)
	}
}

// A client that keeps talking is never PINGed, however short the ping
// interval: its read deadline moves with its lines.
func TestBusyClientIsNotPinged(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Limits.PingInterval = 200 * time.Millisecond
		c.Limits.PingTimeout = time.Minute
	})
	a := connect(t, addr, "chatty")
	start := time.Now()
	for i := 0; time.Since(start) < time.Second && i < 100; i++ {
		for _, m := range a.sync() {
			if m.Command == "PING" {
				t.Fatalf("PINGed after %v while sending a line every 20ms", time.Since(start))
			}
		}
		time.Sleep(20 * time.Millisecond) // pacing the client, not waiting for an outcome
	}
}
