package daemon

import (
	"encoding/base64"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/internal/syncbuf"
	"github.com/livechat/livechat/protocol"
)

// expectFail reads until a FAIL and checks its command and code.
func (c *client) expectFail(command, code string) protocol.Message {
	c.t.Helper()
	m, _ := c.expect("FAIL")
	if m.Param(0) != command || m.Param(1) != code {
		c.t.Fatalf("got %q, want FAIL %s %s", m.String(), command, code)
	}
	return m
}

func TestNetcatRegisterAndLogin(t *testing.T) {
	_, addr := testServer(t, separateConnections)
	a := dial(t, addr)
	a.send("REGISTER wendy hunter2hunter2")
	ok, _ := a.expect("REGISTER")
	if ok.Param(0) != "SUCCESS" || ok.Param(1) != "wendy" {
		t.Fatalf("got %q", ok.String())
	}
	a.expect(protocol.RPL_LOGGEDIN)
	nick, _ := a.expect("NICK")
	if nick.Param(0) != "wendy" {
		t.Fatalf("nick after REGISTER: %q", nick.String())
	}
	a.nick = "wendy"

	b := connect(t, addr, "bob")
	b.send("WHOIS wendy")
	acct, _ := b.expect(protocol.RPL_WHOISACCOUNT)
	if acct.Param(2) != "wendy" {
		t.Fatalf("330 %q", acct.String())
	}
	b.send("WHOIS bob")
	anon, _ := b.expect(protocol.RPL_WHOISSERVER)
	if !strings.Contains(anon.Param(3), "anonymous") {
		t.Fatalf("312 %q", anon.String())
	}

	// The account's nick is protected from anyone not logged in to it.
	b.send("NICK Wendy")
	m, _ := b.expect(protocol.ERR_NICKNAMEINUSE)
	if !strings.Contains(m.Param(2), "registered") {
		t.Fatalf("433 reason %q", m.Param(2))
	}

	b.send("LOGIN wendy wrong-password")
	b.expectFail("LOGIN", "INVALID_CREDENTIALS")
	b.send("LOGIN wendy hunter2hunter2")
	b.expect(protocol.RPL_LOGGEDIN)
	// wendy's first connection holds the nick and is logged in to the
	// same account, so bob's connection keeps its nick.
	notice, _ := b.expect("NOTICE")
	if !strings.Contains(notice.Param(1), "other connection") {
		t.Fatalf("notice %q", notice.String())
	}
}

func TestLoginTakesNickFromGuest(t *testing.T) {
	_, addr := testServer(t)
	owner := connect(t, addr, "owner")
	owner.send("REGISTER dave correct-horse")
	owner.expect(protocol.RPL_LOGGEDIN)
	owner.expect("NICK")
	owner.send("LOGOUT")
	owner.expect(protocol.RPL_LOGGEDOUT)
	renamed, _ := owner.expect("NICK")
	if !strings.HasPrefix(renamed.Param(0), "guest-") {
		t.Fatalf("after LOGOUT the account nick is released: %q", renamed.String())
	}

	squatter := connect(t, addr, "squatter")
	squatter.join("#room")
	owner.join("#room")
	// Nobody can take "dave" while logged out...
	squatter.send("NICK dave")
	squatter.expect(protocol.ERR_NICKNAMEINUSE)
	// ...and logging in takes it back from whoever holds it.
	owner.send("LOGIN dave correct-horse")
	owner.expect(protocol.RPL_LOGGEDIN)
	got, _ := owner.expect("NICK")
	if got.Param(0) != "dave" {
		t.Fatalf("%q", got.String())
	}
	seen, _ := squatter.expect("NICK")
	if seen.Param(0) != "dave" {
		t.Fatalf("squatter saw %q", seen.String())
	}
}

func TestLoginEvictsGuestHoldingTheNick(t *testing.T) {
	srv, addr := testServer(t)
	owner := connect(t, addr, "someone")
	owner.send("REGISTER erin correct-horse", "QUIT")
	owner.expect("ERROR")

	// REGISTER may not grab a nick someone is using...
	holder := connect(t, addr, "frank")
	registrar := connect(t, addr, "gina")
	registrar.send("REGISTER frank correct-horse")
	registrar.expectFail("REGISTER", "ACCOUNT_EXISTS")
	// ...but an account can come to exist while a guest holds its name
	// (made outside IRC, or racing the nick change); logging in to it
	// then takes the nick back.
	if _, err := srv.accounts.Register(t.Context(), "frank", "correct-horse", ""); err != nil {
		t.Fatal(err)
	}
	registrar.send("LOGIN frank correct-horse")
	registrar.expect(protocol.RPL_LOGGEDIN)
	nick, _ := registrar.expect("NICK")
	if nick.Param(0) != "frank" {
		t.Fatalf("%q", nick.String())
	}
	renamed, _ := holder.expect("NICK")
	if !strings.HasPrefix(renamed.Param(0), "guest-") {
		t.Fatalf("holder renamed to %q", renamed.Param(0))
	}
	why, _ := holder.expect("NOTICE")
	if !strings.Contains(why.Param(1), "belongs to an account") {
		t.Fatalf("%q", why.String())
	}
}

func TestRegisterErrors(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "alice")
	a.send("REGISTER bob short")
	a.expectFail("REGISTER", "WEAK_PASSWORD")
	a.send("REGISTER 9bad long-enough-pw")
	a.expectFail("REGISTER", "BAD_ACCOUNT_NAME")
	a.send("REGISTER guest-1234 long-enough-pw")
	a.expectFail("REGISTER", "BAD_ACCOUNT_NAME")
	b := connect(t, addr, "bob")
	b.send("REGISTER carol long-enough-pw")
	b.expect(protocol.RPL_LOGGEDIN)
	a.send("REGISTER CAROL long-enough-pw")
	a.expectFail("REGISTER", "ACCOUNT_EXISTS")
	b.send("REGISTER other long-enough-pw")
	b.expectFail("REGISTER", "ALREADY_AUTHENTICATED")
	a.send("LOGOUT")
	a.expectFail("LOGOUT", "NOT_LOGGED_IN")
}

func TestFailedLoginsAreThrottled(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "alice")
	a.send("REGISTER target long-enough-pw", "LOGOUT")
	a.expect(protocol.RPL_LOGGEDOUT)
	b := connect(t, addr, "mallory")
	for i := 0; ; i++ {
		b.send("LOGIN target guess" + strings.Repeat("x", i))
		m, _ := b.expect("FAIL")
		if m.Param(1) == "RATE_LIMITED" {
			if !strings.Contains(m.Param(3), "try again in") {
				t.Fatalf("%q", m.String())
			}
			break
		}
		if i > 10 {
			t.Fatal("never throttled")
		}
	}
	// Even the right password is refused while throttled.
	b.send("LOGIN target long-enough-pw")
	b.expectFail("LOGIN", "RATE_LIMITED")
}

func saslPlain(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func TestSASLPlainBeforeRegistration(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "setup")
	a.send("REGISTER ivy correct-horse", "QUIT")
	a.expect("ERROR")

	c := dial(t, addr)
	c.send("CAP LS 302")
	ls := c.capLS()
	if !strings.Contains(ls.String(), "sasl=PLAIN") || !strings.Contains(ls.String(), "draft/account-registration=before-connect") {
		t.Fatalf("CAP LS %q", ls.String())
	}
	c.send("NICK ivy_", "USER ivy 0 * :Ivy", "CAP REQ :sasl")
	ack, _ := c.expect("CAP")
	if ack.Param(1) != "ACK" || ack.Param(2) != "sasl" {
		t.Fatalf("%q", ack.String())
	}
	c.send("AUTHENTICATE PLAIN")
	plus, _ := c.expect("AUTHENTICATE")
	if plus.Param(0) != "+" {
		t.Fatalf("%q", plus.String())
	}
	c.send("AUTHENTICATE " + saslPlain("ivy", "wrong-horse"))
	c.expect(protocol.ERR_SASLFAIL)
	c.send("AUTHENTICATE PLAIN")
	c.expect("AUTHENTICATE")
	c.send("AUTHENTICATE " + saslPlain("ivy", "correct-horse"))
	c.expect(protocol.RPL_LOGGEDIN)
	c.expect(protocol.RPL_SASLSUCCESS)
	c.send("CAP END")
	welcome, _ := c.expect(protocol.RPL_WELCOME)
	if welcome.Param(0) != "ivy" {
		t.Fatalf("nick after SASL: %q", welcome.String())
	}
	c.send("AUTHENTICATE PLAIN")
	c.expect(protocol.ERR_SASLALREADY)
}

// A second connection logging in to the same account by SASL before it
// registers keeps its own nick; the first connection, also logged in,
// keeps the account's name (as with LOGIN).
func TestSASLSecondConnectionOfAnAccount(t *testing.T) {
	_, addr := testServer(t, separateConnections)
	a := dial(t, addr)
	a.send("REGISTER wendy correct-horse")
	a.expect(protocol.RPL_LOGGEDIN)
	a.expect("NICK")
	a.nick = "wendy"

	b := dial(t, addr)
	b.send("CAP REQ :sasl", "NICK wendy_phone", "USER w 0 * :W", "AUTHENTICATE PLAIN")
	b.expect("AUTHENTICATE")
	b.send("AUTHENTICATE " + saslPlain("wendy", "correct-horse"))
	b.expect(protocol.RPL_SASLSUCCESS)
	b.send("CAP END")
	if w, _ := b.expect(protocol.RPL_WELCOME); w.Param(0) != "wendy_phone" {
		t.Errorf("second connection welcomed as %q, want its own nick wendy_phone", w.Param(0))
	}
	if n, _ := b.expect("NOTICE"); !strings.Contains(n.Param(1), "Your other connection is using the nick wendy") {
		t.Errorf("second connection told %q", n.String())
	}
	b.sync()
	for _, m := range a.sync() {
		if m.Command == "NICK" || m.Command == "NOTICE" {
			t.Errorf("first connection was disturbed: %q", m.String())
		}
	}
	a.send("WHOIS wendy")
	if m, _ := a.expect(protocol.RPL_WHOISUSER); m.Param(1) != "wendy" {
		t.Errorf("WHOIS wendy: %q", m.String())
	}
}

func TestSASLErrors(t *testing.T) {
	_, addr := testServer(t)
	c := connect(t, addr, "sam")
	c.send("AUTHENTICATE GSSAPI")
	mechs, _ := c.expect(protocol.RPL_SASLMECHS)
	if mechs.Param(1) != "PLAIN,SCRAM-SHA-256,EXTERNAL,LIVECHAT-TOKEN" {
		t.Fatalf("%q", mechs.String())
	}
	c.expect(protocol.ERR_SASLFAIL)
	c.send("AUTHENTICATE PLAIN", "AUTHENTICATE *")
	c.expect(protocol.ERR_SASLABORTED)
	c.send("AUTHENTICATE PLAIN", "AUTHENTICATE not*base64")
	c.expect(protocol.ERR_SASLFAIL)
	c.send("AUTHENTICATE PLAIN")
	for range 5 {
		c.send("AUTHENTICATE " + strings.Repeat("A", 400))
	}
	c.expect(protocol.ERR_SASLFAIL) // the whole response is too long
	c.send("AUTHENTICATE PLAIN", "AUTHENTICATE "+strings.Repeat("A", 401))
	c.expect(protocol.ERR_SASLTOOLONG) // one chunk is
}

func TestIRCv3RegisterBeforeConnect(t *testing.T) {
	_, addr := testServer(t)
	c := dial(t, addr)
	c.send("CAP LS 302", "NICK newbie", "USER newbie 0 * :New", "CAP REQ :draft/account-registration")
	c.capLS()
	c.expect("CAP")
	c.send("REGISTER * * long-enough-pw")
	ok, _ := c.expect("REGISTER")
	if ok.Param(0) != "SUCCESS" || ok.Param(1) != "newbie" {
		t.Fatalf("%q", ok.String())
	}
	c.expect(protocol.RPL_LOGGEDIN)
	c.send("CAP END")
	welcome, _ := c.expect(protocol.RPL_WELCOME)
	if welcome.Param(0) != "newbie" {
		t.Fatalf("%q", welcome.String())
	}
}

func TestAccountsSurviveRestartAndPasswordsStayOutOfLogs(t *testing.T) {
	dir := t.TempDir()
	logs := &syncbuf.Buffer{}
	start := func() (*Server, string) {
		store, err := accounts.OpenFileStore(filepath.Join(dir, "accounts.db"))
		if err != nil {
			t.Fatal(err)
		}
		return testServer(t, func(_ *configs.Config, o *Options) {
			o.Accounts = store
			o.Logger = zerolog.New(logs).Level(zerolog.DebugLevel)
		})
	}
	srv, addr := start()
	a := dial(t, addr)
	a.send("REGISTER durable s3cret-Passw0rd")
	a.expect(protocol.RPL_LOGGEDIN)
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	_, addr = start()
	b := dial(t, addr)
	b.send("LOGIN durable s3cret-Passw0rd")
	b.expect(protocol.RPL_LOGGEDIN)
	c := dial(t, addr)
	c.send("AUTHENTICATE PLAIN", "AUTHENTICATE "+saslPlain("durable", "Wr0ng-s3cret"))
	c.expect(protocol.ERR_SASLFAIL)
	for _, secret := range []string{"s3cret-Passw0rd", "Wr0ng-s3cret", saslPlain("durable", "Wr0ng-s3cret")} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("a password reached the logs:\n%s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), `"account registered"`) {
		t.Fatalf("registration not logged:\n%s", logs.String())
	}
}

func TestConcurrentRegisterOfOneName(t *testing.T) {
	_, addr := testServer(t)
	const n = 50
	results := make(chan string, n)
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dial(t, addr)
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.conn.Write([]byte("REGISTER popular long-enough-pw\r\n"))
			for {
				m, err := c.tryRead()
				if err != nil {
					results <- "read error: " + err.Error()
					return
				}
				switch {
				case m.Command == "REGISTER" && m.Param(0) == "SUCCESS":
					results <- "ok"
					return
				case m.Command == "FAIL":
					results <- m.Param(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(results)
	counts := map[string]int{}
	for r := range results {
		counts[r]++
	}
	if counts["ok"] != 1 || counts["ACCOUNT_EXISTS"]+counts["TEMPORARILY_UNAVAILABLE"] != n-1 {
		t.Fatalf("results %v, want exactly one ok", counts)
	}
}

func TestSASLFailureStillRegistersAnonymously(t *testing.T) {
	_, addr := testServer(t)
	c := dial(t, addr)
	c.send("CAP LS 302", "NICK hopeful", "USER h 0 * :H", "CAP REQ :sasl", "AUTHENTICATE PLAIN")
	c.expect("AUTHENTICATE")
	c.send("AUTHENTICATE " + saslPlain("nobody", "whatever-pw"))
	c.expect(protocol.ERR_SASLFAIL)
	c.send("CAP END")
	welcome, _ := c.expect(protocol.RPL_WELCOME)
	if welcome.Param(0) != "hopeful" {
		t.Fatalf("%q", welcome.String())
	}
	c.send("WHOIS hopeful")
	anon, _ := c.expect(protocol.RPL_WHOISSERVER)
	if !strings.Contains(anon.Param(3), "anonymous") {
		t.Fatalf("%q", anon.String())
	}
}

func TestCorrectPasswordWorksAfterThrottleDelay(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Accounts.ThrottleFree, c.Accounts.ThrottleDelay, c.Accounts.ThrottleMaxDelay = 1, 50*time.Millisecond, 100*time.Millisecond
	})
	a := connect(t, addr, "alice")
	a.send("REGISTER patient long-enough-pw", "LOGOUT")
	a.expect(protocol.RPL_LOGGEDOUT)
	b := connect(t, addr, "bob")
	for range 3 {
		b.send("LOGIN patient nope-nope-nope")
		b.expect("FAIL")
	}
	b.send("LOGIN patient long-enough-pw")
	b.expectFail("LOGIN", "RATE_LIMITED")
	// The reply said when to retry; retry until then, within a deadline.
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		b.send("LOGIN patient long-enough-pw")
		m := b.read()
		if m.Command == protocol.RPL_LOGGEDIN {
			return
		}
		if m.Command != "FAIL" || m.Param(1) != "RATE_LIMITED" {
			t.Fatalf("%q", m.String())
		}
		time.Sleep(10 * time.Millisecond) // pacing the retries, not waiting for an outcome
	}
	t.Fatal("the correct password never worked after the delay")
}

func TestServerPassword(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) { c.ServerPassword = "letmein" })
	good := dial(t, addr)
	good.send("PASS letmein", "NICK good", "USER good 0 * :Good")
	good.expect(protocol.RPL_WELCOME)
	for _, lines := range [][]string{{"NICK bad", "USER bad 0 * :Bad"}, {"PASS guess", "NICK bad2", "USER bad 0 * :Bad"}, {"JOIN lobby"}} {
		c := dial(t, addr)
		c.send(lines...)
		if m, skipped := c.expect("ERROR"); len(skipped) == 0 || skipped[len(skipped)-1].Command != protocol.ERR_PASSWDMISMATCH {
			t.Fatalf("%v: got %v then %q", lines, commands(skipped), m.String())
		}
	}
}

func TestRegisterBeforeConnectCanBeDisallowed(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) { c.Accounts.RegisterEarly = false })
	c := dial(t, addr)
	c.send("CAP LS 302")
	ls := c.capLS()
	if strings.Contains(ls.String(), "before-connect") {
		t.Fatalf("%q", ls.String())
	}
	c.send("NICK early", "REGISTER * * long-enough-pw")
	c.expectFail("REGISTER", "COMPLETE_CONNECTION_REQUIRED")
}

// Issue 12: strangers guessing from other addresses used to lock the owner
// out ("LOGIN lockme x" four times). Each guesser is still braked.
func TestGuessersElsewhereDoNotLockOutOwner(t *testing.T) {
	_, addr := testServer(t)
	owner := connect(t, addr, "owner")
	owner.send("REGISTER lockme long-enough-pw", "LOGOUT")
	owner.expect(protocol.RPL_LOGGEDOUT)
	for i := 2; i <= 6; i++ {
		g := dialFrom(t, addr, "127.0.0."+strconv.Itoa(i))
		for range 4 {
			g.send("LOGIN lockme wrong-password")
			g.expectFail("LOGIN", "INVALID_CREDENTIALS")
		}
		g.send("LOGIN lockme wrong-password")
		g.expectFail("LOGIN", "RATE_LIMITED")
		g.send("LOGIN lockme long-enough-pw") // the brake holds even for a lucky guess
		g.expectFail("LOGIN", "RATE_LIMITED")
	}
	owner.send("LOGIN lockme long-enough-pw")
	owner.expect(protocol.RPL_LOGGEDIN)
}
