package daemon

import (
	"bytes"
	"encoding/base64"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
)

// lockedBuffer collects the server's log for grepping.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newToken asks for a login token and returns it with its id.
func (c *client) newToken(label string) (id, token string) {
	c.t.Helper()
	c.send("TOKEN NEW " + label)
	m, _ := c.expect("TOKEN")
	if m.Param(0) != "NEW" || m.Param(1) == "" || !strings.HasPrefix(m.Param(2), m.Param(1)+".") {
		c.t.Fatalf("TOKEN NEW: %q", m.String())
	}
	return m.Param(1), m.Param(2)
}

func saslToken(account, token string) string {
	return base64.StdEncoding.EncodeToString([]byte(account + "\x00" + token))
}

func TestLoginTokens(t *testing.T) {
	var logs lockedBuffer
	_, addr := testServer(t, func(_ *configs.Config, o *Options) {
		o.Logger = zerolog.New(&logs).Level(zerolog.DebugLevel)
	})
	a := connect(t, addr, "setup")
	a.send("TOKEN NEW web")
	a.expectFail("TOKEN", "NOT_LOGGED_IN")
	a.send("REGISTER wendy hunter2hunter2")
	a.expect(protocol.RPL_LOGGEDIN)
	id, tok := a.newToken("web page")

	// TOKEN LOGIN, the netcat and web page way.
	b := connect(t, addr, "bee")
	b.send("TOKEN LOGIN wendy " + tok)
	if m, _ := b.expect(protocol.RPL_LOGGEDIN); m.Param(2) != "wendy" {
		t.Fatalf("token login: %q", m.String())
	}
	b.send("TOKEN LOGIN wendy " + tok)
	b.expectFail("TOKEN", "ALREADY_AUTHENTICATED")

	// SASL LIVECHAT-TOKEN before registration, the IRC client way: the
	// connection arrives with the account's nick.
	c := dial(t, addr)
	c.send("CAP LS 302")
	if ls := c.capLS(); !strings.Contains(ls.String(), "sasl=PLAIN,SCRAM-SHA-256,EXTERNAL,LIVECHAT-TOKEN") {
		t.Fatalf("CAP LS %q", ls.String())
	}
	c.send("NICK wendy_", "USER w 0 * :W", "CAP REQ :sasl", "AUTHENTICATE LIVECHAT-TOKEN")
	if plus, _ := c.expect("AUTHENTICATE"); plus.Param(0) != "+" {
		t.Fatalf("%q", plus.String())
	}
	c.send("AUTHENTICATE " + saslToken("wendy", tok+"x"))
	if m, _ := c.expect(protocol.ERR_SASLFAIL); !strings.Contains(m.String(), "revoked or expired") {
		t.Fatalf("bad token: %q", m.String())
	}
	c.send("AUTHENTICATE LIVECHAT-TOKEN")
	c.expect("AUTHENTICATE")
	c.send("AUTHENTICATE " + saslToken("WENDY", tok))
	c.expect(protocol.RPL_SASLSUCCESS)
	c.send("CAP END")
	c.expect(protocol.RPL_WELCOME)

	// LIST shows the one token, without the secret.
	a.send("TOKEN LIST")
	m, skipped := a.expect("TOKEN")
	if m.Param(0) != "LIST" || m.Param(1) != id || m.Param(5) != "web page" || strings.Contains(m.String(), tok) {
		t.Fatalf("TOKEN LIST: %q (after %v)", m.String(), commands(skipped))
	}
	if end, _ := a.expect("TOKEN"); end.Param(0) != "END" {
		t.Fatalf("TOKEN LIST end: %q", end.String())
	}

	// Revoked, it is refused with a clear error.
	a.send("TOKEN REVOKE " + id)
	if m, _ := a.expect("TOKEN"); m.Param(0) != "REVOKED" || m.Param(1) != id {
		t.Fatalf("revoke: %q", m.String())
	}
	a.send("TOKEN REVOKE " + id)
	a.expectFail("TOKEN", "NO_SUCH_TOKEN")
	d := connect(t, addr, "dee")
	d.send("TOKEN LOGIN wendy " + tok)
	if f := d.expectFail("TOKEN", "INVALID_TOKEN"); !strings.Contains(f.String(), "log in with your password") {
		t.Fatalf("%q", f.String())
	}

	// LOGOUT ALL revokes the rest and closes the other connections.
	_, tok2 := a.newToken("")
	a.send("LOGOUT ALL")
	if n, _ := a.expect("NOTICE"); !strings.Contains(n.Param(1), "Revoked 1 login tokens and closed 2 other connections") {
		t.Fatalf("LOGOUT ALL: %q", n.String())
	}
	a.expect(protocol.RPL_LOGGEDOUT)
	for _, other := range []*client{b, c} {
		if e, _ := other.expect("ERROR"); !strings.Contains(e.Param(0), "Logged out everywhere") {
			t.Fatalf("other connection: %q", e.String())
		}
	}
	d.send("TOKEN LOGIN wendy " + tok2)
	d.expectFail("TOKEN", "INVALID_TOKEN")
	a.send("LOGOUT ALL")
	a.expectFail("LOGOUT", "NOT_LOGGED_IN")
	a.sync()

	log := logs.String()
	if !strings.Contains(log, "login token issued") || !strings.Contains(log, `"method":"token"`) {
		t.Fatalf("the log lacks the token events:\n%s", log)
	}
	for _, secret := range []string{tok, tok2, strings.SplitN(tok, ".", 2)[1], strings.SplitN(tok2, ".", 2)[1]} {
		if strings.Contains(log, secret) {
			t.Fatalf("a token secret is in the log:\n%s", log)
		}
	}
}

// Wrong tokens count as failed logins of their address: after the free
// ones, the address waits, even with a good token or password.
func TestWrongTokensThrottled(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "setup")
	a.send("REGISTER ivy correct-horse")
	a.expect(protocol.RPL_LOGGEDIN)
	_, tok := a.newToken("")
	g := connect(t, addr, "guesser")
	for i := range 4 {
		g.send("TOKEN LOGIN ivy 0123456789abcdef." + strings.Repeat("A", 43))
		if f := g.expectFail("TOKEN", "INVALID_TOKEN"); f.Param(2) != "ivy" {
			t.Fatalf("guess %d: %q", i, f.String())
		}
	}
	g.send("TOKEN LOGIN ivy " + tok)
	g.expectFail("TOKEN", "RATE_LIMITED")
	g.send("LOGIN ivy correct-horse")
	g.expectFail("LOGIN", "RATE_LIMITED")
}

func TestTokenUsage(t *testing.T) {
	_, addr := testServer(t)
	c := connect(t, addr, "sam")
	for _, tc := range []struct{ line, code string }{
		{"TOKEN", protocol.ERR_NEEDMOREPARAMS},
		{"TOKEN FROB", "UNKNOWN_COMMAND"},
		{"TOKEN LOGIN sam", "NEED_MORE_PARAMS"},
		{"TOKEN LIST", "NOT_LOGGED_IN"},
		{"TOKEN REVOKE ALL", "NOT_LOGGED_IN"},
	} {
		c.send(tc.line)
		for {
			m := c.read()
			if m.Command == tc.code || (m.Command == "FAIL" && m.Param(1) == tc.code) {
				break
			}
			if m.Command == "FAIL" || strings.HasPrefix(m.Command, "4") {
				t.Fatalf("%s: got %q, want %s", tc.line, m.String(), tc.code)
			}
		}
	}
	c.send("AUTHENTICATE LIVECHAT-TOKEN")
	c.expect("AUTHENTICATE")
	c.send("AUTHENTICATE " + base64.StdEncoding.EncodeToString([]byte("no-nul-here")))
	if m, _ := c.expect(protocol.ERR_SASLFAIL); !strings.Contains(m.String(), "malformed") {
		t.Fatalf("%q", m.String())
	}
}
