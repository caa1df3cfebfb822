package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livechat/livechat/protocol"
)

// TestClusterDemoProcesses drives scripts/cluster-demo.sh (issue 14): a
// three-server NATS JetStream cluster and three livechatd processes, as a
// newcomer gets them. Users on three nodes talk in one room while node 2
// dies with SIGKILL: the others see its user QUIT "node lost" within the
// lease, and that user, back on node 3 under the same nick, gets from
// CHATHISTORY AFTER its last msgid exactly what it missed. Then node 2
// comes back and node 1, the room's home, is restarted with SIGTERM while
// users on nodes 2 and 3 talk: every message acknowledged (echoed with
// echo-message) is in the history, once, in its sender's order, and the
// history reads the same on every node.
func TestClusterDemoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds livechatd and nats-server and runs a cluster of six processes for some 20 seconds")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the demo script checks its processes through /proc")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the demo script builds with the go command, which is not on PATH")
	}
	const lease = 3 * time.Second
	began := time.Now()
	step := func(what string) { t.Logf("%6.2fs %s", time.Since(began).Seconds(), what) }
	cl := startDemo(t, "--lease-ttl", fmt.Sprintf("%ds", int(lease/time.Second)))

	// The room is homed on node 1: alice asks for it first.
	alice := cl.dial(1, "alice")
	alice.join("#demo")
	bob := cl.dial(2, "bob")
	bob.join("#demo")
	carol := cl.dial(3, "carol")
	carol.join("#demo")
	alice.waitJoin("carol")
	bob.waitJoin("carol")
	for _, c := range []*demoConn{alice, bob, carol} {
		if _, _, ok := c.say("#demo", "hello from "+c.nick); !ok {
			t.Fatalf("%s: no echo of hello", c.nick)
		}
	}
	// Everyone has seen the three hellos before the talk starts.
	for _, c := range []*demoConn{alice, bob, carol} {
		c.waitLine(0, func(m protocol.Message) bool { return m.Command == "PRIVMSG" && m.Param(1) == "hello from carol" }, waitFor, "carol's hello")
	}

	step("users connected")
	// Phase 1: alice and carol talk; node 2 dies under bob.
	talk := startTalkIn("#demo", alice, carol)
	talk.waitAcked(10)
	quitFrom := alice.mark()
	killed := time.Now()
	step("SIGKILL node 2")
	cl.signal(2, syscall.SIGKILL)
	q := alice.waitLine(quitFrom, func(m protocol.Message) bool { return m.Command == "QUIT" && nickOf(m.Source) == "bob" },
		lease+5*time.Second, "bob's QUIT after node 2 was killed")
	if reason := q.msg.Param(0); reason != "node lost" {
		t.Errorf("bob's QUIT says %q, want \"node lost\"", reason)
	}
	t.Logf("bob's QUIT reached alice %v after node 2 was killed (lease_ttl %v)", q.at.Sub(killed).Round(time.Millisecond), lease)
	bob.waitClosed()
	last := bob.lastMsgid("#demo")
	if last == "" {
		t.Fatal("bob saw no message with a msgid before node 2 died")
	}
	step("bob reconnects")
	bob2 := cl.redial(3, "bob", waitFor)
	bob2.join("#demo")
	talk.waitAcked(talk.acked() + 10) // some more while bob is back, not all missed
	talk.stop()
	// What bob missed is what alice saw in the room after bob's last
	// msgid, up to the last message sent (alice and carol both echoed).
	alice.waitMsgid(talk.lastAcked(carol))
	carol.waitMsgid(talk.lastAcked(alice))
	seen := alice.roomMsgids("#demo")
	at := slices.Index(seen, last)
	if at < 0 {
		t.Fatalf("bob's last msgid %s is not among the room's messages alice saw", last)
	}
	missed := seen[at+1:]
	got := bob2.historyAfter("#demo", "msgid="+last)
	if !slices.Equal(got, missed) {
		t.Fatalf("CHATHISTORY AFTER %s on node 3: %d messages, want the %d alice saw after it\n got %v\nwant %v", last, len(got), len(missed), got, missed)
	}
	t.Logf("bob came back on node 3 as bob; CHATHISTORY AFTER his last msgid gave the %d messages he missed", len(missed))

	step("history checked")
	// Phase 2: node 2 back; rolling restart of node 1 (the room's home)
	// while dave (node 2) and carol (node 3) talk.
	cl.restart(2)
	step("node 2 restarted")
	dave := cl.dial(2, "dave")
	dave.join("#demo")
	carol.waitJoin("dave")
	talk = startTalkIn("#demo", dave, carol)
	talk.waitAcked(10)
	step("SIGTERM node 1")
	pid1 := cl.signal(1, syscall.SIGTERM)
	// alice is told, unless her queue, full of dave's and carol's talk,
	// is still being written when the shutdown's grace for it ends: then
	// the connection just closes.
	switch m, _, err := alice.find(alice.mark(), func(m protocol.Message) bool { return m.Command == "ERROR" }, waitFor); {
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		t.Logf("alice: node 1 closed her connection before her ERROR was written (her queue was full of talk)")
	case err != nil:
		t.Fatalf("alice: waiting for ERROR on node 1's SIGTERM: %v", err)
	case m.msg.Param(0) != "Server shutting down":
		t.Errorf("alice got %q", m.msg.String())
	}
	cl.waitExit(1, pid1)
	during := talk.acked()
	step("node 1 exited")
	cl.restart(1)
	talk.waitAcked(talk.acked() + 10)
	step("node 1 restarted")
	alice2 := cl.redial(1, "alice", waitFor)
	alice2.join("#demo")
	talk.waitAcked(talk.acked() + 10)
	talk.stop()
	// Every member stays in the room while its home moves (a node once
	// failed to join its members to the new home).
	if dropped := talk.droppedUsers(); len(dropped) > 0 {
		t.Errorf("%v dropped from #demo when its home moved (told 404 on sending)", dropped)
	}
	for _, p := range [][2]*demoConn{{dave, carol}, {carol, dave}} {
		to, from := p[0], p[1]
		to.waitMsgid(talk.lastAcked(from))
	}
	t.Logf("rolling restart of node 1: %d messages acknowledged in all, %d before node 1 was back, %d not acknowledged (refused or timed out)",
		talk.acked(), during, talk.unacked())

	step("talk stopped")
	// Every acknowledged message is in the history, once, in its sender's
	// order; every node reads the same history.
	full := alice2.historyAfter("#demo", "timestamp=2000-01-01T00:00:00.000Z")
	for _, n := range []struct {
		c    *demoConn
		node string
	}{{carol, "node 3"}, {dave, "node 2"}} {
		if h := n.c.historyAfter("#demo", "timestamp=2000-01-01T00:00:00.000Z"); !slices.Equal(h, full) {
			t.Errorf("history on %s (%d messages) differs from node 1's (%d)", n.node, len(h), len(full))
		}
	}
	pos := map[string]int{}
	for i, id := range full {
		if _, dup := pos[id]; dup {
			t.Errorf("msgid %s twice in the history", id)
		}
		pos[id] = i
	}
	for _, c := range []*demoConn{dave, carol} {
		prev := -1
		for _, id := range talk.ackedBy(c) {
			p, ok := pos[id]
			if !ok {
				t.Errorf("%s's acknowledged message %s is missing from the history", c.nick, id)
				continue
			}
			if p < prev {
				t.Errorf("%s's message %s is out of its order in the history", c.nick, id)
			}
			prev = p
		}
	}
	step("history checked")
	t.Logf("history: %d messages, the same on nodes 1, 2 and 3", len(full))
}

// demoCluster is a cluster started by scripts/cluster-demo.sh --background.
type demoCluster struct {
	t   *testing.T
	dir string
	env map[string]string // DIR/cluster.env
	// envv is what the test's processes run with: the machine's
	// environment without its LIVECHAT_* settings, plus the test's.
	envv []string
	mu   sync.Mutex
	runs []chan struct{} // closed when a node the test restarted has exited
}

func startDemo(t *testing.T, args ...string) *demoCluster {
	t.Helper()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cl := &demoCluster{t: t, dir: t.TempDir()}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LIVECHAT_") && !strings.HasPrefix(kv, "LIVECHATD_") {
			cl.envv = append(cl.envv, kv)
		}
	}
	// Reach every node through run.sh: the senders go one message per
	// echo, faster than a person.
	cl.envv = append(cl.envv, "LIVECHAT_LIMITS_FLOOD_BURST=100000", "LIVECHAT_LIMITS_FLOOD_RATE=100000")
	script := filepath.Join(repo, "scripts", "cluster-demo.sh")
	if _, err := os.Stat(script); err != nil { // also makes go test's cache depend on the script
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop := exec.Command("bash", script, "--stop", "--dir", cl.dir)
		stop.Env = cl.envv
		began := time.Now()
		if out, err := stop.CombinedOutput(); err != nil {
			t.Errorf("cluster-demo.sh --stop: %v\n%s", err, out)
		}
		t.Logf("cluster-demo.sh --stop took %v", time.Since(began).Round(time.Millisecond))
		cl.mu.Lock()
		for _, exited := range cl.runs { // the nodes the test restarted, stopped above
			select {
			case <-exited:
			case <-time.After(waitFor):
				t.Errorf("a node the test restarted outlived cluster-demo.sh --stop")
			}
		}
		cl.mu.Unlock()
		if t.Failed() {
			cl.logTails()
		}
	})
	for attempt := 1; ; attempt++ {
		cmd := exec.Command("bash", append([]string{script, "--background", "--free-ports", "--dir", cl.dir}, args...)...)
		cmd.Dir, cmd.Env = repo, cl.envv
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Logf("cluster-demo.sh --background took %v (building included)", time.Since(start).Round(time.Millisecond))
			break
		}
		// A port picked as free can be taken by another program before
		// ours binds it; the script then stops what it started. Another
		// directory, other ports.
		if attempt < 3 && cl.logsContain("address already in use") {
			t.Logf("cluster-demo.sh: a port was taken under it; again with other ports:\n%s", out)
			cl.dir = t.TempDir()
			continue
		}
		t.Fatalf("cluster-demo.sh: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(cl.dir, "cluster.env"))
	if err != nil {
		t.Fatal(err)
	}
	cl.env = map[string]string{}
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && !strings.HasPrefix(k, "#") {
			cl.env[k] = strings.Trim(v, `"`)
		}
	}
	if cl.env["NODE1_IRC"] == "" || cl.env["REPLICAS"] != "3" {
		t.Fatalf("cluster.env lacks node 1 or replicas 3:\n%s", data)
	}
	return cl
}

func (cl *demoCluster) logsContain(s string) bool {
	logs, _ := filepath.Glob(filepath.Join(cl.dir, "*", "*.log"))
	for _, l := range logs {
		if data, _ := os.ReadFile(l); strings.Contains(string(data), s) {
			return true
		}
	}
	return false
}

// logTails logs the end of every process's log.
func (cl *demoCluster) logTails() {
	logs, _ := filepath.Glob(filepath.Join(cl.dir, "*", "*.log"))
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		cl.t.Logf("%s (last lines):\n%s", l, strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
}

// pid reads node k's pid file, which its run.sh writes.
func (cl *demoCluster) pid(k int) int {
	cl.t.Helper()
	data, err := os.ReadFile(filepath.Join(cl.dir, fmt.Sprintf("node-%d", k), "pid"))
	if err != nil {
		cl.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		cl.t.Fatal(err)
	}
	// Only a process of this cluster, never a recycled pid.
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe != cl.env["LIVECHATD"] {
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		cl.t.Fatalf("node-%d: pid %d runs %q (%v), not %s; stat %s; ps %s", k, pid, exe, err, cl.env["LIVECHATD"], stat, psOut(pid))
	}
	return pid
}

// signal sends sig to node k and returns its pid.
func (cl *demoCluster) signal(k int, sig syscall.Signal) int {
	cl.t.Helper()
	pid := cl.pid(k)
	if err := syscall.Kill(pid, sig); err != nil {
		cl.t.Fatal(err)
	}
	return pid
}

// waitExit waits until node k's process pid is gone.
func (cl *demoCluster) waitExit(k, pid int) {
	cl.t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		// Gone, or a zombie its parent (init, or the test) has not reaped.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if _, rest, ok := strings.Cut(string(stat), ") "); ok && strings.HasPrefix(rest, "Z") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	cl.t.Fatalf("node-%d (pid %d) still runs %v after SIGTERM", k, pid, waitFor)
}

// restart runs node k's run.sh, as the script prints for a rolling
// restart, and waits for its /readyz.
func (cl *demoCluster) restart(k int) {
	cl.t.Helper()
	cmd := exec.Command(filepath.Join(cl.dir, fmt.Sprintf("node-%d", k), "run.sh"))
	cmd.Env = cl.envv
	if err := cmd.Start(); err != nil {
		cl.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() // no zombie for --stop to wait on
	cl.mu.Lock()
	cl.runs = append(cl.runs, exited)
	cl.mu.Unlock()
	cl.waitReady(k, http.StatusOK, 2*waitFor)
}

// dial connects nick to node k with the capabilities of a history-aware
// client.
func (cl *demoCluster) dial(k int, nick string) *demoConn {
	cl.t.Helper()
	c, err := cl.tryDial(k, nick)
	if err != nil {
		cl.t.Fatal(err)
	}
	return c
}

// redial connects nick to node k, trying again while the nick is still
// held (its old node's claim not yet released), up to within.
func (cl *demoCluster) redial(k int, nick string, within time.Duration) *demoConn {
	cl.t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := cl.tryDial(k, nick)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			cl.t.Fatalf("%s could not connect to node-%d within %v: %v", nick, k, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var errNickInUse = errors.New("nick in use")

func (cl *demoCluster) tryDial(k int, nick string) (*demoConn, error) {
	conn, err := net.DialTimeout("tcp", cl.env[fmt.Sprintf("NODE%d_IRC", k)], waitFor)
	if err != nil {
		return nil, err
	}
	c := &demoConn{t: cl.t, nick: nick, conn: conn, changed: make(chan struct{}), done: make(chan struct{})}
	go c.readLoop()
	c.send("CAP REQ :server-time message-tags echo-message batch draft/chathistory", "NICK "+nick, "USER "+nick+" 0 * :"+nick, "CAP END")
	l := c.waitLine(0, func(m protocol.Message) bool {
		return m.Command == protocol.RPL_WELCOME || m.Command == protocol.ERR_NICKNAMEINUSE
	}, waitFor, "welcome")
	if l.msg.Command == protocol.ERR_NICKNAMEINUSE {
		conn.Close()
		<-c.done
		return nil, errNickInUse
	}
	c.waitLine(0, func(m protocol.Message) bool {
		return m.Command == protocol.RPL_ENDOFMOTD || m.Command == protocol.ERR_NOMOTD
	}, waitFor, "end of MOTD")
	cl.t.Cleanup(func() { conn.Close(); <-c.done })
	return c, nil
}

// demoConn is a client whose lines are read by a goroutine into a list
// that any goroutine can wait on.
type demoConn struct {
	t    *testing.T
	nick string
	conn net.Conn
	mu   sync.Mutex
	wmu  sync.Mutex
	// lines and err are under mu; changed is closed and replaced at each
	// new line, done closed when the connection ends.
	lines   []demoLine
	err     error
	changed chan struct{}
	done    chan struct{}
}

type demoLine struct {
	msg protocol.Message
	at  time.Time
}

func (c *demoConn) readLoop() {
	defer close(c.done)
	r := bufio.NewReader(c.conn)
	for {
		line, err := r.ReadString('\n')
		var m protocol.Message
		if err == nil {
			m, err = protocol.ParseString(line)
		}
		c.mu.Lock()
		if err != nil {
			c.err = err
		} else {
			c.lines = append(c.lines, demoLine{m, time.Now()})
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (c *demoConn) send(lines ...string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	for _, l := range lines {
		c.conn.Write([]byte(l + "\r\n")) // a dead connection shows on the reading side
	}
}

// mark is the index of the next line to arrive.
func (c *demoConn) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

// find returns the first line from index from that matches, and its index.
func (c *demoConn) find(from int, match func(protocol.Message) bool, within time.Duration) (demoLine, int, error) {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i := from; i < len(c.lines); i++ {
			if match(c.lines[i].msg) {
				l := c.lines[i]
				c.mu.Unlock()
				return l, i, nil
			}
		}
		from = len(c.lines)
		changed, err := c.changed, c.err
		c.mu.Unlock()
		if err != nil {
			return demoLine{}, -1, fmt.Errorf("connection ended: %w", err)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return demoLine{}, -1, fmt.Errorf("nothing within %v", within)
		}
	}
}

func (c *demoConn) waitLine(from int, match func(protocol.Message) bool, within time.Duration, what string) demoLine {
	c.t.Helper()
	l, _, err := c.find(from, match, within)
	if err != nil {
		c.t.Fatalf("%s: waiting for %s: %v", c.nick, what, err)
	}
	return l
}

func (c *demoConn) join(room string) {
	c.t.Helper()
	from := c.mark()
	c.send("JOIN " + room)
	c.waitLine(from, func(m protocol.Message) bool { return m.Command == protocol.RPL_ENDOFNAMES }, waitFor, "JOIN "+room)
}

func (c *demoConn) waitJoin(nick string) {
	c.t.Helper()
	c.waitLine(0, func(m protocol.Message) bool { return m.Command == "JOIN" && nickOf(m.Source) == nick }, waitFor, nick+"'s JOIN")
}

func (c *demoConn) waitClosed() {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(waitFor):
		c.t.Fatalf("%s: the connection to a killed node is still open", c.nick)
	}
}

func (c *demoConn) waitMsgid(id string) {
	c.t.Helper()
	c.waitLine(0, func(m protocol.Message) bool { tag, _ := m.Tag("msgid"); return tag == id }, waitFor, "msgid "+id)
}

// say sends a message and waits for its echo: acknowledged, with its
// msgid. A FAIL, an error numeric (returned) or no echo within waitFor: not.
func (c *demoConn) say(target, text string) (id string, refusal protocol.Message, ok bool) {
	from, sent := c.mark(), time.Now()
	c.send("PRIVMSG " + target + " :" + text)
	l, _, err := c.find(from, func(m protocol.Message) bool {
		return m.Command == "PRIVMSG" && nickOf(m.Source) == c.nick && m.Param(1) == text ||
			m.Command == "FAIL" || len(m.Command) == 3 && m.Command[0] >= '4'
	}, waitFor)
	if err != nil {
		c.t.Logf("%s: %q not acknowledged: %v", c.nick, text, err)
		return "", protocol.Message{}, false
	}
	if d := l.at.Sub(sent); d > time.Second {
		c.t.Logf("%s: %q answered after %v", c.nick, text, d)
	}
	if l.msg.Command != "PRIVMSG" {
		c.t.Logf("%s: %q refused after %v: %s", c.nick, text, l.at.Sub(sent), l.msg.String())
		return "", l.msg, false
	}
	id, _ = l.msg.Tag("msgid")
	return id, protocol.Message{}, id != ""
}

// roomMsgids lists the msgids of the room messages this client received
// live (not in a batch), in order.
func (c *demoConn) roomMsgids(room string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for _, l := range c.lines {
		_, inBatch := l.msg.Tag("batch")
		if id, ok := l.msg.Tag("msgid"); ok && !inBatch && l.msg.Command == "PRIVMSG" && l.msg.Param(0) == room {
			ids = append(ids, id)
		}
	}
	return ids
}

func (c *demoConn) lastMsgid(room string) string {
	ids := c.roomMsgids(room)
	if len(ids) == 0 {
		return ""
	}
	return ids[len(ids)-1]
}

// historyAfter reads the room's messages after ref with CHATHISTORY
// AFTER, page after page, and returns their msgids.
func (c *demoConn) historyAfter(room, ref string) []string {
	c.t.Helper()
	var ids []string
	for range 1000 {
		from := c.mark()
		c.send("CHATHISTORY AFTER " + room + " " + ref + " 100")
		start := c.waitLine(from, func(m protocol.Message) bool {
			return m.Command == "FAIL" || m.Command == "BATCH" && strings.HasPrefix(m.Param(0), "+") && m.Param(1) == "chathistory"
		}, waitFor, "CHATHISTORY "+ref)
		if start.msg.Command == "FAIL" {
			c.t.Fatalf("%s: CHATHISTORY AFTER %s %s: %s", c.nick, room, ref, start.msg.String())
		}
		batch := start.msg.Param(0)[1:]
		_, end, err := c.find(from, func(m protocol.Message) bool { return m.Command == "BATCH" && m.Param(0) == "-"+batch }, waitFor)
		if err != nil {
			c.t.Fatalf("%s: the end of batch %s: %v", c.nick, batch, err)
		}
		c.mu.Lock()
		var page []string
		for _, l := range c.lines[from:end] {
			if b, _ := l.msg.Tag("batch"); b == batch && l.msg.Command == "PRIVMSG" {
				id, _ := l.msg.Tag("msgid")
				page = append(page, id)
			}
		}
		c.mu.Unlock()
		ids = append(ids, page...)
		if len(page) < 100 {
			return ids
		}
		ref = "msgid=" + page[len(page)-1]
	}
	c.t.Fatal("CHATHISTORY: more than 1000 pages")
	return nil
}

func nickOf(source string) string {
	nick, _, _ := strings.Cut(source, "!")
	return nick
}

// demoTalk has some users send to a room, each one message at a time,
// the next once the last was echoed or refused.
type demoTalk struct {
	t       *testing.T
	mu      sync.Mutex
	byUser  map[*demoConn][]string
	failed  int
	total   int
	dropped []string      // users a room told they were not in it
	changed chan struct{} // closed and replaced at each acknowledgement
	quit    chan struct{}
	wg      sync.WaitGroup
	stop    func() // ends the talk and waits for the senders; idempotent
}

func startTalkIn(room string, users ...*demoConn) *demoTalk {
	tk := &demoTalk{t: users[0].t, byUser: map[*demoConn][]string{}, changed: make(chan struct{}), quit: make(chan struct{})}
	var once sync.Once
	tk.stop = func() { once.Do(func() { close(tk.quit) }); tk.wg.Wait() }
	tk.t.Cleanup(tk.stop) // before the connections close: cleanups run last first
	for _, c := range users {
		tk.wg.Add(1)
		go func() {
			defer tk.wg.Done()
			// A pace a busy room might have, so that a few seconds of
			// history stay a few pages.
			tick := time.NewTicker(30 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-tk.quit:
					return
				case <-tick.C:
				}
				id, refusal, ok := c.say(room, fmt.Sprintf("%s says %d", c.nick, i))
				if refusal.Command == protocol.ERR_CANNOTSENDTOCHAN {
					// Dropped from the room: the home-move race in
					// "Not done yet" (docs/CLUSTER.md). Join again, as a
					// person would, so the rest can still be checked.
					tk.mu.Lock()
					tk.dropped = append(tk.dropped, c.nick)
					tk.mu.Unlock()
					from := c.mark()
					c.send("JOIN " + room)
					c.find(from, func(m protocol.Message) bool { return m.Command == protocol.RPL_ENDOFNAMES }, waitFor)
				}
				tk.mu.Lock()
				if ok {
					tk.byUser[c] = append(tk.byUser[c], id)
					tk.total++
					close(tk.changed)
					tk.changed = make(chan struct{})
				} else {
					tk.failed++
				}
				tk.mu.Unlock()
			}
		}()
	}
	return tk
}

func (tk *demoTalk) acked() int {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.total
}

func (tk *demoTalk) droppedUsers() []string {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return slices.Compact(slices.Sorted(slices.Values(tk.dropped)))
}

func (tk *demoTalk) unacked() int {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.failed
}

func (tk *demoTalk) ackedBy(c *demoConn) []string {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return slices.Clone(tk.byUser[c])
}

func (tk *demoTalk) lastAcked(c *demoConn) string {
	tk.t.Helper()
	ids := tk.ackedBy(c)
	if len(ids) == 0 {
		tk.t.Fatalf("%s had no message acknowledged", c.nick)
	}
	return ids[len(ids)-1]
}

// waitAcked waits until n messages in all have been acknowledged.
func (tk *demoTalk) waitAcked(n int) {
	tk.t.Helper()
	deadline := time.After(2 * waitFor)
	for {
		tk.mu.Lock()
		total, changed := tk.total, tk.changed
		tk.mu.Unlock()
		if total >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			tk.t.Fatalf("%d messages acknowledged, waiting for %d: the room stopped answering", total, n)
		}
	}
}

func psOut(pid int) string {
	out, _ := exec.Command("ps", "-o", "pid,ppid,stat,cmd", "-p", strconv.Itoa(pid)).CombinedOutput()
	return string(out)
}
