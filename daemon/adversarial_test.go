package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
)

// The adversarial suite plays one attacker per row of DESIGN.md §7 (plus a
// few classic attacks) against a server where two bystanders share a room
// with it. Each row asserts that the attack fails and then that the
// bystanders are still served: their PINGs are answered, what they saw of
// the attack is exactly what the row allows (at most the attacker's
// QUIT), and a message one of them sends reaches the other.
//
// Single-row tests of the same limits live next to the code they test
// (server_test.go, ops_test.go, ircv3_test.go); this file is about the
// uniform "attack fails, everyone else carries on" property.

// arena is a server with two bystanders in #arena.
type arena struct {
	t         *testing.T
	srv       *Server
	addr      string
	by, third *client
}

const arenaRoom = "#arena"

func newArena(t *testing.T, configure ...func(*configs.Config, *Options)) *arena {
	t.Helper()
	srv, addr := testServer(t, configure...)
	a := &arena{t: t, srv: srv, addr: addr}
	a.by = connect(t, addr, "bystander")
	a.third = connect(t, addr, "third")
	a.by.join(arenaRoom)
	a.third.join(arenaRoom)
	a.by.sync() // third's JOIN
	return a
}

// attacker connects a registered client into #arena; the bystanders have
// taken its JOIN, so afterwards they should see nothing of the attack.
func (a *arena) attacker(nick string) *client {
	a.t.Helper()
	c := connect(a.t, a.addr, nick)
	c.join(arenaRoom)
	for _, b := range []*client{a.by, a.third} {
		if m, _ := b.expect("JOIN"); !strings.HasPrefix(m.Source, nick+"!") {
			a.t.Fatalf("%s saw %q, want %s's JOIN", b.nick, m.String(), nick)
		}
	}
	return c
}

// stillServed checks the bystanders: each saw exactly the commands in
// seen (in order) since the attack began, answers a PING, and a message
// from one reaches the other intact.
func (a *arena) stillServed(seen ...string) {
	a.t.Helper()
	want := strings.Join(seen, " ")
	for _, b := range []*client{a.by, a.third} {
		b.t = a.t
		if got := strings.Join(commands(b.sync()), " "); got != want {
			a.t.Fatalf("%s saw [%s] during the attack, want [%s]", b.nick, got, want)
		}
	}
	text := "still served " + a.t.Name()
	a.by.send("PRIVMSG " + arenaRoom + " :" + text)
	m, skipped := a.third.expect("PRIVMSG")
	if len(skipped) != 0 || m.Param(1) != text || !strings.HasPrefix(m.Source, "bystander!") {
		a.t.Fatalf("third got %q after %v, want the bystander's message", m.String(), commands(skipped))
	}
}

// rejects sends line and checks the attacker gets exactly the reply code
// (a numeric or FAIL) and keeps its connection.
func rejects(a *arena, c *client, line, code string) {
	a.t.Helper()
	c.send(line)
	got := c.sync() // the PONG proves the connection is kept
	if len(got) != 1 || got[0].Command != code {
		a.t.Fatalf("%q: got %v, want one %s", line, commands(got), code)
	}
}

// expectQuit checks the attacker's connection ends with an ERROR whose
// text contains reason.
func expectQuit(a *arena, c *client, reason string) {
	a.t.Helper()
	for range 100_000 { // bounded; every read has a deadline too
		m, err := c.tryRead()
		if err != nil {
			a.t.Fatalf("%s: connection ended without ERROR: %v", c.nick, err)
		}
		if m.Command == "ERROR" {
			if !strings.Contains(m.Param(0), reason) {
				a.t.Fatalf("%s: %q, want %q", c.nick, m.String(), reason)
			}
			return
		}
	}
	a.t.Fatalf("%s: no ERROR", c.nick)
}

// expectOnlyQuit waits for the bystanders to see nick's QUIT, and nothing
// before it.
func expectOnlyQuit(a *arena, nick string) {
	a.t.Helper()
	for _, b := range []*client{a.by, a.third} {
		if m, skipped := b.expect("QUIT"); len(skipped) != 0 || !strings.HasPrefix(m.Source, nick+"!") {
			a.t.Fatalf("%s saw %v then %q, want only %s's QUIT", b.nick, commands(skipped), m.String(), nick)
		}
	}
}

// dialSmallWindow connects with a tiny receive buffer, set before the
// handshake so the window the server sees stays small.
func dialSmallWindow(t *testing.T, addr string) *client {
	t.Helper()
	d := net.Dialer{Timeout: waitFor, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// keepBusy has the bystanders talk (PING barriers) every few milliseconds
// until done reports true for what they received, so that a tiny
// ping_interval never applies to them while it does to a silent attacker.
// It returns everything they received except PONGs.
func (a *arena) keepBusy(done func(received []protocol.Message) bool) [2][]protocol.Message {
	a.t.Helper()
	var got [2][]protocol.Message
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		for i, b := range []*client{a.by, a.third} {
			got[i] = append(got[i], b.sync()...)
		}
		if done(got[0]) && done(got[1]) {
			return got
		}
		time.Sleep(10 * time.Millisecond) // the bystanders' pace, not a wait for an outcome
	}
	a.t.Fatalf("the attack never ended: bystanders saw %v / %v", commands(got[0]), commands(got[1]))
	return got
}

func quitOf(nick string) func([]protocol.Message) bool {
	return func(ms []protocol.Message) bool {
		for _, m := range ms {
			if m.Command == "QUIT" && strings.HasPrefix(m.Source, nick+"!") {
				return true
			}
		}
		return false
	}
}

func TestAdversarial(t *testing.T) {
	rows := []struct {
		name      string
		configure func(*configs.Config, *Options)
		attack    func(a *arena) (seen []string)
	}{
		{"line_too_long", nil, func(a *arena) []string {
			c := a.attacker("longline")
			rejects(a, c, "PRIVMSG "+arenaRoom+" :"+strings.Repeat("x", 600), protocol.ERR_INPUTTOOLONG)
			return nil
		}},
		{"oversized_tag_section", nil, func(a *arena) []string {
			c := a.attacker("bigtags")
			rejects(a, c, "@+a="+strings.Repeat("t", 5000)+" PRIVMSG "+arenaRoom+" :hi", protocol.ERR_INPUTTOOLONG)
			return nil
		}},
		{"invalid_utf8_text", nil, func(a *arena) []string {
			c := a.attacker("badutf8")
			rejects(a, c, "PRIVMSG "+arenaRoom+" :bad \xff\xfe bytes", "FAIL")
			rejects(a, c, "TOPIC "+arenaRoom+" :\xc3(", "FAIL")
			return nil
		}},
		{"invalid_utf8_name", nil, func(a *arena) []string {
			c := a.attacker("badname")
			rejects(a, c, "NICK n\xffck", "FAIL")
			rejects(a, c, "JOIN #r\xffom", "FAIL")
			return nil
		}},
		{"nul_in_text", nil, func(a *arena) []string {
			c := a.attacker("nul")
			rejects(a, c, "PRIVMSG "+arenaRoom+" :a\x00b", "FAIL")
			return nil
		}},
		{"control_bytes", nil, func(a *arena) []string {
			c := a.attacker("bell")
			rejects(a, c, "PRIVMSG "+arenaRoom+" :ring\x07ring", "FAIL")
			rejects(a, c, "TOPIC "+arenaRoom+" :esc\x1b[2J", "FAIL")
			rejects(a, c, "NICK be\x07ll", protocol.ERR_ERRONEUSNICKNAME)
			rejects(a, c, "JOIN #bad\x07name", protocol.ERR_NOSUCHCHANNEL)
			return nil
		}},
		{"crlf_injection", nil, func(a *arena) []string {
			// A bare CR inside a line is not a line end: the whole line
			// is refused, and nothing after the CR runs as a command.
			c := a.attacker("crlf")
			rejects(a, c, "PRIVMSG "+arenaRoom+" :hi\rKICK "+arenaRoom+" bystander", "FAIL")
			rejects(a, c, "TOPIC "+arenaRoom+" :x\rPRIVMSG "+arenaRoom+" :injected", "FAIL")
			// Escaped CR/LF in a tag value stay escaped on the way out:
			// the bystanders did not ask for tags, and see nothing.
			c.send(`@+x=a\r\nPRIVMSG\s#arena\s:injected TAGMSG ` + arenaRoom)
			c.sync()
			return nil
		}},
		{"unknown_command", nil, func(a *arena) []string {
			c := a.attacker("unknown")
			rejects(a, c, "FROBNICATE "+arenaRoom, protocol.ERR_UNKNOWNCOMMAND)
			return nil
		}},
		{"flood", func(c *configs.Config, _ *Options) {
			c.Limits.FloodBurst, c.Limits.FloodRate = 5, 20
			c.Limits.FloodMaxLag = 200 * time.Millisecond
		}, func(a *arena) []string {
			c := a.attacker("flooder")
			var lines []string
			for i := range 40 { // 35 past the burst at 20/s is far past 200ms of lag
				lines = append(lines, "PING flood-"+strconv.Itoa(i))
			}
			start := time.Now()
			c.send(lines...)
			pongs := 0
			for {
				m := c.read()
				if m.Command == "PONG" {
					pongs++
					continue
				}
				if m.Command != "ERROR" || m.Param(0) != "Excess flood" {
					a.t.Fatalf("got %q, want ERROR :Excess flood", m.String())
				}
				break
			}
			// Fake lag first: more than the burst was answered, slowly.
			if pongs <= 5 || pongs >= 40 || time.Since(start) < 100*time.Millisecond {
				a.t.Fatalf("%d PONGs in %v before the ERROR, want the burst and then lagged ones", pongs, time.Since(start))
			}
			return []string{"QUIT"}
		}},
		{"too_many_connections", func(c *configs.Config, _ *Options) {
			c.Limits.Exempt = nil
			c.Limits.MaxConnsPerIP = 3 // the bystanders and a newcomer on 127.0.0.1
		}, func(a *arena) []string {
			for i := range 3 {
				dialFrom(a.t, a.addr, "127.0.0.2").register("held" + strconv.Itoa(i))
			}
			c := dialFrom(a.t, a.addr, "127.0.0.2")
			expectQuit(a, c, "Too many connections")
			connect(a.t, a.addr, "newcomer") // 127.0.0.1 still gets in
			return nil
		}},
		{"connecting_too_fast", func(c *configs.Config, _ *Options) {
			c.Limits.Exempt = nil
			c.Limits.ConnRatePerIP = 3
			c.Limits.ConnRateWindow = time.Hour
		}, func(a *arena) []string {
			for range 3 {
				c := dialFrom(a.t, a.addr, "127.0.0.3")
				c.sync()
				c.conn.Close()
			}
			c := dialFrom(a.t, a.addr, "127.0.0.3")
			expectQuit(a, c, "Connecting too fast")
			connect(a.t, a.addr, "newcomer") // 127.0.0.1's third connection
			return nil
		}},
		{"stops_reading", func(c *configs.Config, _ *Options) {
			c.Limits.SendQBytes = 8192
			c.Limits.PingTimeout = 300 * time.Millisecond
		}, func(a *arena) []string {
			// The attacker asks for output and never reads it. Replies to
			// its own commands are paced (its next command waits for the
			// writer), so it is cut when the writer has taken nothing for
			// ping_timeout. A small
			// receive window keeps the kernel from absorbing megabytes.
			c := dialSmallWindow(a.t, a.addr)
			c.register("stalled")
			c.join(arenaRoom)
			for _, b := range []*client{a.by, a.third} {
				b.expect("JOIN")
			}
			line := []byte(strings.Repeat("NAMES "+arenaRoom+"\r\n", 100))
			done := make(chan struct{})
			go func() { // writes until the server closes the connection; bounded
				defer close(done)
				c.conn.SetWriteDeadline(time.Now().Add(waitFor))
				for range 10_000 {
					if _, err := c.conn.Write(line); err != nil {
						return
					}
				}
			}()
			a.keepBusy(quitOf("stalled"))
			c.conn.Close()
			<-done
			if got := testCounter(a.t, a.srv, "livechat_slow_consumer_disconnects_total"); got != 1 {
				a.t.Errorf("livechat_slow_consumer_disconnects_total = %v", got)
			}
			return nil // keepBusy took the QUIT
		}},
		{"goes_silent", func(c *configs.Config, _ *Options) {
			c.Limits.PingInterval = 150 * time.Millisecond
			c.Limits.PingTimeout = 150 * time.Millisecond
		}, func(a *arena) []string {
			c := a.attacker("silent")
			got := a.keepBusy(quitOf("silent"))
			for _, ms := range got {
				if q := ms[len(ms)-1]; !strings.HasPrefix(q.Param(0), "Ping timeout") {
					a.t.Fatalf("QUIT %q, want a ping timeout", q.String())
				}
			}
			if m, _ := c.expect("PING"); m.Param(0) == "" {
				a.t.Fatal("PING without a token")
			}
			expectQuit(a, c, "Ping timeout")
			return nil
		}},
		{"slowloris", func(c *configs.Config, _ *Options) { c.Limits.RegistrationTimeout = 200 * time.Millisecond }, func(a *arena) []string {
			// A byte at a time, never a line end: the registration
			// deadline is not moved by partial lines.
			c := dial(a.t, a.addr)
			c.send("NICK loris")
			c.conn.Write([]byte("USER loris 0 * :"))
			var got []byte
			buf := make([]byte, 512)
			for i := 0; i < 500 && !bytes.Contains(got, []byte("\n")); i++ {
				c.conn.Write([]byte("z"))
				c.conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				n, _ := c.conn.Read(buf)
				got = append(got, buf[:n]...)
			}
			if !bytes.HasPrefix(got, []byte("ERROR :Registration timed out")) {
				a.t.Fatalf("got %q, want the registration timeout", got)
			}
			return nil
		}},
		{"too_many_joined_rooms", func(c *configs.Config, _ *Options) { c.Limits.MaxJoinedRooms = 2 }, func(a *arena) []string {
			c := a.attacker("joiner")
			c.join("#second")
			rejects(a, c, "JOIN #third", protocol.ERR_TOOMANYCHANNELS)
			return nil
		}},
		{"room_full", func(c *configs.Config, _ *Options) { c.Limits.MaxRoomMembers = 3 }, func(a *arena) []string {
			a.attacker("member")
			c := connect(a.t, a.addr, "crasher")
			rejects(a, c, "JOIN "+arenaRoom, protocol.ERR_CHANNELISFULL)
			a.by.send("NAMES " + arenaRoom)
			if m := a.by.expectNumeric(protocol.RPL_NAMREPLY); len(strings.Fields(m.Param(3))) != 3 {
				a.t.Fatalf("members %q", m.Param(3))
			}
			a.by.expectNumeric(protocol.RPL_ENDOFNAMES)
			return nil
		}},
		{"too_many_rooms", func(c *configs.Config, _ *Options) { c.Limits.MaxRooms = 2 }, func(a *arena) []string {
			c := a.attacker("creator")
			c.join("#mine")
			rejects(a, c, "JOIN #another", protocol.ERR_NOSUCHCHANNEL)
			a.by.join("#mine") // existing rooms still take joiners
			return nil
		}},
		{"killed_mid_line", nil, func(a *arena) []string {
			// Killed hard (RST) halfway through a line: the half line
			// never runs.
			c := a.attacker("cutoff")
			c.conn.Write([]byte("PRIVMSG " + arenaRoom + " :half a mess"))
			c.conn.(*net.TCPConn).SetLinger(0)
			c.conn.Close()
			expectOnlyQuit(a, "cutoff")
			return nil
		}},
		{"closed_mid_line", nil, func(a *arena) []string {
			// The same with an orderly close (FIN), which is also what the
			// kernel sends when a process is killed.
			c := a.attacker("cutoff")
			c.conn.Write([]byte("PRIVMSG " + arenaRoom + " :half a mess"))
			c.conn.Close()
			expectOnlyQuit(a, "cutoff")
			return nil
		}},
		{"killed_mid_register", nil, func(a *arena) []string {
			// Gone while its password is being hashed.
			c := a.attacker("hasher")
			c.send("REGISTER hasher " + strings.Repeat("pw", 8))
			c.conn.Close()
			expectOnlyQuit(a, "hasher")
			newcomer := connect(a.t, a.addr, "later")
			newcomer.send("REGISTER later " + strings.Repeat("pw", 8))
			newcomer.expectNumeric(protocol.RPL_LOGGEDIN)
			return nil
		}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			var configure []func(*configs.Config, *Options)
			if row.configure != nil {
				configure = append(configure, row.configure)
			}
			a := newArena(t, configure...)
			a.stillServed(row.attack(a)...)
		})
	}
}
