package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

var multilineCaps = []string{"batch", "draft/multiline", "echo-message", "labeled-response", "message-tags", "server-time"}

// readUntilBatchEnd reads a whole multiline batch (the client has just been
// sent one) and returns its lines, BATCH + and BATCH - included.
func readBatch(c *client) []protocol.Message {
	c.t.Helper()
	start, _ := c.expect("BATCH")
	out := []protocol.Message{start}
	for {
		m := c.read()
		out = append(out, m)
		if m.Command == "BATCH" {
			return out
		}
	}
}

func sendMultiline(c *client, label, target string, lines ...string) {
	c.t.Helper()
	start := "BATCH +b1 draft/multiline " + target
	if label != "" {
		start = "@label=" + label + " " + start
	}
	c.send(start)
	for _, l := range lines {
		tags := "@batch=b1"
		if t, ok := strings.CutPrefix(l, "+"); ok {
			tags, l = tags+";draft/multiline-concat", t
		}
		c.send(tags + " PRIVMSG " + target + " :" + l)
	}
	c.send("BATCH -b1")
}

// A multiline paste is one message: a batch to those who took
// draft/multiline, plain lines (blank ones left out, the msgid on the
// first) to the others, one history entry replayed in both forms.
func TestMultilineDeliveredPerClient(t *testing.T) {
	_, addr := testServer(t)
	alice := connectCaps(t, addr, "alice", multilineCaps...)
	bob := connectCaps(t, addr, "bob", multilineCaps...)
	carol := connectCaps(t, addr, "carol", "message-tags", "server-time")
	for _, c := range []*client{alice, bob, carol} {
		c.join("#paste")
	}
	alice.sync()
	bob.sync()

	sendMultiline(alice, "xyz", "#paste", "hello", "", "#how is ", "+everyone?")
	echo := readBatch(alice)
	if got, _ := echo[0].Tag("label"); got != "xyz" || echo[0].Param(1) != rooms.MultilineBatch || echo[0].Param(2) != "#paste" {
		t.Fatalf("echo starts with %q", echo[0].String())
	}
	msgid, _ := echo[0].Tag("msgid")
	at, _ := echo[0].Tag("time")
	if msgid == "" || at == "" || len(echo) != 6 {
		t.Fatalf("echo: %v", echo)
	}
	relay := readBatch(bob)
	if id, _ := relay[0].Tag("msgid"); id != msgid || len(relay) != 6 {
		t.Fatalf("bob: %v", relay)
	}
	ref := strings.TrimPrefix(relay[0].Param(0), "+")
	wantText := []string{"hello", "", "#how is ", "everyone?"}
	for i, m := range relay[1:5] {
		if b, _ := m.Tag("batch"); b != ref || m.Command != "PRIVMSG" || m.Param(1) != wantText[i] {
			t.Errorf("bob line %d: %q", i, m.String())
		}
		if _, concat := m.Tag(rooms.MultilineConcat); concat != (i == 3) {
			t.Errorf("bob line %d: concat %v", i, concat)
		}
	}
	if relay[5].Param(0) != "-"+ref {
		t.Errorf("bob's batch ends with %q", relay[5].String())
	}
	var fallback []protocol.Message
	for range 3 {
		m, _ := carol.expect("PRIVMSG")
		fallback = append(fallback, m)
	}
	for i, want := range []string{"hello", "#how is ", "everyone?"} {
		m := fallback[i]
		id, _ := m.Tag("msgid")
		ts, _ := m.Tag("time")
		if m.Param(1) != want || ts != at || (i == 0) != (id == msgid) || (i > 0 && id != "") {
			t.Errorf("carol line %d: %q", i, m.String())
		}
	}

	// A joiner gets it replayed as what it takes.
	dave := connectCaps(t, addr, "dave", "batch", "server-time")
	dave.send("JOIN #paste")
	var replayed []string
	for {
		m := dave.read()
		if m.Command == "PRIVMSG" {
			replayed = append(replayed, m.Param(1))
		}
		if m.Command == "BATCH" && strings.HasPrefix(m.Param(0), "-") {
			break
		}
	}
	if strings.Join(replayed, "|") != "hello|#how is |everyone?" {
		t.Errorf("dave's replay: %q", replayed)
	}

	// Privately too, and to a client without tags at all.
	erin := connect(t, addr, "erin")
	sendMultiline(alice, "", "erin", "one", "two")
	readBatch(alice)
	for _, want := range []string{"one", "two"} {
		if m, _ := erin.expect("PRIVMSG"); m.Param(1) != want || len(m.Tags) != 0 {
			t.Errorf("erin got %q", m.String())
		}
	}
}

func TestMultilineRefusals(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Limits.MultilineMaxLines, c.Limits.MultilineMaxBytes = 3, 600
	})
	alice := connectCaps(t, addr, "alice", multilineCaps...)
	alice.join("#r")
	fail := func(code string) protocol.Message {
		t.Helper()
		m, _ := alice.expect("FAIL")
		if m.Param(0) != "BATCH" || m.Param(1) != code {
			t.Fatalf("got %q, want FAIL BATCH %s", m.String(), code)
		}
		return m
	}
	sendMultiline(alice, "", "#r", "a", "b", "c", "d")
	if m := fail("MULTILINE_MAX_LINES"); m.Param(2) != "3" {
		t.Errorf("%q", m.String())
	}
	sendMultiline(alice, "", "#r", strings.Repeat("x", 400), strings.Repeat("y", 400))
	if m := fail("MULTILINE_MAX_BYTES"); m.Param(2) != "600" {
		t.Errorf("%q", m.String())
	}
	sendMultiline(alice, "", "#r", "hi", "+")
	fail("MULTILINE_INVALID")
	sendMultiline(alice, "", "#r", "", "")
	fail("MULTILINE_INVALID")
	alice.send("BATCH +b2 draft/multiline #r", "@batch=b3 PRIVMSG #r :hi", "BATCH -b2")
	fail("MULTILINE_INVALID")
	alice.send("BATCH +b4 draft/multiline #r", "@batch=b4 PRIVMSG #other :hi", "BATCH -b4")
	fail("MULTILINE_INVALID")
	// None of them reached the room.
	for _, m := range alice.sync() {
		if m.Command == "PRIVMSG" || m.Command == "BATCH" {
			t.Errorf("delivered after a refusal: %q", m.String())
		}
	}
	// Without the capability there is no batch to open.
	plain := connectCaps(t, addr, "plain", "batch")
	plain.send("BATCH +b1 draft/multiline #r")
	m, _ := plain.expect("FAIL")
	if m.Param(1) != "MULTILINE_INVALID" {
		t.Errorf("%q", m.String())
	}
}

// The lines of a batch cost no flood tokens: a paste of many lines from a
// client with a small burst is neither delayed nor dropped.
func TestMultilineLinesAreNotFlood(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Limits.FloodBurst, c.Limits.FloodRate, c.Limits.FloodMaxLag = 10, 1, time.Second
	})
	alice := connectCaps(t, addr, "alice", multilineCaps...)
	alice.send("JOIN #r")
	alice.expect("JOIN")
	lines := make([]string, 60)
	for i := range lines {
		lines[i] = "line"
	}
	sendMultiline(alice, "", "#r", lines...)
	if got := readBatch(alice); len(got) != 62 {
		t.Fatalf("echo has %d lines", len(got))
	}
}

func TestNoImplicitNames(t *testing.T) {
	_, addr := testServer(t)
	quiet := connectCaps(t, addr, "quiet", "draft/no-implicit-names")
	quiet.send("JOIN #n")
	quiet.expect("JOIN")
	for _, m := range quiet.sync() {
		if m.Command == protocol.RPL_NAMREPLY || m.Command == protocol.RPL_ENDOFNAMES {
			t.Fatalf("NAMES after JOIN: %q", m.String())
		}
	}
	quiet.send("NAMES #n") // still there when asked
	quiet.expect(protocol.RPL_ENDOFNAMES)
	other := connect(t, addr, "other")
	other.join("#n")
}

func TestPreAway(t *testing.T) {
	_, addr := testServer(t)
	c := dial(t, addr)
	c.nick = "early"
	c.send("CAP LS 302", "CAP REQ draft/pre-away", "NICK early", "USER early 0 * :early", "AWAY :on my phone")
	c.expect("CAP")
	c.send("CAP END")
	c.expectEndOfMOTD()
	peer := connect(t, addr, "peer")
	peer.send("WHOIS early")
	if m, _ := peer.expect(protocol.RPL_AWAY); m.Param(2) != "on my phone" {
		t.Fatalf("%q", m.String())
	}
	c.send("AWAY *")
	c.expect(protocol.RPL_NOWAWAY)
	peer.send("WHOIS early")
	if m, _ := peer.expect(protocol.RPL_AWAY); m.Param(2) != awayStar {
		t.Fatalf("AWAY *: %q", m.String())
	}

	// Without the capability AWAY waits for registration, as before.
	late := dial(t, addr)
	late.send("CAP LS 302", "NICK late", "USER late 0 * :late", "AWAY :x")
	late.expect(protocol.ERR_NOTREGISTERED)
}

func TestSTSAdvertised(t *testing.T) {
	srv, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Listen.STSDuration, c.Listen.STSPort = 30*24*time.Hour, 6697
	})
	ls := func(version string) string {
		c := dial(t, addr)
		c.send("CAP LS" + version)
		m := c.capLS()
		return m.Param(len(m.Params) - 1)
	}
	if caps := " " + ls(" 302") + " "; !strings.Contains(caps, " sts=port=6697 ") {
		t.Errorf("CAP LS 302 on plain TCP: %q", caps)
	}
	if caps := ls(""); strings.Contains(caps, "sts") {
		t.Errorf("CAP LS without values: %q", caps)
	}
	if v := srv.stsValue("tls"); v != "duration=2592000" {
		t.Errorf("on TLS: %q", v)
	}
	if v := srv.stsValue("websocket"); v != "" {
		t.Errorf("on a WebSocket: %q", v)
	}
	c := dial(t, addr)
	c.send("CAP REQ sts")
	if m, _ := c.expect("CAP"); m.Param(1) != "NAK" {
		t.Errorf("REQ sts: %q", m.String())
	}

	_, off := testServer(t)
	c = dial(t, off)
	c.send("CAP LS 302")
	if m, _ := c.expect("CAP"); strings.Contains(m.String(), "sts") {
		t.Errorf("STS off by default: %q", m.String())
	}
}

func TestCHGHOST(t *testing.T) {
	_, addr := testServer(t, withOperator(t))
	op := connect(t, addr, "op")
	target := connectCaps(t, addr, "target", "chghost")
	watcher := connectCaps(t, addr, "watcher", "chghost")
	old := connect(t, addr, "old")
	for _, c := range []*client{target, watcher, old} {
		c.join("#h")
	}
	watcher.sync()

	op.send("CHGHOST target staff.example")
	op.expect(protocol.ERR_NOPRIVILEGES)
	op.send("OPER boss boss-pw")
	op.expect(protocol.RPL_YOUREOPER)
	op.send("CHGHOST target bad@host")
	op.expect("FAIL")
	op.send("CHGHOST target staff.example")
	op.expect("NOTICE")

	m, _ := watcher.expect("CHGHOST")
	if !strings.HasPrefix(m.Source, "target!") || strings.HasSuffix(m.Source, "@staff.example") || m.Param(0) != "~target" || m.Param(1) != "staff.example" {
		t.Fatalf("watcher got %q", m.String())
	}
	if m, _ := target.expect("CHGHOST"); m.Param(1) != "staff.example" {
		t.Fatalf("target got %q", m.String())
	}
	if m, _ := target.expect(protocol.RPL_VISIBLEHOST); m.Param(1) != "staff.example" {
		t.Fatalf("target got %q", m.String())
	}
	target.send("PRIVMSG #h :hi")
	if m, _ := old.expect("PRIVMSG"); m.Source != "target!~target@staff.example" {
		t.Fatalf("old got %q", m.String())
	}
	for _, m := range old.sync() {
		if m.Command == "CHGHOST" {
			t.Errorf("a client without chghost got %q", m.String())
		}
	}
	old.send("WHOIS target")
	if m, _ := old.expect(protocol.RPL_WHOISUSER); m.Param(3) != "staff.example" {
		t.Errorf("WHOIS: %q", m.String())
	}
}

// An open batch frees only its own lines: a client cannot open one and
// then flood untagged commands past the flood control.
func TestOpenBatchFreesOnlyItsLines(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Limits.FloodBurst, c.Limits.FloodRate, c.Limits.FloodMaxLag = 20, 1, time.Second
	})
	alice := connectCaps(t, addr, "alice", multilineCaps...)
	alice.send("JOIN #r")
	alice.expect("JOIN")
	alice.send("BATCH +b draft/multiline #r")
	for range 60 {
		alice.send("PING flood")
	}
	alice.send("PING end")
	for {
		m, err := alice.tryRead()
		if err != nil {
			t.Fatal("the connection ended without an Excess flood ERROR:", err)
		}
		switch {
		case m.Command == "PONG" && m.Param(1) == "end":
			t.Fatal("61 untagged lines inside an open batch went through a burst of 20 unthrottled")
		case m.Command == "ERROR":
			if !strings.Contains(m.Param(0), "Excess flood") {
				t.Fatalf("got %v", m)
			}
			return
		}
	}
}
