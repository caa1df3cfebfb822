package daemon

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/roomstore"
	"github.com/livechat/livechat/protocol"
)

// registered connects nick and registers an account by that name.
func registered(t *testing.T, addr, nick string) *client {
	t.Helper()
	c := connect(t, addr, nick)
	c.send("REGISTER " + nick + " long-enough-pw")
	c.expect("REGISTER")
	return c
}

// +R: only logged-in users join, +M: only logged-in users (or voiced
// ones) speak, and CHANMODES says so.
func TestRegisteredOnlyModes(t *testing.T) {
	_, addr := testServer(t)
	op := registered(t, addr, "regop")
	op.join("#regs")
	op.send("MODE #regs +RM")
	if m, _ := op.expect("MODE"); m.Param(1) != "+RM" {
		t.Fatalf("%q", m.String())
	}
	op.send("MODE #regs")
	if m := op.expectNumeric(protocol.RPL_CHANNELMODEIS); m.Param(2) != "+ntMR" {
		t.Fatalf("324: %q", m.String())
	}

	guest := connect(t, addr, "anon")
	guest.send("JOIN #regs")
	if m := guest.expectNumeric(protocol.ERR_NEEDREGGEDNICK); m.Param(1) != "#regs" {
		t.Fatalf("%q", m.String())
	}
	// An invited guest gets in, and then may not speak.
	op.send("INVITE anon #regs")
	op.expectNumeric(protocol.RPL_INVITING)
	guest.join("#regs")
	guest.send("PRIVMSG #regs :hello?")
	if m := guest.expectNumeric(protocol.ERR_CANNOTSENDTOCHAN); !strings.Contains(m.Param(2), "+M") {
		t.Fatalf("%q", m.String())
	}
	// Logging in lets them speak.
	guest.send("REGISTER anon long-enough-pw")
	guest.expect("REGISTER")
	guest.send("PRIVMSG #regs :now logged in")
	if m, _ := op.expect("PRIVMSG"); m.Param(1) != "now logged in" {
		t.Fatalf("%q", m.String())
	}
	// A voiced guest speaks too.
	other := connect(t, addr, "other")
	op.send("INVITE other #regs")
	op.expectNumeric(protocol.RPL_INVITING)
	other.join("#regs")
	op.send("VOICE #regs other")
	other.expect("MODE")
	other.send("PRIVMSG #regs :voiced")
	if m, _ := op.expect("PRIVMSG"); m.Param(1) != "voiced" {
		t.Fatalf("%q", m.String())
	}
	// A logged-in user joins uninvited.
	member := registered(t, addr, "member")
	member.join("#regs")

	isupport := dial(t, addr)
	isupport.send("NICK isup", "USER isup 0 * :x")
	for {
		m := isupport.read()
		if m.Command == protocol.RPL_ISUPPORT && strings.Contains(m.String(), "CHANMODES=") {
			if !strings.Contains(m.String(), "CHANMODES="+"beI,k,fl,imnstCMR") {
				t.Fatalf("%q", m.String())
			}
			break
		}
	}
}

// +C refuses CTCP but ACTION.
func TestNoCTCPMode(t *testing.T) {
	_, addr := testServer(t)
	op := connect(t, addr, "ctcpop")
	op.join("#quietctcp")
	user := connect(t, addr, "ctcpuser")
	user.join("#quietctcp")
	op.send("MODE #quietctcp +C")
	user.expect("MODE")
	user.send("PRIVMSG #quietctcp :\x01VERSION\x01")
	if m := user.expectNumeric(protocol.ERR_CANNOTSENDTOCHAN); !strings.Contains(m.Param(2), "+C") {
		t.Fatalf("%q", m.String())
	}
	user.send("NOTICE #quietctcp :\x01PING 1\x01", "PRIVMSG #quietctcp :\x01ACTION waves\x01", "PRIVMSG #quietctcp :plain")
	if m, _ := op.expect("PRIVMSG"); m.Param(1) != "\x01ACTION waves\x01" {
		t.Fatalf("%q", m.String())
	}
	for _, m := range op.sync() {
		if m.Command == "NOTICE" {
			t.Fatalf("CTCP reply got through: %q", m.String())
		}
	}
}

// +f sends those +i, +l or +R turns away to another room, one hop only,
// and only a room the setter runs may be the target.
func TestForwardMode(t *testing.T) {
	_, addr := testServer(t)
	op := connect(t, addr, "fwdop")
	op.join("#closed")
	op.join("#lobby")
	op.send("MODE #closed +f #nowhere")
	if m := op.expectNumeric(protocol.ERR_INVALIDMODEPARAM); m.Param(3) != "#nowhere" {
		t.Fatalf("%q", m.String())
	}
	connect(t, addr, "stranger").join("#elsewhere")
	op.send("MODE #closed +f #elsewhere")
	if m := op.expectNumeric(protocol.ERR_CHANOPRIVSNEEDED); m.Param(1) != "#elsewhere" {
		t.Fatalf("%q", m.String())
	}
	op.send("MODE #closed +if #lobby")
	if m, _ := op.expect("MODE"); m.Param(1) != "+if" || m.Param(2) != "#lobby" {
		t.Fatalf("%q", m.String())
	}
	op.send("MODE #closed")
	if m := op.expectNumeric(protocol.RPL_CHANNELMODEIS); m.Param(2) != "+fint" || m.Param(3) != "#lobby" {
		t.Fatalf("324: %q", m.String())
	}

	user := connect(t, addr, "wanderer")
	user.send("JOIN #closed")
	if m := user.expectNumeric(protocol.ERR_LINKCHANNEL); m.Param(1) != "#closed" || m.Param(2) != "#lobby" {
		t.Fatalf("%q", m.String())
	}
	if j, _ := user.expect("JOIN"); j.Param(0) != "#lobby" {
		t.Fatalf("%q", j.String())
	}
	user.expectNumeric(protocol.RPL_ENDOFNAMES)

	// A wrong key is not forwarded.
	op.send("MODE #closed -i+k sesame")
	op.expect("MODE")
	user.send("JOIN #closed")
	user.expectNumeric(protocol.ERR_BADCHANNELKEY)

	// One hop: #lobby forwarding back is not followed.
	op.send("MODE #closed -k+l sesame 1", "MODE #lobby +if #closed")
	op.expect("MODE")
	op.expect("MODE")
	late := connect(t, addr, "late")
	late.send("JOIN #closed")
	late.expectNumeric(protocol.ERR_LINKCHANNEL)
	late.expectNumeric(protocol.ERR_INVITEONLYCHAN)
}

// The new modes and the forward survive a restart of a claimed room.
func TestNewModesPersist(t *testing.T) {
	dir := t.TempDir()
	start := func() (*Server, string) {
		store, err := roomstore.Open(filepath.Join(dir, "rooms.db"))
		if err != nil {
			t.Fatal(err)
		}
		return testServer(t, func(_ *configs.Config, o *Options) { o.Rooms = store })
	}
	srv, addr := start()
	op := registered(t, addr, "keeper")
	op.join("#kept")
	op.join("#target")
	op.send("ROOM CLAIM #kept")
	op.expect("NOTICE")
	op.send("MODE #kept +CMRf #target")
	op.expect("MODE")
	op.sync()
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	_, addr2 := start()
	c := registered(t, addr2, "visitor2")
	c.join("#kept")
	c.send("MODE #kept")
	if m := c.expectNumeric(protocol.RPL_CHANNELMODEIS); m.Param(2) != "+fntCMR" {
		t.Fatalf("324 after restart: %q", m.String())
	}
}
