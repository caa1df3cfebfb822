package daemon

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
)

// A nick given up by a rename stays taken until the rename has been
// announced: an observer must never hear someone take a nick while its
// previous holder is, as far as it was told, still using it. The race is
// narrow, so the test repeats it (bounded) with the two renames sent
// back to back from two connections.
func TestRenamedNickFreedOnlyAfterAnnouncement(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "a0")
	b := connect(t, addr, "b0")
	watcher := connect(t, addr, "watcher")
	for _, c := range []*client{a, b, watcher} {
		c.join("#names")
	}
	watcher.sync()
	holders := map[string]string{"a0": "a", "b0": "b"}
	for i := 1; i <= 3000; i++ {
		// a moves on; b grabs a's old nick at the same moment.
		a.conn.Write([]byte("NICK a" + strconv.Itoa(i) + "\r\n"))
		b.conn.Write([]byte(strings.Repeat("NICK "+holderOf(holders, "a")+"\r\n", 30))) // as often as it can
		a.sync()
		b.sync()
		watchRenames(t, i, holders, watcher.sync())
	}
}

// holderOf returns the nick who holds in the watcher's view.
func holderOf(holders map[string]string, who string) string {
	for nick, w := range holders {
		if w == who {
			return nick
		}
	}
	return ""
}

// watchRenames follows the NICK lines a watcher saw, failing the test when
// one takes a nick whose holder, as far as the watcher was told, still has
// it. holders maps folded nicks to who holds them.
func watchRenames(t *testing.T, round int, holders map[string]string, seen []protocol.Message) {
	t.Helper()
	for _, m := range seen {
		if m.Command != "NICK" {
			continue
		}
		from := protocol.FoldNick(strings.SplitN(m.Source, "!", 2)[0])
		to := protocol.FoldNick(m.Param(0))
		who := holders[from]
		if other, taken := holders[to]; taken && other != who {
			t.Fatalf("round %d: watcher heard %s take %s while %s still had it", round, from, m.Param(0), other)
		}
		delete(holders, from)
		holders[to] = who
	}
}

// A session can lose its nick to an account registered at the moment it
// renames itself: its own NICK and the eviction (run on the registering
// session's goroutine) raced, and the client could be told the two
// renames in the wrong order, or by the wrong name, and believe in a nick
// the server had given away (found by FuzzSessions). Whatever the order,
// what the client was told must match what the server has. The race is
// narrow; bounded repetitions.
func TestEvictedWhileRenamingKnowsItsNick(t *testing.T) {
	_, addr := testServer(t)
	taker := connect(t, addr, "taker")
	c := connect(t, addr, "renamer")
	for _, r := range []string{"#r1", "#r2", "#r3", "#r4"} { // a rename takes a while
		c.join(r)
	}
	believed := "renamer"
	for i := range 900 { // under the rig's per-connection registration quota
		nick := "racer" + strconv.Itoa(i)
		c.conn.Write([]byte("NICK " + nick + "\r\n"))
		taker.conn.Write([]byte("LOGOUT\r\nREGISTER " + nick + " password1\r\n"))
		// Once the taker's PING is answered its REGISTER has evicted the
		// client, if it did; the client's own PING then collects what it
		// was told.
		taker.sync()
		var seen []string
		for _, m := range c.sync() {
			seen = append(seen, m.String())
			if m.Command == "NICK" && strings.HasPrefix(m.Source, believed+"!") {
				believed = m.Param(0)
			}
		}
		c.send("USERHOST " + believed)
		m, _ := c.expect(protocol.RPL_USERHOST)
		if !strings.Contains(m.Param(1), "~renamer@") {
			t.Fatalf("round %d: the client believes it is %q, but the server says %q; it saw:\n%s", i, believed, m.Param(1), strings.Join(seen, "\n"))
		}
	}
}

// The same when the rename is a login or registration taking the
// account's name as the nick: the old nick stays taken until the rename
// has been announced (found by FuzzSessions: an observer saw N1 and n1 at
// once). Bounded repetitions of the race.
func TestAccountNickFreesOldNickOnlyAfterAnnouncement(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "a0")
	b := connect(t, addr, "b0")
	watcher := connect(t, addr, "watcher")
	for _, c := range []*client{a, b, watcher} {
		c.join("#names")
		c.join("#more") // a rename takes a while
	}
	watcher.sync()
	holders := map[string]string{"a0": "a", "b0": "b"}
	for i := 1; i <= 900; i++ { // under the rig's per-connection registration quota
		// a registers (and so renames to) a new account; b grabs a's nick
		// at the same moment.
		a.conn.Write([]byte("LOGOUT\r\nREGISTER acct" + strconv.Itoa(i) + " password1\r\n"))
		b.conn.Write([]byte(strings.Repeat("NICK "+holderOf(holders, "a")+"\r\n", 30))) // as often as it can
		a.sync()
		b.sync()
		watchRenames(t, i, holders, watcher.sync())
	}
}

// A session evicted from its nick while it joins rooms must be renamed in
// every one of them: a room joined just as the eviction ran kept the old
// nick for good (found by FuzzSessions). Bounded repetitions of the race.
func TestEvictedWhileJoiningRenamedEverywhere(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Accounts.HashMemoryKiB = 2048 // a few ms: the joins run while it hashes
	})
	taker := connect(t, addr, "taker")
	for i := range 300 {
		nick := "joiner" + strconv.Itoa(i)
		c := connect(t, addr, "v"+strconv.Itoa(i))
		// The taker starts registering the name; the joiner takes it as
		// its nick meanwhile (free until the account exists), then joins
		// rooms while the registration completes and evicts it.
		taker.conn.Write([]byte("LOGOUT\r\nREGISTER " + nick + " password1\r\n"))
		var lines strings.Builder
		lines.WriteString("NICK " + nick + "\r\n")
		for k := range 30 {
			lines.WriteString("JOIN #j" + strconv.Itoa(i) + "-" + strconv.Itoa(k) + "\r\n")
		}
		c.conn.Write([]byte(lines.String()))
		taker.sync()
		now := "v" + strconv.Itoa(i)
		for _, m := range c.sync() {
			if m.Command == "NICK" && strings.HasPrefix(m.Source, now+"!") {
				now = m.Param(0)
			}
		}
		for k := range 30 {
			room := "#j" + strconv.Itoa(i) + "-" + strconv.Itoa(k)
			c.send("NAMES " + room)
			names, _ := c.expect(protocol.RPL_NAMREPLY)
			listed := strings.Fields(names.Param(3))
			for j := range listed {
				listed[j] = strings.TrimLeft(listed[j], "@+")
			}
			if !slices.Contains(listed, now) {
				t.Fatalf("round %d: %s lists %q, but the joiner is %s", i, room, names.Param(3), now)
			}
			c.expect(protocol.RPL_ENDOFNAMES)
		}
		c.send("QUIT")
		c.expect("ERROR")
	}
}
