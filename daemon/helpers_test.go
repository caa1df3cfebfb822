package daemon

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
)

// waitFor bounds every wait in these tests; nothing sleeps and hopes.
const waitFor = 10 * time.Second

// testServer starts a server on 127.0.0.1:0 and stops it when the test ends.
func testServer(t testing.TB, configure ...func(*configs.Config, *Options)) (*Server, string) {
	t.Helper()
	srv := newTestServer(t, configure...)
	l, err := net.Listen("tcp", srv.Config().Listen.TCP)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l, "tcp")
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return srv, l.Addr().String()
}

// newTestServer builds a server with the tests' configuration, without
// starting a listener or arranging its shutdown.
func newTestServer(t testing.TB, configure ...func(*configs.Config, *Options)) *Server {
	t.Helper()
	cfg := configs.Default()
	cfg.Listen.TCP = "127.0.0.1:0"
	cfg.Metrics.Listen = ""
	cfg.Accounts.Store = "memory"
	cfg.Limits.FloodBurst = 100000 // tests send fast; the flood test lowers it
	cfg.Limits.FloodRate = 100000
	cfg.Limits.MaxConnsPerIP = 1000 // every test client comes from 127.0.0.1; ops_test checks the limits
	cfg.Limits.ConnRatePerIP = 1000
	cfg.Accounts.RegisterPerIP, cfg.Accounts.RegisterPerConn = 1000, 1000 // likewise; the quota tests lower them
	// Cheap hashing keeps account tests fast; the accounts package tests
	// the real parameters.
	cfg.Accounts.HashMemoryKiB, cfg.Accounts.HashIterations = 64, 1
	opts := Options{Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)}
	for _, f := range configure {
		f(&cfg, &opts)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return New(&cfg, opts)
}

// client is a raw line-level test client.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	nick string
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// dialFrom connects from localIP, one of 127.0.0.0/8 (all loopback on
// Linux), so that a test can present many client addresses.
func dialFrom(t *testing.T, addr, localIP string) *client {
	t.Helper()
	d := net.Dialer{Timeout: waitFor, LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn), nick: "from-" + localIP}
}

func (c *client) send(lines ...string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	for _, l := range lines {
		if _, err := c.conn.Write([]byte(l + "\r\n")); err != nil {
			c.t.Fatalf("%s: write %q: %v", c.nick, l, err)
		}
	}
}

// read returns the next message, failing the test at the deadline.
func (c *client) read() protocol.Message {
	c.t.Helper()
	m, err := c.tryRead()
	if err != nil {
		c.t.Fatalf("%s: read: %v", c.nick, err)
	}
	return m
}

func (c *client) tryRead() (protocol.Message, error) {
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	line, err := c.r.ReadString('\n')
	if err != nil {
		return protocol.Message{}, err
	}
	line = strings.TrimRight(line, "\r\n")
	if plainLine(line) {
		return protocol.Message{Command: plain, Params: []string{line}}, nil
	}
	return protocol.ParseString(line)
}

// plain is the Command of a message standing for a plain line: what a
// person in a terminal reads instead of a protocol line (render.go).
const plain = "(plain)"

// plainLine reports whether the server sent line as a sentence: protocol
// lines start with tags or a source, or are one of the few sourceless
// commands.
func plainLine(line string) bool {
	if line == "" || line[0] == ':' || line[0] == '@' {
		return false
	}
	word, _, _ := strings.Cut(line, " ")
	switch word {
	case "ERROR", "PING", "PONG", "AUTHENTICATE":
		return false
	}
	return true
}

// expectPlain reads until a plain line arrives and returns its text.
func (c *client) expectPlain() string {
	c.t.Helper()
	m, _ := c.expect(plain)
	return m.Params[0]
}

// expect reads until a message with command arrives and returns it; the
// lines skipped on the way are returned too.
func (c *client) expect(command string) (protocol.Message, []protocol.Message) {
	c.t.Helper()
	var skipped []protocol.Message
	for {
		m := c.read()
		if m.Command == command {
			return m, skipped
		}
		skipped = append(skipped, m)
	}
}

// sync sends a PING and returns everything received before its PONG: a
// barrier that proves the server handled every earlier line.
func (c *client) sync() []protocol.Message {
	c.t.Helper()
	c.send("PING sync-barrier")
	var got []protocol.Message
	for {
		m := c.read()
		if m.Command == "PONG" && m.Param(1) == "sync-barrier" {
			return got
		}
		got = append(got, m)
	}
}

// capLS reads a CAP LS 302 reply, which may take several lines, and
// returns it as one message listing every capability.
func (c *client) capLS() protocol.Message {
	c.t.Helper()
	var caps []string
	for {
		m, _ := c.expect("CAP")
		if m.Param(1) != "LS" {
			return m
		}
		if m.Param(2) != "*" {
			m.Params[2] = strings.Join(append(caps, m.Params[2]), " ")
			return m
		}
		caps = append(caps, m.Param(3))
	}
}

// register logs in the IRC-client way and waits for the end of the MOTD.
func (c *client) register(nick string) {
	c.t.Helper()
	c.nick = nick
	c.send("NICK "+nick, "USER "+nick+" 0 * :Test User "+nick)
	c.expect(protocol.RPL_WELCOME)
	c.expectEndOfMOTD()
}

func (c *client) expectEndOfMOTD() {
	c.t.Helper()
	for {
		m := c.read()
		if m.Command == protocol.RPL_ENDOFMOTD || m.Command == protocol.ERR_NOMOTD {
			return
		}
	}
}

func (c *client) join(room string) {
	c.t.Helper()
	c.send("JOIN " + room)
	c.expect(protocol.RPL_ENDOFNAMES)
}

func connect(t testing.TB, addr, nick string) *client {
	t.Helper()
	c := dial(t, addr)
	c.register(nick)
	return c
}

func commands(ms []protocol.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Command
	}
	return out
}

// separateConnections turns multiclient off: the tests that use it are
// about two connections of one account that stay two users.
func separateConnections(c *configs.Config, _ *Options) { c.Accounts.Multiclient = false }
