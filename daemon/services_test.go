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

	g.send("PRIVMSG NickServ :IDENTIFY hunter2hunter2", "MSG NickServ IDENTIFY hunter2hunter2", "NOTICE NickServ :IDENTIFY hunter2hunter2")
	for range 2 {
		if m, _ := g.expect(protocol.ERR_NOSUCHNICK); m.Param(1) != "NickServ" {
			t.Fatalf("%q", m.String())
		}
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
