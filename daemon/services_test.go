package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/protocol"
)

// Service names (NickServ, ...) are neither accounts nor nicks, and what
// is sent to them reaches nobody: clients that auto-identify send their
// password there.
func TestServiceNamesAreReserved(t *testing.T) {
	_, addr := testServer(t)
	listener := connect(t, addr, "listener")
	listener.join("#nickserv") // MSG's room fallback must not catch it either

	g := dial(t, addr)
	g.send("REGISTER NickServ long-enough-pw")
	if m := g.expectFail("REGISTER", "BAD_ACCOUNT_NAME"); !strings.Contains(m.Param(3), "reserved") {
		t.Fatalf("%q", m.String())
	}
	for _, nick := range []string{"NickServ", "chanserv", "SaslServ", "Global"} {
		g.send("NICK " + nick)
		if m, _ := g.expect(protocol.ERR_ERRONEUSNICKNAME); m.Param(1) != nick || !strings.Contains(m.Param(2), "reserved") {
			t.Fatalf("%q", m.String())
		}
	}
	pre := dial(t, addr)
	pre.send("NICK NickServ", "USER x 0 * :x")
	pre.expect(protocol.ERR_ERRONEUSNICKNAME)

	// NickServ answers (services.go); a NOTICE is not answered; other
	// reserved names reach nobody.
	g.send("PRIVMSG NickServ :IDENTIFY hunter2hunter2", "MSG NickServ IDENTIFY hunter2hunter2", "NOTICE NickServ :IDENTIFY hunter2hunter2", "PRIVMSG Global :IDENTIFY hunter2hunter2")
	for range 2 {
		if m, _ := g.expect("NOTICE"); !strings.HasPrefix(m.Source, "NickServ!") || !strings.Contains(m.Param(1), "Wrong account name or password") {
			t.Fatalf("%q", m.String())
		}
	}
	if m, _ := g.expect(protocol.ERR_NOSUCHNICK); m.Param(1) != "Global" {
		t.Fatalf("%q", m.String())
	}
	g.sync()
	// The bystander is served and saw none of it.
	for _, m := range listener.sync() {
		if strings.Contains(m.String(), "hunter2") {
			t.Fatalf("password leaked: %q", m.String())
		}
	}
}

// An account registered under a service name before names were reserved
// still logs in, but does not get the name as its nick.
func TestExistingServiceAccountStillLogsIn(t *testing.T) {
	store := accounts.NewMemoryStore()
	hash, err := accounts.HashPassword("long-enough-pw", accounts.Params{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Create(context.Background(), accounts.Account{Name: "NickServ", Hash: hash, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	_, addr := testServer(t, func(_ *configs.Config, o *Options) { o.Accounts = store })
	c := connect(t, addr, "old")
	c.send("LOGIN NickServ long-enough-pw")
	c.expect(protocol.RPL_LOGGEDIN)
	if m, _ := c.expect("NOTICE"); !strings.Contains(m.Param(1), "reserved") {
		t.Fatalf("%q", m.String())
	}
	c.send("WHOIS old")
	if m, _ := c.expect(protocol.RPL_WHOISACCOUNT); m.Param(2) != "NickServ" {
		t.Fatalf("%q", m.String())
	}
}

// expectService reads until a NOTICE from svc arrives and returns its text.
func (c *client) expectService(svc string) string {
	c.t.Helper()
	for {
		m, _ := c.expect("NOTICE")
		if strings.HasPrefix(m.Source, svc+"!") {
			return m.Param(1)
		}
	}
}

// NickServ's commands are LOGIN, REGISTER, ... under other names, with
// their errors as NOTICEs.
func TestNickServ(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "nsuser")
	a.send("PRIVMSG NickServ :REGISTER short")
	if got := a.expectService("NickServ"); !strings.Contains(got, "at least") {
		t.Fatalf("weak password: %q", got)
	}
	a.send("PRIVMSG NickServ :REGISTER long-enough-pw me@example.org")
	a.expect(protocol.RPL_LOGGEDIN)
	if got := a.expectService("NickServ"); !strings.Contains(got, "registered") {
		t.Fatalf("%q", got)
	}
	a.send("NS INFO")
	if got := a.expectService("NickServ"); !strings.HasPrefix(got, "Account nsuser, registered") {
		t.Fatalf("%q", got)
	}
	if got := a.expectService("NickServ"); got != "nsuser is online" {
		t.Fatalf("%q", got)
	}
	a.send("NS SET PASSWORD new-long-password")
	if got := a.expectService("NickServ"); !strings.Contains(got, "changed") {
		t.Fatalf("%q", got)
	}

	// IDENTIFY with the new password, from a second connection; the old
	// one is refused, with LOGIN's words.
	b := connect(t, addr, "other")
	b.send("PRIVMSG NickServ :IDENTIFY nsuser long-enough-pw")
	if got := b.expectService("NickServ"); got != "Wrong account name or password" {
		t.Fatalf("%q", got)
	}
	b.send("NICKSERV IDENTIFY nsuser new-long-password")
	b.expect(protocol.RPL_LOGGEDIN)
	b.expectService("NickServ")

	// GHOST disconnects one's other connection.
	b.send("PRIVMSG NickServ :GHOST nsuser")
	if got := b.expectService("NickServ"); got != "nsuser is disconnected" {
		t.Fatalf("%q", got)
	}
	if m, _ := a.expect("ERROR"); !strings.Contains(m.Param(0), "GHOST") {
		t.Fatalf("%q", m.String())
	}

	// RECOVER takes the account's nick back from a stranger.
	connect(t, addr, "thief")
	b.send("NS GHOST thief")
	if got := b.expectService("NickServ"); !strings.Contains(got, "neither") {
		t.Fatalf("%q", got)
	}

	// DROP wants the account named, then deletes it and logs out.
	b.send("NS DROP")
	if got := b.expectService("NickServ"); !strings.Contains(got, "to confirm") {
		t.Fatalf("%q", got)
	}
	b.send("NS DROP nsuser")
	if got := b.expectService("NickServ"); got != "The account nsuser is deleted" {
		t.Fatalf("%q", got)
	}
	b.expect(protocol.RPL_LOGGEDOUT)
	b.send("NS INFO nsuser")
	if got := b.expectService("NickServ"); got != "nsuser is not a registered account" {
		t.Fatalf("%q", got)
	}
	b.send("NS HELP")
	if got := b.expectService("NickServ"); !strings.Contains(got, "NickServ") {
		t.Fatalf("%q", got)
	}
	b.send("NS FROB")
	for {
		if got := b.expectService("NickServ"); strings.HasPrefix(got, "Unknown command FROB") {
			break
		}
	}
}

// RECOVER renames whoever holds the account's nick to a guest.
func TestNickServRecover(t *testing.T) {
	_, addr := testServer(t, separateConnections)
	owner := connect(t, addr, "recov")
	owner.send("REGISTER recov long-enough-pw", "LOGOUT")
	owner.expect(protocol.RPL_LOGGEDOUT)
	owner.expect("NICK") // became a guest: the nick is the account's
	owner.send("LOGIN recov long-enough-pw")
	owner.expect(protocol.RPL_LOGGEDIN)
	owner.expect("NICK")
	// The owner's second connection, still a guest, takes the nick back.
	second := connect(t, addr, "second")
	second.send("NS IDENTIFY recov long-enough-pw")
	second.expect(protocol.RPL_LOGGEDIN)
	second.expectService("NickServ")
	second.send("NS RECOVER recov")
	if m, _ := second.expect("NICK"); m.Param(0) != "recov" {
		t.Fatalf("%q", m.String())
	}
	if got := second.expectService("NickServ"); got != "You are recov again" {
		t.Fatalf("%q", got)
	}
	if m, _ := owner.expect("NICK"); !strings.HasPrefix(m.Param(0), "guest-") {
		t.Fatalf("%q", m.String())
	}
}

// ChanServ's commands are ROOM CLAIM/DROP, OP, DEOP.
func TestChanServ(t *testing.T) {
	_, addr := testServer(t)
	op := connect(t, addr, "csop")
	op.send("REGISTER csop long-enough-pw")
	op.expect(protocol.RPL_LOGGEDIN)
	op.join("#cs")
	user := connect(t, addr, "csuser")
	user.join("#cs")

	op.send("PRIVMSG ChanServ :INFO #cs")
	if got := op.expectService("ChanServ"); !strings.Contains(got, "not owned") {
		t.Fatalf("%q", got)
	}
	op.send("PRIVMSG ChanServ :REGISTER #cs")
	if m, _ := op.expect("NOTICE"); !strings.Contains(m.Param(1), "is now owned by csop") {
		t.Fatalf("%q", m.String())
	}
	op.send("CS INFO #cs")
	if got := op.expectService("ChanServ"); !strings.HasPrefix(got, "#cs is owned by csop") {
		t.Fatalf("%q", got)
	}
	op.send("CS OP #cs csuser")
	if m, _ := user.expect("MODE"); m.Param(1) != "+o" || m.Param(2) != "csuser" {
		t.Fatalf("%q", m.String())
	}
	op.send("CS DEOP #cs csuser")
	if m, _ := user.expect("MODE"); m.Param(1) != "-o" {
		t.Fatalf("%q", m.String())
	}
	user.send("CS OP #cs")
	user.expectNumeric(protocol.ERR_CHANOPRIVSNEEDED)
	user.send("CS INFO #nowhere")
	if got := user.expectService("ChanServ"); got != "No such room" {
		t.Fatalf("%q", got)
	}
	op.send("CS DROP #cs")
	if m, _ := op.expect("NOTICE"); !strings.Contains(m.Param(1), "no longer owned") {
		t.Fatalf("%q", m.String())
	}
}
