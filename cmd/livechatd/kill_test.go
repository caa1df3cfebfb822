package main

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livechat/livechat/protocol"
)

// The kill -9 durability tests (issue 13, item 3): a real livechatd
// process, on one data dir, is killed with SIGKILL while a writer sends to
// a room as fast as its echoes come back, restarted, and the room's whole
// history read back with CHATHISTORY. history.sync: interval may lose what
// arrived in the last sync_interval, never more and never out of order;
// history.sync: always may lose nothing that was delivered. The last round
// stops with SIGTERM, which loses nothing that was delivered either way.
//
// Each round sends killPings messages one at a time (the latency a person
// sees), then killRate a second for a while (a busy room), then a burst of
// 300 to 1,000 with killWindow in flight, and the kill comes right after
// the burst's last send. The rounds and their figures are logged.

func TestKillDurabilityInterval(t *testing.T) {
	// 10 ms is the interval; the margin is for a machine so loaded that a
	// commit and its fsync take far longer. The real loss is logged. The
	// steady phase outlasts the margin, so that some of each round's
	// messages are old enough to be owed.
	runKillRounds(t, killParams{sync: "interval", rounds: 5, margin: 2 * time.Second, steady: 2200 * time.Millisecond})
}

func TestKillDurabilitySyncAlways(t *testing.T) {
	// Durable before delivery: whatever was echoed survives, margin 0.
	runKillRounds(t, killParams{sync: "always", rounds: 5, margin: 0, steady: 300 * time.Millisecond})
}

type killParams struct {
	sync   string
	rounds int
	// margin: every message echoed longer than this before the kill must
	// survive it.
	margin time.Duration
	// steady is how long each round writes at killRate, before its burst.
	steady time.Duration
}

const (
	killRoom    = "#kill"
	killWindow  = 32   // messages in flight during a burst
	killPings   = 100  // messages sent one at a time per round, for latency
	killRate    = 1000 // messages a second in the steady phase
	killMaxSent = 8000 // a bound on one round, whatever the timings
)

// killMsg is one message the writer sent, and what it saw of it.
type killMsg struct {
	text   string
	round  int
	sent   time.Time
	echoed bool
	recv   time.Time // when the echo arrived
	msgid  string
	time   string // the server-time tag
	ping   bool   // sent alone, for the latency figure
}

// killRun is the state across rounds.
type killRun struct {
	t      *testing.T
	p      killParams
	dir    string
	msgs   []killMsg
	byText map[string]int
	// recovered is the history read after the last restart, as indexes
	// into msgs.
	recovered  []int
	roundFrom  int // the first index of the round being written
	steadyFrom int // the messages steady sent in this round: [steadyFrom, steadyTo)
	steadyTo   int
	burstFrom  int // the first message burst sent in this round
	// burstEchoes and burstTime add up the bursts, for their rate.
	burstEchoes int
	burstTime   time.Duration
	pingLat     []time.Duration
	loadLat     []time.Duration
	stats       []string // one line per round, logged at the end
}

func runKillRounds(t *testing.T, p killParams) {
	if testing.Short() {
		t.Skip("kills a real daemon in a loop for several seconds")
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("history.sync %s, seed %d", p.sync, seed)
	r := &killRun{t: t, p: p, dir: t.TempDir(), byText: map[string]int{}}

	d := startKillDaemon(t, r.dir, p.sync)
	c, limit := dialKill(t, d)
	r.verify(c.readHistory(limit), -1, time.Time{}, 0)
	for round := range p.rounds + 1 {
		last := round == p.rounds // ends with SIGTERM instead
		r.roundFrom = len(r.msgs)
		echoes := c.startReading()
		steady, margin := p.steady, p.margin
		if last {
			steady, margin = 200*time.Millisecond, 0
		}
		r.pings(c, echoes, round)
		r.steady(c, echoes, round, steady)
		r.burst(c, echoes, round, rng.IntN(701)+300)
		stopAt := time.Now()
		if last {
			d.term()
		} else {
			d.kill()
		}
		r.drain(echoes)
		r.countBurst()
		d = startKillDaemon(t, r.dir, p.sync)
		c, limit = dialKill(t, d)
		r.verify(c.readHistory(limit), round, stopAt, margin)
	}
	d.term()
	for _, s := range r.stats {
		t.Log(s)
	}
	t.Logf("echo latency, one message at a time: %s", latencies(r.pingLat))
	t.Logf("echo latency at %d msg/s with up to %d in flight: %s", killRate, killWindow, latencies(r.loadLat))
	if r.burstTime > 0 {
		t.Logf("bursts with %d in flight: %.0f messages a second", killWindow, float64(r.burstEchoes)/r.burstTime.Seconds())
	}
}

// latencies says the p50, p99 and max of ds.
func latencies(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	q := func(f float64) time.Duration { return ds[min(len(ds)-1, int(f*float64(len(ds))))] }
	return fmt.Sprintf("p50 %v, p99 %v, max %v over %d messages", q(0.5), q(0.99), ds[len(ds)-1], len(ds))
}

// add records a message about to be sent.
func (r *killRun) add(round int, ping bool) string {
	i := len(r.msgs)
	text := fmt.Sprintf("r%d m%05d durable, in order, with the same msgid and time as echoed", round, i)
	r.msgs = append(r.msgs, killMsg{text: text, round: round, sent: time.Now(), ping: ping})
	r.byText[text] = i
	return text
}

// echoed records an echo.
func (r *killRun) echoed(e killEcho) {
	r.t.Helper()
	i, ok := r.byText[e.text]
	if !ok || r.msgs[i].echoed {
		r.t.Fatalf("echo of %q: never sent, or echoed twice", e.text)
	}
	m := &r.msgs[i]
	m.echoed, m.recv, m.msgid, m.time = true, e.recv, e.msgid, e.time
	if m.msgid == "" || m.time == "" {
		r.t.Fatalf("echo of %q without msgid or time", e.text)
	}
	if m.ping {
		r.pingLat = append(r.pingLat, m.recv.Sub(m.sent))
	} else if i >= r.steadyFrom && i < r.steadyTo {
		r.loadLat = append(r.loadLat, m.recv.Sub(m.sent))
	}
}

// pings sends killPings messages one at a time, for the latency figure.
func (r *killRun) pings(c *killConn, echoes <-chan killEcho, round int) {
	r.t.Helper()
	for range killPings {
		c.privmsg(r.add(round, true))
		c.flush()
		r.echoed(r.nextEcho(echoes))
	}
}

// steady sends killRate messages a second, up to killWindow in flight,
// for d, then waits for the last echoes: a room in ordinary use, whose
// echo latency is the figure that matters to people.
func (r *killRun) steady(c *killConn, echoes <-chan killEcho, round int, d time.Duration) {
	r.t.Helper()
	r.steadyFrom, r.steadyTo = len(r.msgs), math.MaxInt
	defer func() { r.steadyTo = len(r.msgs) }()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	inflight := 0
	for sent := 0; time.Since(start) < d && sent < killMaxSent; {
		select {
		case <-tick.C:
			due := int(time.Since(start)*killRate/time.Second) - sent
			for ; due > 0 && inflight < killWindow; due-- {
				c.privmsg(r.add(round, false))
				inflight++
				sent++
			}
			c.flush()
		case e, ok := <-echoes:
			if !ok {
				r.t.Fatalf("the connection ended while writing: %v", c.readErr)
			}
			r.echoed(e)
			inflight--
		}
	}
	for ; inflight > 0; inflight-- {
		r.echoed(r.nextEcho(echoes))
	}
}

// burst sends n messages as fast as echoes come back, killWindow in
// flight, and returns right after the last is sent: the daemon is stopped
// under full load, with a commit in progress or about to start.
func (r *killRun) burst(c *killConn, echoes <-chan killEcho, round, n int) {
	r.t.Helper()
	r.burstFrom = len(r.msgs)
	inflight := 0
	for sent := 0; ; {
		for inflight < killWindow && sent < n {
			c.privmsg(r.add(round, false))
			inflight++
			sent++
		}
		c.flush()
		if sent == n {
			return
		}
		r.echoed(r.nextEcho(echoes))
		inflight--
	}
}

// countBurst adds the round's burst to the rate: its echoes, from its
// first send to its last echo.
func (r *killRun) countBurst() {
	var last time.Time
	n := 0
	for _, m := range r.msgs[r.burstFrom:] {
		if m.echoed {
			n++
			last = m.recv
		}
	}
	if n > 0 {
		r.burstEchoes += n
		r.burstTime += last.Sub(r.msgs[r.burstFrom].sent)
	}
}

// nextEcho waits for the next echo.
func (r *killRun) nextEcho(echoes <-chan killEcho) killEcho {
	r.t.Helper()
	select {
	case e, ok := <-echoes:
		if !ok {
			r.t.Fatal("the connection ended while writing")
		}
		return e
	case <-time.After(waitFor):
		r.t.Fatalf("no echo within %v", waitFor)
	}
	return killEcho{}
}

// drain records the echoes that arrived before the connection closed.
func (r *killRun) drain(echoes <-chan killEcho) {
	r.t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case e, ok := <-echoes:
			if !ok {
				return
			}
			r.echoed(e)
		case <-timeout:
			r.t.Fatal("the connection did not end after the daemon did")
		}
	}
}

// verify checks the history read after a restart; round is the round
// that ended at stop (-1 before any). Every message echoed more than
// margin before stop must be there, every echoed one with margin 0; from
// that round, what is there must
// be a prefix of what was sent (a group commit is all or nothing, in
// append order); what earlier restarts found must still be there, first.
func (r *killRun) verify(h []killHistory, round int, stop time.Time, margin time.Duration) {
	r.t.Helper()
	var got []int
	for _, e := range h {
		i, ok := r.byText[e.text]
		switch {
		case !ok:
			r.t.Fatalf("history has %q, which was never sent", e.text)
		case len(got) > 0 && i <= got[len(got)-1]:
			r.t.Fatalf("history has message %d after %d: out of order or twice", i, got[len(got)-1])
		case r.msgs[i].echoed && (e.msgid != r.msgs[i].msgid || e.time != r.msgs[i].time):
			r.t.Fatalf("message %d came back as msgid %s time %s; it was echoed as %s %s", i, e.msgid, e.time, r.msgs[i].msgid, r.msgs[i].time)
		case !r.msgs[i].echoed && r.msgs[i].round != round && !slices.Contains(r.recovered, i):
			// An earlier restart found it in flight; it stays found.
			r.t.Fatalf("message %d of round %d is in history without an echo: only the last round's in-flight messages may be", i, r.msgs[i].round)
		}
		got = append(got, i)
	}
	if len(got) < len(r.recovered) || !slices.Equal(got[:len(r.recovered)], r.recovered) {
		r.t.Fatalf("history after round %d does not start with the %d messages found before (found %d)", round, len(r.recovered), len(got))
	}
	kept := got[len(r.recovered):]
	for k, i := range kept {
		if i != r.roundFrom+k {
			r.t.Fatalf("round %d: message %d is back but %d is lost: not a prefix", round, i, r.roundFrom+k)
		}
	}
	r.recovered = got
	if round < 0 {
		if len(got) != 0 {
			r.t.Fatalf("a new data dir has %d messages", len(got))
		}
		return
	}

	sent := len(r.msgs) - r.roundFrom
	echoed, lost, unechoed := 0, 0, 0
	var oldestLost, youngestLost, youngestKept time.Duration = -1, -1, -1
	for i := r.roundFrom; i < len(r.msgs); i++ {
		m := r.msgs[i]
		back := i < r.roundFrom+len(kept)
		if !m.echoed {
			if back {
				unechoed++
			}
			continue
		}
		echoed++
		age := stop.Sub(m.recv)
		if back {
			youngestKept = age
			continue
		}
		lost++
		if oldestLost < 0 {
			oldestLost = age
		}
		youngestLost = age
		if margin == 0 || age > margin {
			r.t.Errorf("round %d: message %d was echoed %v before the stop and is lost (margin %v)", round, i, age, margin)
		}
	}
	how := "SIGKILL"
	if round == r.p.rounds {
		how = "SIGTERM"
	}
	line := fmt.Sprintf("round %d (%s): sent %d, echoed %d, back %d (%d of them never echoed), lost %d echoed",
		round, how, sent, echoed, len(kept), unechoed, lost)
	if lost > 0 {
		line += fmt.Sprintf("; the oldest lost was echoed %v before the kill, the youngest %v", oldestLost.Round(time.Microsecond), youngestLost.Round(time.Microsecond))
		if youngestLost < 0 {
			line += " (after it: sent by the daemon before it died, read by the test after)"
		}
	}
	if youngestKept >= 0 {
		line += fmt.Sprintf("; the youngest kept was echoed %v before it", youngestKept.Round(time.Microsecond))
	}
	r.stats = append(r.stats, line)
}

// killDaemon is a livechatd process of this test.
type killDaemon struct {
	t      *testing.T
	cmd    *exec.Cmd
	logs   *processLog
	exited chan struct{}
	addr   string
}

// startKillDaemon starts livechatd on dir, the way TestProcess does, and
// waits for it to accept clients.
func startKillDaemon(t *testing.T, dir, sync string) *killDaemon {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--ws-listen", "", "--data-dir", dir)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LIVECHAT_") && !strings.HasPrefix(kv, "LIVECHATD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "LIVECHATD_TEST_RUN_MAIN=1", // see TestMain
		"LIVECHAT_HISTORY_SYNC="+sync, "LIVECHAT_HISTORY_MAX_QUERY=1000",
		"LIVECHAT_ACCOUNTS_STORE=memory",
		"LIVECHAT_LIMITS_FLOOD_BURST=100000", "LIVECHAT_LIMITS_FLOOD_RATE=100000")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &killDaemon{t: t, cmd: cmd, logs: newProcessLog(t), exited: make(chan struct{})}
	go d.logs.read(stderr)
	go func() {
		defer close(d.exited)
		<-d.logs.eof // Wait must not run before the pipe is read to the end
		cmd.Wait()
	}()
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("daemon log (pid %d):\n%s", cmd.Process.Pid, d.logs)
		}
	})
	d.addr = d.logs.wait("accepting clients", map[string]string{"transport": "tcp"})["addr"].(string)
	return d
}

// kill sends SIGKILL to this test's own child and waits for it to be gone,
// so the next one can lock the files.
func (d *killDaemon) kill() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Kill()
	select {
	case <-d.exited:
	case <-time.After(waitFor):
		d.t.Fatal("the daemon outlived SIGKILL")
	}
}

// term stops the daemon with SIGTERM and expects a clean exit.
func (d *killDaemon) term() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(waitFor):
		d.t.Fatal("the daemon did not exit after SIGTERM")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		d.t.Fatalf("the daemon exited %d after SIGTERM", code)
	}
}

// killConn is the writer's connection.
type killConn struct {
	t       *testing.T
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	readErr error // why the reading goroutine stopped
}

// killEcho is an echoed message.
type killEcho struct {
	text, msgid, time string
	recv              time.Time
}

// killHistory is a message CHATHISTORY returned.
type killHistory struct{ text, msgid, time string }

// dialKill connects the writer, negotiates what it needs, joins the room
// and returns the CHATHISTORY page limit the daemon advertises.
func dialKill(t *testing.T, d *killDaemon) (*killConn, int) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", d.addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &killConn{t: t, conn: conn, r: bufio.NewReaderSize(conn, 64<<10), w: bufio.NewWriterSize(conn, 64<<10)}
	c.send("CAP REQ :server-time message-tags echo-message batch draft/chathistory", "NICK writer", "USER writer 0 * :writer", "CAP END")
	if m := c.expect("CAP"); m.Param(1) != "ACK" {
		t.Fatalf("CAP: %q", m.String())
	}
	limit := 0
	for m := c.read(); m.Command != protocol.RPL_ENDOFMOTD && m.Command != protocol.ERR_NOMOTD; m = c.read() {
		if m.Command != protocol.RPL_ISUPPORT {
			continue
		}
		for _, p := range m.Params {
			if v, ok := strings.CutPrefix(p, "CHATHISTORY="); ok {
				limit, _ = strconv.Atoi(v)
			}
		}
	}
	if limit < 1 {
		t.Fatal("no CHATHISTORY= in ISUPPORT")
	}
	c.send("JOIN " + killRoom)
	c.expect(protocol.RPL_ENDOFNAMES)
	return c, limit
}

func (c *killConn) send(lines ...string) {
	c.t.Helper()
	for _, l := range lines {
		c.w.WriteString(l + "\r\n")
	}
	c.flush()
}

func (c *killConn) privmsg(text string) {
	c.w.WriteString("PRIVMSG " + killRoom + " :" + text + "\r\n")
}

// flush sends what privmsg buffered. A write error is not fatal: the
// daemon may just have been killed, which the reading side sees.
func (c *killConn) flush() {
	c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	c.w.Flush()
}

func (c *killConn) read() protocol.Message {
	c.t.Helper()
	m, err := c.readMsg()
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

func (c *killConn) readMsg() (protocol.Message, error) {
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	line, err := c.r.ReadString('\n')
	if err != nil {
		return protocol.Message{}, err
	}
	m, err := protocol.ParseString(line)
	if err != nil {
		return m, fmt.Errorf("parse %q: %w", line, err)
	}
	return m, nil
}

func (c *killConn) expect(command string) protocol.Message {
	c.t.Helper()
	for range 1000 {
		if m := c.read(); m.Command == command {
			return m
		}
	}
	c.t.Fatalf("no %s in 1000 lines", command)
	return protocol.Message{}
}

// startReading reads echoes in a goroutine until the connection ends,
// which closes the channel. The channel holds a round's worth, so the
// reader never waits on the test and records arrival times as they are.
func (c *killConn) startReading() <-chan killEcho {
	echoes := make(chan killEcho, killPings+1000+killMaxSent+killWindow)
	go func() {
		defer close(echoes)
		for {
			m, err := c.readMsg()
			if err != nil {
				c.readErr = err
				return
			}
			if m.Command != "PRIVMSG" {
				continue
			}
			e := killEcho{text: m.Param(1), recv: time.Now()}
			e.msgid, _ = m.Tag("msgid")
			e.time, _ = m.Tag("time")
			echoes <- e
		}
	}()
	return echoes
}

// readHistory reads the room's whole history, oldest first, in pages of
// limit: forward with AFTER, and backward with LATEST and BEFORE, which
// must agree.
func (c *killConn) readHistory(limit int) []killHistory {
	c.t.Helper()
	var fwd []killHistory
	ref := "timestamp=2000-01-01T00:00:00.000Z"
	for range 10000 {
		page := c.chathistory("AFTER " + killRoom + " " + ref + " " + strconv.Itoa(limit))
		fwd = append(fwd, page...)
		if len(page) < limit {
			break
		}
		ref = "msgid=" + page[len(page)-1].msgid
	}
	var back []killHistory
	page := c.chathistory("LATEST " + killRoom + " * " + strconv.Itoa(limit))
	for range 10000 {
		back = append(page, back...)
		if len(page) < limit {
			break
		}
		page = c.chathistory("BEFORE " + killRoom + " msgid=" + page[0].msgid + " " + strconv.Itoa(limit))
	}
	if !slices.Equal(fwd, back) {
		at := 0
		for at < min(len(fwd), len(back)) && fwd[at] == back[at] {
			at++
		}
		c.t.Fatalf("history read forward with AFTER (%d messages) and backward with LATEST and BEFORE (%d) differ from message %d on; the last AFTER was from %s",
			len(fwd), len(back), at, ref)
	}
	return fwd
}

// chathistory sends one query and returns the messages of its batch.
func (c *killConn) chathistory(query string) []killHistory {
	c.t.Helper()
	c.send("CHATHISTORY " + query)
	var out []killHistory
	ref := ""
	for range 100000 {
		m := c.read()
		switch {
		case m.Command == "FAIL":
			c.t.Fatalf("CHATHISTORY %s: %s", query, m.String())
		case m.Command == "BATCH" && ref == "" && strings.HasPrefix(m.Param(0), "+"):
			ref = m.Param(0)[1:]
		case m.Command == "BATCH" && m.Param(0) == "-"+ref:
			return out
		case m.Command == "PRIVMSG":
			if b, _ := m.Tag("batch"); b != ref || ref == "" {
				c.t.Fatalf("CHATHISTORY %s: a message outside its batch: %s", query, m.String())
			}
			h := killHistory{text: m.Param(1)}
			h.msgid, _ = m.Tag("msgid")
			h.time, _ = m.Tag("time")
			out = append(out, h)
		}
	}
	c.t.Fatalf("CHATHISTORY %s: no end of batch", query)
	return nil
}
