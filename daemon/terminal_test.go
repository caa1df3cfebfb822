package daemon

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
)

// guest connects the way a person in nc does: it just types a command.
func guest(t *testing.T, addr string) *client {
	t.Helper()
	c := dial(t, addr)
	c.send("NAMES")
	w, _ := c.expect(protocol.RPL_WELCOME)
	c.nick = w.Params[0]
	c.expect(protocol.RPL_ENDOFNAMES)
	return c
}

// readRaw returns the next line as sent, without its line ending.
func (c *client) readRaw() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("%s: read: %v", c.nick, err)
	}
	return strings.TrimRight(line, "\r\n")
}

// rawUntil reads raw lines up to and including the first that contains
// marker, and returns them.
func (c *client) rawUntil(marker string) []string {
	c.t.Helper()
	var got []string
	for {
		l := c.readRaw()
		got = append(got, l)
		if strings.Contains(l, marker) {
			return got
		}
	}
}

func TestTerminalWelcomeIsShort(t *testing.T) {
	_, addr := testServer(t)
	c := dial(t, addr)
	c.send("JOIN lobby")
	var before []string
	for {
		l := c.readRaw()
		if strings.Contains(l, " JOIN #lobby") {
			break
		}
		before = append(before, l)
	}
	if len(before) != 3 || !strings.Contains(before[0], " 001 guest-") {
		t.Fatalf("welcome %q, want the 001 and two lines", before)
	}
	for _, l := range before[1:] {
		if strings.HasPrefix(l, ":") {
			t.Errorf("welcome line %q is a protocol line, want a sentence", l)
		}
	}
	if !strings.Contains(before[1], "JOIN <room>") || !strings.Contains(before[1], "MSG <room> <text>") || !strings.Contains(before[1], "HELP") || !strings.Contains(before[2], "FORMAT text") {
		t.Errorf("welcome does not say what to type: %q", before[1:])
	}
}

func TestIRCClientUnaffected(t *testing.T) {
	_, addr := testServer(t, func(cfg *configs.Config, _ *Options) {
		cfg.Limits.PingInterval = 50 * time.Millisecond
		cfg.Limits.PingTimeout = 50 * time.Millisecond
	})
	c := dial(t, addr)
	c.nick = "ircer"
	c.send("NICK ircer", "USER ircer 0 * :IRC client")
	var codes []string
	for {
		m := c.read()
		codes = append(codes, m.Command)
		if m.Command == protocol.RPL_ENDOFMOTD || m.Command == protocol.ERR_NOMOTD {
			break
		}
	}
	got := strings.Join(codes, " ")
	if !strings.HasPrefix(got, "001 002 003 004 005") || !strings.Contains(got, "375") {
		t.Fatalf("burst %s, want 001-005 and the MOTD", got)
	}
	c.send("HELP", "JOIN")
	c.expect(protocol.RPL_HELPSTART)
	c.expect(protocol.RPL_ENDOFHELP)
	if m, _ := c.expect(protocol.ERR_NEEDMOREPARAMS); !strings.Contains(m.Param(2), "JOIN <room>") {
		t.Errorf("461 without the usage: %q", m.String())
	}
	// No echo without echo-message, and a bare name is not a room.
	c.send("JOIN #x", "PRIVMSG #x :hi", "JOIN lobby")
	if m, skipped := c.expect(protocol.ERR_NOSUCHCHANNEL); m.Param(1) != "lobby" || len(commands(skipped)) == 0 {
		t.Fatalf("JOIN lobby from an IRC client: %q", m.String())
	} else {
		for _, s := range skipped {
			if s.Command == "PRIVMSG" {
				t.Fatalf("IRC client got its message back: %q", s.String())
			}
		}
	}
	// It is PINGed when silent and dropped when it does not answer.
	c.expect("PING")
	if m, _ := c.expect("ERROR"); !strings.Contains(m.Param(0), "Ping timeout") {
		t.Fatalf("silent IRC client: %q", m.String())
	}
}

// A person in nc cannot answer a PING: a terminal guest is never PINGed
// nor dropped for it. The wait is on events, not on sleep: an IRC client
// connected after the guest, with the same short ping interval, is PINGed
// and dropped; by then the guest, silent for longer, would have been too.
func TestTerminalNeverPinged(t *testing.T) {
	srv, addr := testServer(t, func(cfg *configs.Config, _ *Options) {
		cfg.Limits.PingInterval = 50 * time.Millisecond
		cfg.Limits.PingTimeout = 50 * time.Millisecond
	})
	person := guest(t, addr)
	irc := dial(t, addr)
	irc.send("NICK ircer", "USER ircer 0 * :IRC client")
	irc.expect("PING")
	irc.expect("ERROR")

	person.send("NAMES")
	for {
		m := person.read()
		if m.Command == "PING" || m.Command == "ERROR" {
			t.Fatalf("terminal guest got %q", m.String())
		}
		if m.Command == protocol.RPL_ENDOFNAMES {
			break
		}
	}
	if sessionOf(srv, person.nick) == nil {
		t.Fatal("the terminal guest's session is gone")
	}
}

func sessionOf(srv *Server, nick string) *Session {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for sess := range srv.sessions {
		if sess.Nick() == nick {
			return sess
		}
	}
	return nil
}

// A person who registered the IRC way (NICK, USER) and then chose FORMAT
// text reads, and is not PINGed either.
func TestFormatTextNeverPinged(t *testing.T) {
	_, addr := testServer(t, func(cfg *configs.Config, _ *Options) {
		cfg.Limits.PingInterval = 50 * time.Millisecond
		cfg.Limits.PingTimeout = 50 * time.Millisecond
	})
	reader := dial(t, addr)
	reader.nick = "reader"
	reader.send("NICK reader", "USER reader 0 * :r")
	reader.expect(protocol.RPL_WELCOME)
	reader.send("FORMAT text")
	reader.rawUntil("Format: text")
	irc := dial(t, addr)
	irc.send("NICK ircer", "USER ircer 0 * :IRC client")
	irc.expect("PING")
	irc.expect("ERROR")
	reader.send("LIST")
	for _, l := range reader.rawUntil("End of the room list") {
		if strings.Contains(l, "PING") || strings.Contains(l, "Disconnected") {
			t.Fatalf("FORMAT text reader got %q", l)
		}
	}
}

// Closing the socket ends a terminal session at once, and every accepted
// TCP connection has keepalive on with the intended timing, which is
// what finds a peer that vanished without closing.
func TestTerminalDeadPeer(t *testing.T) {
	srv, addr := testServer(t)
	watcher := connect(t, addr, "watcher")
	watcher.join("#lobby")
	p := guest(t, addr)
	p.send("JOIN lobby")
	p.expect(protocol.RPL_ENDOFNAMES)
	watcher.expect("JOIN")

	conn := sessionOf(srv, p.nick).conn
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		t.Fatalf("session conn %T", conn)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int{
		"SO_KEEPALIVE":  {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
		"TCP_KEEPIDLE":  {syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE},
		"TCP_KEEPINTVL": {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL},
		"TCP_KEEPCNT":   {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT},
	}
	values := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": int(keepAliveIdle / time.Second), "TCP_KEEPINTVL": int(keepAliveInterval / time.Second), "TCP_KEEPCNT": keepAliveCount}
	raw.Control(func(fd uintptr) {
		for name, opt := range want {
			v, err := syscall.GetsockoptInt(int(fd), opt[0], opt[1])
			if err != nil || v != values[name] {
				t.Errorf("%s = %d (%v), want %d", name, v, err, values[name])
			}
		}
	})

	p.conn.Close()
	if q, _ := watcher.expect("QUIT"); !strings.HasPrefix(q.Source, p.nick+"!") {
		t.Fatalf("watcher saw %q", q.String())
	}
}

func TestTerminalHelpAndErrors(t *testing.T) {
	_, addr := testServer(t)
	p := guest(t, addr)
	p.send("HELP")
	lines := p.rawUntil("QUIT")
	for _, l := range lines {
		if strings.HasPrefix(l, ":") {
			t.Fatalf("HELP line %q has a protocol prefix", l)
		}
	}
	if !strings.Contains(strings.Join(lines, "\n"), "FORMAT text|irc") {
		t.Errorf("HELP does not mention FORMAT: %q", lines)
	}
	// Errors keep their numerics (scripts act on them) and say the
	// usage and the limit.
	p.send("JOIN")
	if m, _ := p.expect(protocol.ERR_NEEDMOREPARAMS); !strings.Contains(m.Param(2), "JOIN <room>") {
		t.Errorf("JOIN without a room: %q", m.String())
	}
	p.send(strings.Repeat("x", 600))
	if m, _ := p.expect(protocol.ERR_INPUTTOOLONG); !strings.Contains(m.Param(1), "512 bytes") {
		t.Errorf("long line: %q", m.String())
	}
}

func TestTerminalMSGConfirmed(t *testing.T) {
	_, addr := testServer(t)
	bob := connect(t, addr, "bob")
	p := guest(t, addr)
	p.send("JOIN lobby", "MSG lobby hi all", "MSG bob hi bob")
	p.expect(protocol.RPL_ENDOFNAMES)
	if m, _ := p.expect("PRIVMSG"); m.Param(0) != "#lobby" || m.Param(1) != "hi all" || !strings.HasPrefix(m.Source, p.nick+"!") {
		t.Errorf("room confirmation %q", m.String())
	}
	if m, _ := p.expect("PRIVMSG"); m.Param(0) != "bob" || m.Param(1) != "hi bob" {
		t.Errorf("private confirmation %q", m.String())
	}
	if m, _ := bob.expect("PRIVMSG"); m.Param(1) != "hi bob" {
		t.Errorf("bob got %q", m.String())
	}
}

func TestFormatText(t *testing.T) {
	_, addr := testServer(t)
	alice := connect(t, addr, "alice")
	alice.join("#lobby")
	p := guest(t, addr)
	p.send("NICK carol", "FORMAT text", "JOIN lobby")
	p.rawUntil("Format: text")
	if got := p.rawUntil("* carol joined #lobby"); len(got) != 1 {
		t.Errorf("before the join: %q", got[:len(got)-1])
	}
	if l := p.readRaw(); !strings.HasPrefix(l, "In #lobby: ") || !strings.Contains(l, "@alice") {
		t.Errorf("members %q", l)
	}
	alice.expect("JOIN")
	alice.send("PRIVMSG #lobby :hi", "PRIVMSG carol :psst", "PRIVMSG #lobby :\x01ACTION waves\x01", "TOPIC #lobby :news")
	// The private line takes another path than the room's and may come
	// first; the room's lines keep their order.
	got := map[string]bool{}
	for range 4 {
		got[p.readRaw()] = true
	}
	for _, want := range []string{"[#lobby] <alice> hi", "[private] <alice> psst", "[#lobby] * alice waves", "* alice set the topic of #lobby: news"} {
		if !got[want] {
			t.Errorf("missing %q in %v", want, got)
		}
	}
	p.send("MSG lobby hello", "MSG alice hey")
	for _, want := range []string{"[#lobby] <carol> hello", "[private to alice] <carol> hey"} {
		if l := p.readRaw(); l != want {
			t.Errorf("got %q, want %q", l, want)
		}
	}
	p.send("NICK caz", "JOIN", "PART #nowhere")
	for _, want := range []string{"* carol is now known as caz"} {
		if l := p.readRaw(); l != want {
			t.Errorf("got %q, want %q", l, want)
		}
	}
	if l := p.readRaw(); !strings.HasPrefix(l, "Error: Not enough parameters: JOIN <room>") {
		t.Errorf("JOIN error %q", l)
	}
	if l := p.readRaw(); l != "Error: #nowhere: No such room" {
		t.Errorf("PART error %q", l)
	}
	alice.send("KICK #lobby caz :bye")
	if l := p.readRaw(); l != "* alice removed caz from #lobby (bye)" {
		t.Errorf("kick %q", l)
	}
	p.send("JOIN lobby")
	p.rawUntil("* caz joined #lobby")
	alice.send("PART #lobby :later", "QUIT :gone")
	for _, want := range []string{"* alice left #lobby (later)"} {
		if l := p.rawUntil("alice left"); l[len(l)-1] != want {
			t.Errorf("got %q, want %q", l[len(l)-1], want)
		}
	}
	// Back to protocol lines.
	p.send("FORMAT irc", "MSG lobby back")
	p.rawUntil("Format: irc")
	if l := p.readRaw(); !strings.HasPrefix(l, ":caz!") || !strings.HasSuffix(l, " PRIVMSG #lobby :back") {
		t.Errorf("after FORMAT irc: %q", l)
	}
	p.send("FORMAT json")
	if m, _ := p.expect("FAIL"); m.Param(1) != "INVALID_PARAMS" {
		t.Errorf("FORMAT json: %q", m.String())
	}
}

// The '#' rule: a person may leave it out wherever a room is expected;
// an IRC client may not, and a bare name from it is a nick.
func TestHashRule(t *testing.T) {
	_, addr := testServer(t)
	op := connect(t, addr, "op")
	op.join("#lobby")
	op.send("TOPIC #lobby :the topic")
	op.expect("TOPIC")
	victim := connect(t, addr, "victim")
	victim.join("#lobby")
	op.expect("JOIN")

	p := guest(t, addr)
	p.send("JOIN lobby")
	p.expect(protocol.RPL_ENDOFNAMES)
	op.expect("JOIN")
	checks := []struct{ line, want string }{
		{"TOPIC lobby", protocol.RPL_TOPIC},
		{"NAMES lobby", protocol.RPL_NAMREPLY},
		{"WHO lobby", protocol.RPL_WHOREPLY},
		{"MODE lobby", protocol.RPL_CHANNELMODEIS},
		{"LIST lobby", protocol.RPL_LIST},
		{"KICK lobby victim", protocol.ERR_CHANOPRIVSNEEDED},
		{"INVITE victim lobby", protocol.ERR_USERONCHANNEL},
		{"OP lobby victim", protocol.ERR_CHANOPRIVSNEEDED},
		{"BAN lobby victim", protocol.ERR_CHANOPRIVSNEEDED},
		{"PART lobby", "PART"},
	}
	for _, c := range checks {
		p.send(c.line)
		got := p.sync()
		found := false
		for _, m := range got {
			if m.Command == c.want && (m.Command != "PART" || m.Param(0) == "#lobby") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: got %v, want %s", c.line, commands(got), c.want)
		}
	}
	// A room one is in wins over a nick; else a nick online wins.
	p.send("JOIN victim")
	p.expect(protocol.RPL_ENDOFNAMES)
	p.send("MSG victim to the room")
	if m, _ := p.expect("PRIVMSG"); m.Param(0) != "#victim" {
		t.Errorf("MSG victim went to %q", m.Param(0))
	}
	p.send("PART victim", "MSG victim to the person")
	if m, _ := victim.expect("PRIVMSG"); m.Param(0) != "victim" || m.Param(1) != "to the person" {
		t.Errorf("victim got %q", m.String())
	}
	p.send("WHO victim")
	if m, _ := p.expect(protocol.RPL_WHOREPLY); m.Param(5) != "victim" || m.Param(1) != "*" {
		t.Errorf("WHO victim: %q", m.String())
	}

	// IRC clients: '#' is required where only a room can stand, and a
	// bare name elsewhere is a nick.
	op.send("JOIN lobby", "WHO lobby", "MSG lobby hi")
	if m, _ := op.expect(protocol.ERR_NOSUCHCHANNEL); m.Param(1) != "lobby" || !strings.Contains(m.Param(2), "#lobby") {
		t.Errorf("JOIN lobby from an IRC client: %q", m.String())
	}
	if m, skipped := op.expect(protocol.RPL_ENDOFWHO); len(skipped) != 0 || m.Param(1) != "lobby" {
		t.Errorf("WHO lobby from an IRC client: %v", commands(skipped))
	}
	if m, _ := op.expect(protocol.ERR_NOSUCHNICK); m.Param(1) != "lobby" {
		t.Errorf("MSG lobby from an IRC client: %q", m.String())
	}
}
