package daemon

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/bans"
	"github.com/livechat/livechat/protocol"
)

// oper connects nick from 127.0.0.1 as a server operator.
func oper(t *testing.T, addr, nick string) *client {
	t.Helper()
	c := connect(t, addr, nick)
	c.send("OPER boss boss-pw")
	c.expect(protocol.RPL_YOUREOPER)
	return c
}

// expectBanned reads until the server closes c for a ban with reason.
func (c *client) expectBanned(reason string) {
	c.t.Helper()
	if m, _ := c.expect("ERROR"); m.Param(0) != "Banned: "+reason {
		c.t.Fatalf("%s: %q", c.nick, m.String())
	}
}

// A KLINE closes the connections it covers at once and refuses them at
// registration; it is listed, and lifted by UNKLINE.
func TestKLine(t *testing.T) {
	srv, addr := testServer(t, withOperator(t))
	victim := dialFrom(t, addr, "127.0.0.5")
	victim.register("victim")
	bystander := dialFrom(t, addr, "127.0.0.6")
	bystander.register("bystander")

	bystander.send("KLINE victim :no")
	bystander.expectNumeric(protocol.ERR_NOPRIVILEGES)
	bystander.send("STATS k")
	bystander.expectNumeric(protocol.ERR_NOPRIVILEGES)

	op := oper(t, addr, "boss")
	op.send("KLINE 10 victim :spamming the lobby")
	if m, _ := op.expect("NOTICE"); !strings.Contains(m.Param(1), "KLINE *!*@127.0.0.5 until") || !strings.Contains(m.Param(1), "closed 1") {
		t.Fatalf("%q", m.String())
	}
	victim.expectNumeric(protocol.ERR_YOUREBANNEDCREEP)
	victim.expectBanned("spamming the lobby")

	again := dialFrom(t, addr, "127.0.0.5")
	again.send("NICK again", "USER again 0 * :x")
	again.expectNumeric(protocol.ERR_YOUREBANNEDCREEP)
	again.expectBanned("spamming the lobby")

	for _, cmd := range []string{"KLINE", "STATS k"} {
		op.send(cmd)
		m := op.expectNumeric(protocol.RPL_STATSKLINE)
		if m.Param(1) != "K" || m.Param(2) != "*!*@127.0.0.5" || m.Param(4) == "0" || m.Param(5) != "boss" || m.Param(6) != "spamming the lobby" {
			t.Fatalf("%s: %q", cmd, m.String())
		}
		op.expectNumeric(protocol.RPL_ENDOFSTATS)
	}
	if n := sample(t, scrape(t, srv), `livechat_connections_refused_total{reason="kline"}`); n != 2 {
		t.Errorf(`refused{reason="kline"} = %v, want 2`, n)
	}

	op.send("UNKLINE 127.0.0.6@*") // no such ban
	op.expectNumeric(protocol.ERR_UNKNOWNERROR)
	op.send("UNKLINE *!*@127.0.0.5")
	if m, _ := op.expect("NOTICE"); !strings.Contains(m.Param(1), "lifted") {
		t.Fatalf("%q", m.String())
	}
	back := dialFrom(t, addr, "127.0.0.5")
	back.register("back")
	bystander.sync() // untouched throughout

	op.send("KLINE *", "KLINE $a:*", "KLINE boss", "DLINE 127.0.0.0/8")
	for range 4 {
		op.expectNumeric(protocol.ERR_UNKNOWNERROR)
	}
}

// A KLINE on an account closes its connections, and any that logs in to it.
func TestKLineAccount(t *testing.T) {
	_, addr := testServer(t, withOperator(t))
	u := connect(t, addr, "badacct")
	u.send("REGISTER badacct long-enough-pw", "LOGOUT")
	u.expect(protocol.RPL_LOGGEDOUT)
	op := oper(t, addr, "boss")
	op.send("KLINE $a:badacct :account banned")
	op.expect("NOTICE")
	u.send("LOGIN badacct long-enough-pw")
	u.expectBanned("account banned")
}

// A DLINE refuses connections from its range before they say anything,
// and closes those already open.
func TestDLine(t *testing.T) {
	srv, addr := testServer(t, withOperator(t))
	inside := dialFrom(t, addr, "127.0.0.10")
	inside.register("inside")
	op := oper(t, addr, "boss")
	op.send("DLINE 0.0.0.0/0 :everyone")
	op.expectNumeric(protocol.ERR_UNKNOWNERROR)
	op.send("DLINE 1h 127.0.0.8/30 :a bad range")
	op.expect("NOTICE")
	inside.expectBanned("a bad range")

	refused := dialFrom(t, addr, "127.0.0.9")
	if m := refused.read(); m.Command != "ERROR" || m.Param(0) != "Banned: a bad range" {
		t.Fatalf("%q", m.String())
	}
	outside := dialFrom(t, addr, "127.0.0.12")
	outside.register("outside")

	op.send("DLINE")
	if m := op.expectNumeric(protocol.RPL_STATSKLINE); m.Param(1) != "D" || m.Param(2) != "127.0.0.8/30" {
		t.Fatalf("%q", m.String())
	}
	if n := sample(t, scrape(t, srv), `livechat_connections_refused_total{reason="dline"}`); n != 2 {
		t.Errorf(`refused{reason="dline"} = %v, want 2`, n)
	}
	op.send("UNDLINE 127.0.0.8/30")
	op.expect("NOTICE")
	dialFrom(t, addr, "127.0.0.9").register("welcome")
}

// Bans are kept in data_dir across a restart.
func TestBansSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bans.json")
	start := func() (*Server, string) {
		store, err := bans.OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return testServer(t, withOperator(t), func(_ *configs.Config, o *Options) { o.Bans = store })
	}
	srv, addr := start()
	op := oper(t, addr, "boss")
	op.send("DLINE 127.0.0.20 :kept", "KLINE nobody!*@* :kept too")
	op.expect("NOTICE")
	op.expect("NOTICE")
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, addr = start()
	if m := dialFrom(t, addr, "127.0.0.20").read(); m.Command != "ERROR" || m.Param(0) != "Banned: kept" {
		t.Fatalf("%q", m.String())
	}
	c := dial(t, addr)
	c.send("NICK nobody", "USER x 0 * :x")
	c.expectBanned("kept too")
}
