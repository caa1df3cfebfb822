package daemon

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"net"
	"strings"
	"testing"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/daemon/accounts/accountstest"
	"github.com/livechat/livechat/protocol"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// challenge reads the next AUTHENTICATE and decodes it.
func (c *client) challenge() string {
	c.t.Helper()
	m, _ := c.expect("AUTHENTICATE")
	if m.Param(0) == "+" {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(m.Param(0))
	if err != nil {
		c.t.Fatalf("AUTHENTICATE %q: %v", m.Param(0), err)
	}
	return string(raw)
}

// scram runs SCRAM-SHA-256 with sc up to the server's reply to
// client-final, which it returns (AUTHENTICATE or a numeric).
func (c *client) scram(sc *accountstest.SCRAMClient) protocol.Message {
	c.t.Helper()
	c.send("AUTHENTICATE SCRAM-SHA-256")
	if ch := c.challenge(); ch != "" {
		c.t.Fatalf("first challenge %q, want +", ch)
	}
	c.send("AUTHENTICATE " + b64(sc.First()))
	m := c.read()
	if m.Command != "AUTHENTICATE" {
		return m
	}
	raw, _ := base64.StdEncoding.DecodeString(m.Param(0))
	final, err := sc.Final(string(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	c.send("AUTHENTICATE " + b64(final))
	return c.read()
}

// scramLogin runs a whole successful exchange, server signature checked.
func (c *client) scramLogin(sc *accountstest.SCRAMClient) {
	c.t.Helper()
	m := c.scram(sc)
	if m.Command != "AUTHENTICATE" {
		c.t.Fatalf("after client-final: %q", m.String())
	}
	raw, _ := base64.StdEncoding.DecodeString(m.Param(0))
	if err := sc.Verify(string(raw)); err != nil {
		c.t.Fatal(err)
	}
	c.send("AUTHENTICATE +")
	c.expect(protocol.RPL_LOGGEDIN)
	c.expect(protocol.RPL_SASLSUCCESS)
}

// TestSASLSCRAM: an account registered over IRC logs in by SCRAM-SHA-256
// before connection registration and gets its nick; the password never
// crosses the wire.
func TestSASLSCRAM(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "xavier")
	a.send("REGISTER xavier correct-horse")
	a.expect(protocol.RPL_LOGGEDIN)
	// Logged out, a becomes a guest at once and frees the nick (a QUIT
	// would free it only once its session has ended).
	a.send("LOGOUT")
	a.expect(protocol.RPL_LOGGEDOUT)
	if m, _ := a.expect("NICK"); !strings.HasPrefix(m.Param(0), "guest-") {
		t.Fatalf("after LOGOUT: %q", m.String())
	}

	c := dial(t, addr)
	c.send("CAP LS 302")
	if ls := c.capLS(); !strings.Contains(ls.String(), "sasl="+saslMechs) || saslMechs != "PLAIN,SCRAM-SHA-256,EXTERNAL,LIVECHAT-TOKEN" {
		t.Fatalf("CAP LS %q", ls.String())
	}
	c.send("NICK x_", "USER x 0 * :X", "CAP REQ :sasl")
	c.expect("CAP")
	c.scramLogin(&accountstest.SCRAMClient{User: "Xavier", Password: "correct-horse"})
	c.send("CAP END")
	if w, _ := c.expect(protocol.RPL_WELCOME); w.Param(0) != "xavier" {
		t.Fatalf("welcomed as %q", w.Param(0))
	}
	c.send("AUTHENTICATE SCRAM-SHA-256")
	c.expect(protocol.ERR_SASLALREADY)

	// Acting as another account is refused.
	d := connect(t, addr, "dora")
	if m := d.scram(&accountstest.SCRAMClient{User: "xavier", Password: "correct-horse", AuthzID: "dora"}); m.Command != protocol.ERR_SASLFAIL || !strings.Contains(m.Param(1), "another account") {
		t.Fatalf("authzid of another: %q", m.String())
	}
	// Abort midway, then a fresh exchange works.
	d.send("AUTHENTICATE SCRAM-SHA-256")
	d.challenge()
	d.send("AUTHENTICATE " + b64((&accountstest.SCRAMClient{User: "xavier"}).First()))
	d.challenge()
	d.send("AUTHENTICATE *")
	d.expect(protocol.ERR_SASLABORTED)
	d.send("AUTHENTICATE SCRAM-SHA-256", "AUTHENTICATE "+b64("garbage"))
	d.challenge()
	if m, _ := d.expect(protocol.ERR_SASLFAIL); !strings.Contains(m.Param(1), "malformed") {
		t.Fatalf("garbage: %q", m.String())
	}
	d.scramLogin(&accountstest.SCRAMClient{User: "xavier", Password: "correct-horse"})
}

// TestSASLSCRAMWrongPasswordThrottled: a wrong SCRAM proof is a 904, and
// wrong proofs lock the address out as wrong PLAIN passwords do; PLAIN is
// locked out with it.
func TestSASLSCRAMWrongPasswordThrottled(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Accounts.ThrottleFree, c.Accounts.ThrottleDelay, c.Accounts.ThrottleMaxDelay = 2, 60e9, 120e9
	})
	a := connect(t, addr, "yolanda")
	a.send("REGISTER yolanda correct-horse")
	a.expect(protocol.RPL_LOGGEDIN)

	c := connect(t, addr, "mallory")
	for i := range 3 {
		m := c.scram(&accountstest.SCRAMClient{User: "yolanda", Password: "wrong-horse"})
		if m.Command != protocol.ERR_SASLFAIL || !strings.Contains(m.Param(1), "Wrong account name or password") {
			t.Fatalf("wrong password %d: %q", i, m.String())
		}
	}
	// Locked out now: refused at client-first, before any salt is given.
	if m := c.scram(&accountstest.SCRAMClient{User: "yolanda", Password: "correct-horse"}); m.Command != protocol.ERR_SASLFAIL || !strings.Contains(m.Param(1), "Too many failed logins") {
		t.Fatalf("SCRAM while locked out: %q", m.String())
	}
	c.send("AUTHENTICATE PLAIN")
	c.challenge()
	c.send("AUTHENTICATE " + saslPlain("yolanda", "correct-horse"))
	if m, _ := c.expect(protocol.ERR_SASLFAIL); !strings.Contains(m.Param(1), "Too many failed logins") {
		t.Fatalf("PLAIN while locked out: %q", m.String())
	}
}

// TestSASLSCRAMMigration: an account stored before SCRAM existed (an
// argon2id hash only) fails SCRAM with a 904 and a notice saying what to
// do; after one PLAIN login, SCRAM works.
func TestSASLSCRAMMigration(t *testing.T) {
	store := accounts.NewMemoryStore()
	hash, err := accounts.HashPassword("correct-horse", accounts.Params{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Create(t.Context(), accounts.Account{Name: "zoe", Hash: hash}); err != nil {
		t.Fatal(err)
	}
	_, addr := testServer(t, func(_ *configs.Config, o *Options) { o.Accounts = store })

	c := connect(t, addr, "z1")
	c.send("AUTHENTICATE SCRAM-SHA-256")
	c.challenge()
	c.send("AUTHENTICATE " + b64((&accountstest.SCRAMClient{User: "zoe"}).First()))
	m := c.read()
	if m.Command != "NOTICE" || !strings.Contains(m.Param(1), "Log in once with your password") {
		t.Fatalf("want a notice first, got %q", m.String())
	}
	if m := c.read(); m.Command != protocol.ERR_SASLFAIL || !strings.Contains(m.Param(1), "no SCRAM-SHA-256 keys yet; log in once with PLAIN") {
		t.Fatalf("SCRAM before migration: %q", m.String())
	}
	c.send("AUTHENTICATE PLAIN")
	c.challenge()
	c.send("AUTHENTICATE " + saslPlain("zoe", "correct-horse"))
	c.expect(protocol.RPL_SASLSUCCESS)

	if a, _ := store.Get(t.Context(), "zoe"); a.SCRAM == "" || a.Hash != hash {
		t.Fatalf("after the PLAIN login: %+v", a)
	}
	d := connect(t, addr, "z2")
	d.scramLogin(&accountstest.SCRAMClient{User: "zoe", Password: "correct-horse"})
}

// tlsServer adds a TLS listener that asks for (and does not require)
// client certificates, as livechatd's does.
func tlsServer(t *testing.T, srv *Server) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l, "tls") // Shutdown at cleanup closes it
	return l.Addr().String()
}

func dialTLSWith(t *testing.T, addr string, cert *tls.Certificate) *client {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true} // a test server's throwaway certificate
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func fingerprint(cert tls.Certificate) string {
	sum := sha256.Sum256(cert.Certificate[0])
	return hex.EncodeToString(sum[:])
}

// TestSASLExternalCertFP: over a TLS listener with a client certificate,
// CERTFP ADD registers it, and a later connection with it logs in by
// SASL EXTERNAL. WHOIS shows the fingerprint to the user and operators
// only. CERTFP LIST and DEL manage them.
func TestSASLExternalCertFP(t *testing.T) {
	srv, addr := testServer(t, withOperator(t))
	tlsAddr := tlsServer(t, srv)
	cert, other := selfSigned(t), selfSigned(t)
	fp := fingerprint(cert)

	a := dialTLSWith(t, tlsAddr, &cert)
	a.register("quinn")
	a.send("CERTFP ADD")
	a.expectFail("CERTFP", "NOT_LOGGED_IN")
	// EXTERNAL with an unregistered certificate says what to do.
	a.send("AUTHENTICATE EXTERNAL")
	a.challenge()
	a.send("AUTHENTICATE +")
	if m, _ := a.expect(protocol.ERR_SASLFAIL); !strings.Contains(m.Param(1), fp) || !strings.Contains(m.Param(1), "CERTFP ADD") {
		t.Fatalf("unregistered certificate: %q", m.String())
	}
	a.send("REGISTER quinn correct-horse")
	a.expect(protocol.RPL_LOGGEDIN)
	a.send("CERTFP ADD")
	if m, _ := a.expect("CERTFP"); m.Param(0) != "ADDED" || m.Param(1) != fp {
		t.Fatalf("CERTFP ADD: %q", m.String())
	}
	a.send("CERTFP ADD " + strings.ToUpper(fingerprint(other)))
	if m, _ := a.expect("CERTFP"); m.Param(0) != "ADDED" || m.Param(1) != fingerprint(other) {
		t.Fatalf("CERTFP ADD <fp>: %q", m.String())
	}
	a.send("CERTFP LIST")
	m, lines := a.expect("CERTFP")
	for m.Param(0) == "LIST" {
		lines = append(lines, m)
		m, _ = a.expect("CERTFP")
	}
	if m.Param(0) != "END" || len(lines) != 2 || !strings.Contains(strings.Join([]string{lines[0].String(), lines[1].String()}, "\n"), fp+" :registered; this connection's") {
		t.Fatalf("CERTFP LIST: %v then %q", lines, m.String())
	}
	a.send("WHOIS quinn")
	if m, _ := a.expect(protocol.RPL_WHOISCERTFP); m.Param(2) != "has client certificate fingerprint "+fp {
		t.Fatalf("276: %q", m.String())
	}

	// Another user's WHOIS does not show it; an operator's does.
	b := connect(t, addr, "peeker")
	b.send("WHOIS quinn")
	_, seen := b.expect(protocol.RPL_ENDOFWHOIS)
	for _, m := range seen {
		if m.Command == protocol.RPL_WHOISCERTFP {
			t.Fatalf("a stranger saw %q", m.String())
		}
	}
	b.send("OPER boss boss-pw")
	b.expect(protocol.RPL_YOUREOPER)
	b.send("WHOIS quinn")
	b.expect(protocol.RPL_WHOISCERTFP)

	// A new connection with the certificate logs in by EXTERNAL before
	// registering, with an authzid or without.
	for _, authz := range []string{"+", b64("quinn")} {
		c := dialTLSWith(t, tlsAddr, &cert)
		c.send("CAP REQ :sasl", "NICK q_", "USER q 0 * :Q", "AUTHENTICATE EXTERNAL")
		c.challenge()
		c.send("AUTHENTICATE " + authz)
		if m, _ := c.expect(protocol.RPL_LOGGEDIN); m.Param(2) != "quinn" {
			t.Fatalf("900: %q", m.String())
		}
		c.expect(protocol.RPL_SASLSUCCESS)
		c.send("CAP END")
		c.expect(protocol.RPL_WELCOME)
		c.send("QUIT")
		c.expect("ERROR")
	}
	// As another account: refused. Without a certificate, or over plain
	// TCP: refused with the reason.
	c := dialTLSWith(t, tlsAddr, &cert)
	c.send("AUTHENTICATE EXTERNAL")
	c.challenge()
	c.send("AUTHENTICATE " + b64("peeker"))
	if m, _ := c.expect(protocol.ERR_SASLFAIL); !strings.Contains(m.Param(1), "another account") {
		t.Fatalf("authzid of another: %q", m.String())
	}
	for _, c := range []*client{dialTLSWith(t, tlsAddr, nil), dial(t, addr)} {
		c.send("AUTHENTICATE EXTERNAL")
		c.challenge()
		c.send("AUTHENTICATE +")
		if m, _ := c.expect(protocol.ERR_SASLFAIL); !strings.Contains(m.Param(1), "no TLS client certificate") {
			t.Fatalf("no certificate: %q", m.String())
		}
	}

	// Errors, and a fingerprint is one account's.
	b.send("REGISTER peeker correct-horse")
	b.expect(protocol.RPL_LOGGEDIN)
	b.send("CERTFP ADD " + fp)
	b.expectFail("CERTFP", "FINGERPRINT_TAKEN")
	b.send("CERTFP ADD nothex")
	b.expectFail("CERTFP", "INVALID_FINGERPRINT")
	b.send("CERTFP ADD")
	b.expectFail("CERTFP", "NO_CERTIFICATE")
	b.send("CERTFP DEL " + fp)
	b.expectFail("CERTFP", "NO_SUCH_FINGERPRINT")
	b.send("CERTFP FROB")
	b.expectFail("CERTFP", "UNKNOWN_COMMAND")

	// DEL: the certificate no longer logs in.
	a.send("CERTFP DEL " + fp)
	if m, _ := a.expect("CERTFP"); m.Param(0) != "DELETED" {
		t.Fatalf("CERTFP DEL: %q", m.String())
	}
	c = dialTLSWith(t, tlsAddr, &cert)
	c.send("AUTHENTICATE EXTERNAL")
	c.challenge()
	c.send("AUTHENTICATE +")
	c.expect(protocol.ERR_SASLFAIL)
}
