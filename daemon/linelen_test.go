package daemon

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
)

// expectStrict is expect for lines that must pass a strict reader: every
// line read on the way is checked with protocol.Reader, which drops a line
// over 512 bytes (tags aside) as any strict client does.
func expectStrict(c *client, command string) protocol.Message {
	c.t.Helper()
	for {
		c.conn.SetReadDeadline(time.Now().Add(waitFor))
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("%s: read: %v", c.nick, err)
		}
		if _, err := protocol.NewReader(strings.NewReader(line)).ReadLine(); err != nil {
			c.t.Fatalf("%s: a strict reader drops this %d-byte line: %v\n%.120q...", c.nick, len(line), err, line)
		}
		m, err := protocol.ParseString(strings.TrimRight(line, "\r\n"))
		if err != nil {
			c.t.Fatalf("%s: %v", c.nick, err)
		}
		if m.Command == command {
			return m
		}
	}
}

// fullLine returns head followed by text of one-, two-, three- and
// four-byte runes, 510 bytes in all: the longest line a client may send.
func fullLine(head string) (line, text string) {
	n := protocol.MaxBodyLen - len(head)
	text = protocol.TruncateText(strings.Repeat("aé☃👋", n), n)
	text += strings.Repeat("x", n-len(text))
	return head + text, text
}

// lineArena is two members of one room, a and b, with the longest prefix
// there can be: a 30-byte nick, a 17-byte user and a cloak with a 63-byte
// suffix; and the longest room name.
type lineArena struct {
	addr, room, nickB string
	a, b              *client
}

func newLineArena(t *testing.T) *lineArena {
	suffix := strings.Repeat("h", 31) + "." + strings.Repeat("s", 31)
	_, addr := testServer(t, func(c *configs.Config, _ *Options) { c.Cloak.Suffix = suffix })
	la := &lineArena{addr: addr, room: "#" + strings.Repeat("r", protocol.RoomLen-1), nickB: "b" + strings.Repeat("y", protocol.NickLen-1)}
	la.a = connectCaps(t, addr, "a"+strings.Repeat("x", protocol.NickLen-1), "echo-message")
	la.b = connectCaps(t, addr, la.nickB, "away-notify", "setname")
	la.a.join(la.room)
	la.b.join(la.room)
	return la
}

// relay sends a full line from a and returns the text b got in command's
// last parameter (less drop), after checking it is a cut of what a sent.
func (la *lineArena) relay(t *testing.T, command, head, drop string) string {
	t.Helper()
	line, sent := fullLine(head)
	la.a.send(line)
	m := expectStrict(la.b, command)
	got, ok := strings.CutPrefix(m.Params[len(m.Params)-1], drop)
	if !ok || got == "" || !strings.HasPrefix(sent, got) || !utf8.ValidString(got) {
		t.Fatalf("%s: got %q, not a cut of the %d bytes sent", command, got, len(sent))
	}
	return got
}

// TestRelayedTextFitsLine: a client's longest lines, relayed with its
// nick!user@host in front, still reach the others whole (a strict reader
// takes them), their text cut at a rune boundary.
func TestRelayedTextFitsLine(t *testing.T) {
	for _, tt := range []struct {
		command, head, drop string
	}{
		{"NOTICE", "NOTICE {room} :", ""},
		{"PRIVMSG", "PRIVMSG {nickB} :", ""},
		{"TOPIC", "TOPIC {room} :", ""},
		{"KICK", "KICK {room} {nickB} :", ""},
		{"PART", "PART {room} :", ""},
		{"AWAY", "AWAY :", ""},
		{"SETNAME", "SETNAME :", ""},
		{"QUIT", "QUIT :", "Quit: "},
	} {
		t.Run(tt.command, func(t *testing.T) {
			la := newLineArena(t)
			head := strings.NewReplacer("{room}", la.room, "{nickB}", la.nickB).Replace(tt.head)
			la.relay(t, tt.command, head, tt.drop)
			la.b.sync() // still served
		})
	}
}

// TestRelayedTextSameForAll: the echo and the history carry the text as
// the room got it, cut no more than needed.
func TestRelayedTextSameForAll(t *testing.T) {
	la := newLineArena(t)
	said := la.relay(t, "PRIVMSG", "PRIVMSG "+la.room+" :", "")
	if m := expectStrict(la.a, "PRIVMSG"); m.Param(1) != said {
		t.Errorf("echo %q differs from what the room got %q", m.Param(1), said)
	}
	if body := len(":" + la.a.prefix(t, la.b) + " PRIVMSG " + la.room + " :" + said); body < protocol.MaxBodyLen-utf8.UTFMax+1 {
		t.Errorf("cut to a %d-byte line, more than needed", body)
	}
	c := connect(t, la.addr, "carol")
	c.send("JOIN " + la.room)
	if m := expectStrict(c, "PRIVMSG"); m.Param(1) != said {
		t.Errorf("history replays %q, the room got %q", m.Param(1), said)
	}
}

// prefix is the source of a's lines as b sees them, taken from WHO.
func (c *client) prefix(t *testing.T, peer *client) string {
	t.Helper()
	peer.send("WHO " + c.nick)
	m, _ := peer.expect(protocol.RPL_WHOREPLY)
	peer.expect(protocol.RPL_ENDOFWHO)
	return m.Param(5) + "!" + m.Param(2) + "@" + m.Param(3)
}

// TestKeptTextFitsLaterLines: an away message and a real name are sent
// again later, after the sender may have taken a longer nick, in lines
// with more parameters (extended-join); they must fit those lines too.
func TestKeptTextFitsLaterLines(t *testing.T) {
	la := newLineArena(t)
	b := connectCaps(t, la.addr, "watcher", "away-notify", "extended-join")
	b.join(la.room)
	short := connectCaps(t, la.addr, "s")
	line, _ := fullLine("AWAY :")
	short.send(line)
	line, _ = fullLine("SETNAME :")
	short.send(line, "NICK s"+strings.Repeat("z", protocol.NickLen-1), "JOIN "+la.room)
	expectStrict(b, "JOIN")
	expectStrict(b, "AWAY")
	b.sync()
}
