package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
)

// FuzzSessions drives three sessions of one in-process server (over
// net.Pipe, so an execution costs no sockets) with command sequences
// decoded from the input, then checks:
//   - nothing panics and no room had to recover from a panic;
//   - every line a client receives is one valid protocol line: it ends in
//     "\r\n", has no NUL/CR/LF inside, fits the length limits and parses;
//   - each client's idea of a room's members, built from the JOIN, PART,
//     KICK, QUIT and NICK lines it was told, matches every NAMES reply it
//     gets while a member, including one asked for after quiescing;
//   - once the sessions quit and the server shut down, no goroutine is
//     left behind.
//
// The input's first byte chooses whether the sessions register first;
// then each op is a byte (session, and raw bytes or a command from the
// vocabulary) followed by the bytes that pick its arguments.
func FuzzSessions(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		autoRegister, ops := decodeOps(data)
		runSessions(t, autoRegister, ops)
	})
}

const (
	fuzzSessions = 3
	maxFuzzOps   = 64
	maxRawOp     = 128
)

type fuzzOp struct {
	sess int
	line []byte
}

// argPicker hands out the input's bytes one at a time, then zeros.
type argPicker struct{ data []byte }

func (p *argPicker) byte() byte {
	if len(p.data) == 0 {
		return 0
	}
	b := p.data[0]
	p.data = p.data[1:]
	return b
}

func (p *argPicker) pick(xs ...string) string { return xs[int(p.byte())%len(xs)] }

func (p *argPicker) room() string {
	return p.pick("#a", "#b", "#c", "a", "#A", "#a,#b", "0", "#", "&x", "#b,c")
}
func (p *argPicker) nick() string {
	return p.pick("n0", "n1", "n2", "N1", "acct0", "acct1", "9bad", "*", "guest-1", "n0,n1")
}
func (p *argPicker) text() string {
	return p.pick("hi", "hello there", ":colon", "\x02bold\x02", "a\x07bell", "", " ", "\xff", "\x01ACTION waves\x01", strings.Repeat("long", 120))
}
func (p *argPicker) acct() string { return p.pick("acct0", "acct1", "n1", "x") }
func (p *argPicker) pass() string { return p.pick("password1", "wrong-pass", "pw") }
func (p *argPicker) mode() string {
	return p.pick("+o", "-o", "+v", "-v", "+m", "-m", "+t", "-t", "+i", "+s", "-s", "+k key", "-k key",
		"+l 2", "-l", "+b *!*@*", "-b *!*@*", "+e n0!*@*", "+n", "+I *!*@*", "+ov", "+b")
}
func (p *argPicker) caps() string {
	return p.pick("message-tags", "echo-message server-time", "batch labeled-response", "multi-prefix",
		"userhost-in-names extended-join", "account-notify away-notify", "draft/chathistory batch",
		"sasl", "-echo-message", "chghost setname invite-notify", "bogus", "extended-monitor away-notify",
		"draft/message-redaction draft/read-marker draft/event-playback")
}

// vocabulary is the commands the fuzzer composes; each reads its
// arguments from the picker.
var vocabulary = []func(p *argPicker) string{
	func(p *argPicker) string { return "NICK " + p.nick() },
	func(p *argPicker) string { return "USER " + p.acct() + " 0 * :" + p.text() },
	func(p *argPicker) string { return "CAP " + p.pick("LS 302", "LS", "END", "LIST", "REQ :"+p.caps()) },
	func(p *argPicker) string { return "PASS " + p.pass() },
	func(p *argPicker) string {
		a := p.acct()
		return "AUTHENTICATE " + p.pick("PLAIN", "*", base64.StdEncoding.EncodeToString([]byte(a+"\x00"+a+"\x00"+p.pass())), "=", "!!")
	},
	func(p *argPicker) string { return "JOIN " + p.room() + p.pick("", " key") },
	func(p *argPicker) string { return "PART " + p.room() + " :" + p.text() },
	func(p *argPicker) string { return "MODE " + p.room() + " " + p.mode() + " " + p.nick() },
	func(p *argPicker) string { return "MODE " + p.pick(p.room(), p.nick()+" +i", p.nick()+" -i") },
	func(p *argPicker) string { return "KICK " + p.room() + " " + p.nick() + " :" + p.text() },
	func(p *argPicker) string { return "TOPIC " + p.room() + p.pick("", " :"+p.text()) },
	func(p *argPicker) string {
		return p.pick("PRIVMSG ", "NOTICE ", "MSG ") + p.pick(p.room(), p.nick()) + " :" + p.text()
	},
	func(p *argPicker) string { return "@+draft/reply=x;label=l TAGMSG " + p.room() },
	func(p *argPicker) string { return "NAMES" + p.pick("", " "+p.room()) },
	func(p *argPicker) string { return p.pick("WHO ", "WHOIS ") + p.pick(p.room(), p.nick()) },
	func(p *argPicker) string { return "LIST" + p.pick("", " >1", " #a*") },
	func(p *argPicker) string {
		return "CHATHISTORY " + p.pick("LATEST "+p.room()+" * 10", "BEFORE "+p.nick()+" timestamp=2030-01-01T00:00:00.000Z 5",
			"TARGETS timestamp=2020-01-01T00:00:00.000Z timestamp=2030-01-01T00:00:00.000Z 5", "AROUND #a msgid=zz 3")
	},
	func(p *argPicker) string {
		return "REDACT " + p.pick(p.room(), p.nick()) + " " + p.pick("zz", "*", "") + p.pick("", " :"+p.text())
	},
	func(p *argPicker) string {
		return "MARKREAD " + p.pick(p.room(), p.nick()) + p.pick("", " timestamp=2030-01-01T00:00:00.000Z", " timestamp=x", " *")
	},
	func(p *argPicker) string { return "FORMAT " + p.pick("text", "irc", "", "TEXT", "bogus") },
	func(p *argPicker) string {
		return "TOKEN " + p.pick("NEW", "NEW "+p.text(), "LIST", "REVOKE ALL", "REVOKE x", "LOGIN "+p.acct()+" a.b", "LOGIN "+p.acct(), "")
	},
	func(p *argPicker) string { return p.pick("LOGOUT", "LOGOUT ALL") },
	func(p *argPicker) string { return "REGISTER " + p.acct() + p.pick(" ", " * ") + p.pass() },
	func(p *argPicker) string { return "LOGIN " + p.acct() + " " + p.pass() },
	func(p *argPicker) string { return "QUIT :" + p.text() },
	func(p *argPicker) string { return "AWAY" + p.pick("", " :"+p.text()) },
	func(p *argPicker) string { return "INVITE " + p.nick() + " " + p.room() },
	func(p *argPicker) string {
		return p.pick("HELP", "MOTD", "PING x", "PONG x", "WHOWAS n1", "ISON n0 n1", "OPER a b")
	},
	func(p *argPicker) string {
		return p.pick("MONITOR + "+p.nick()+","+p.nick(), "MONITOR - "+p.nick(), "MONITOR "+p.pick("L", "S", "C", "x"),
			"WHOWAS "+p.nick()+p.pick("", " 1", " -1"), "MODE "+p.nick()+p.pick(" +B", " -B+i", " +Bx"))
	},
}

func init() {
	// A labeled room command; added here because it refers to the table.
	rooms := vocabulary[5:11]
	vocabulary = append(vocabulary, func(p *argPicker) string {
		return "@label=" + p.pick("a", "b") + " " + rooms[int(p.byte())%len(rooms)](p)
	})
}

// decodeOps turns fuzz input into the ops to run.
func decodeOps(data []byte) (autoRegister bool, ops []fuzzOp) {
	if len(data) == 0 {
		return true, nil
	}
	autoRegister = data[0]&1 == 0
	p := &argPicker{data: data[1:]}
	for len(p.data) > 0 && len(ops) < maxFuzzOps {
		b := p.byte()
		op := fuzzOp{sess: int(b) % fuzzSessions}
		if (b/fuzzSessions)%8 == 7 {
			n := min(int(p.byte())%maxRawOp, len(p.data))
			op.line = append([]byte(nil), p.data[:n]...)
			p.data = p.data[n:]
		} else {
			op.line = []byte(vocabulary[int(p.byte())%len(vocabulary)](p))
		}
		ops = append(ops, op)
	}
	return autoRegister, ops
}

// fuzzSeeds are scripts in decodeOps' encoding, written as raw lines
// ("<session> <line>") so they stay readable, plus pseudo-random inputs
// that walk the vocabulary.
func fuzzSeeds() [][]byte {
	scripts := []struct {
		register bool
		lines    []string
	}{
		{true, []string{"0 JOIN #a", "1 JOIN #a", "2 JOIN a", "0 PRIVMSG #a :hi", "1 NICK n9", "0 KICK #a n2 :out",
			"0 MODE #a +o n9", "2 JOIN #a", "1 PART #a", "2 NAMES #a", "0 TOPIC #a :t", "2 QUIT :bye"}},
		{false, []string{"0 CAP LS 302", "0 NICK n0", "0 USER u 0 * :u", "0 CAP REQ :multi-prefix userhost-in-names",
			"0 CAP REQ :extended-join batch labeled-response", "0 CAP END", "1 JOIN #b", "0 JOIN #b,#c",
			"1 NICK N0", "1 NICK n1", "0 @label=x PART #b", "2 JOIN #c", "2 JOIN 0", "0 REGISTER acct0 password1"}},
		{true, []string{"0 REGISTER acct0 password1", "0 JOIN #a", "1 JOIN #a", "1 LOGIN acct0 wrong-pass",
			"2 LOGIN acct0 password1", "2 JOIN #a", "0 CAP REQ :draft/chathistory batch message-tags",
			"0 CHATHISTORY LATEST #a * 10", "1 MODE #a +s", "2 MODE #a +m", "1 PRIVMSG #a :\x00"}},
		{false, []string{"0 JOIN #x", "1 PRIVMSG #x :\xff\xfe", "2 MSG n1 hi", "0 NICK n1", "1 NICK n1", "0 QUIT"}},
	}
	var seeds [][]byte
	for _, sc := range scripts {
		data := []byte{1}
		if sc.register {
			data[0] = 0
		}
		for _, l := range sc.lines {
			line := l[2:]
			data = append(data, byte(int(l[0]-'0')+fuzzSessions*7), byte(len(line)))
			data = append(data, line...)
		}
		seeds = append(seeds, data)
	}
	rng := rand.New(rand.NewPCG(12, 34))
	for range 4 {
		data := make([]byte, 300)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		seeds = append(seeds, data)
	}
	return seeds
}

// fuzzClient is one session's client side. Its reader goroutine owns the
// tracking state until done is closed or a pong token is handed over.
type fuzzClient struct {
	conn  net.Conn
	pongs chan string
	done  chan struct{}

	// Owned by the reader goroutine; mu guards rooms for the test's
	// final look at them.
	mu         sync.Mutex
	me         string
	rooms      map[string]map[string]bool // folded room -> folded nicks; nil map while the join's NAMES is pending
	names      map[string]map[string]bool // NAMES replies being collected
	histBatch  map[string]bool            // open chathistory batches
	violations []string
	seen       []string // what the client received, for a failure's report

	// final is set once the server is quiet: only then must a NAMES
	// reply match what the client was told. Before, a reply may overtake
	// a NICK or QUIT that is on its way: those are sent once to each peer
	// after all the member's rooms have applied them, so a room can
	// already show the change. The reply and the line then agree, but
	// arrive in either order; clients converge either way.
	final atomic.Bool
}

func startFuzzClient(conn net.Conn) *fuzzClient {
	c := &fuzzClient{
		conn: conn, pongs: make(chan string, 1), done: make(chan struct{}),
		rooms: map[string]map[string]bool{}, names: map[string]map[string]bool{}, histBatch: map[string]bool{},
	}
	go c.readLoop()
	return c
}

func (c *fuzzClient) fail(format string, args ...any) {
	if len(c.violations) < 10 {
		c.violations = append(c.violations, fmt.Sprintf(format, args...))
	}
}

func (c *fuzzClient) readLoop() {
	defer close(c.done)
	r := bufio.NewReaderSize(c.conn, 16<<10)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			c.fail("line longer than 16 KiB: %q...", line[:80])
			return
		}
		if err != nil {
			if len(line) > 0 {
				c.fail("unterminated output %q", line)
			}
			return
		}
		c.seen = append(c.seen, string(bytes.TrimRight(line, "\r\n")))
		m, ok := c.checkLine(line)
		if ok {
			c.mu.Lock()
			c.track(&m)
			c.mu.Unlock()
		}
	}
}

// checkLine verifies one line from the server is a single valid line.
func (c *fuzzClient) checkLine(line []byte) (protocol.Message, bool) {
	if !bytes.HasSuffix(line, []byte("\r\n")) {
		c.fail("line without CRLF: %q", line)
		return protocol.Message{}, false
	}
	body := line[:len(line)-2]
	if i := bytes.IndexAny(body, "\x00\r\n"); i >= 0 {
		c.fail("NUL/CR/LF at %d in %q", i, line)
		return protocol.Message{}, false
	}
	if plainLine(string(body)) {
		// A sentence for a person in a terminal (render.go): one line,
		// no longer than a protocol line, and nothing to track.
		if len(body) > protocol.MaxBodyLen {
			c.fail("plain line %d bytes, over %d: %q", len(body), protocol.MaxBodyLen, line)
		}
		return protocol.Message{}, false
	}
	rest := body
	if len(body) > 0 && body[0] == '@' {
		sp := bytes.IndexByte(body, ' ')
		if sp < 0 || sp > protocol.MaxTagsLen {
			c.fail("tag section too long or alone: %q", line)
			return protocol.Message{}, false
		}
		rest = body[sp+1:]
	}
	m, err := protocol.Parse(body)
	if err != nil {
		c.fail("unparsable line %q: %v", line, err)
		return protocol.Message{}, false
	}
	if len(rest) > protocol.MaxBodyLen {
		c.fail("line body %d bytes, over %d: %q", len(rest), protocol.MaxBodyLen, line)
	}
	return m, true
}

func nickOf(source string) string {
	nick, _, _ := strings.Cut(source, "!")
	return protocol.FoldNick(nick)
}

// track keeps the client's view of its rooms' members.
func (c *fuzzClient) track(m *protocol.Message) {
	for _, tag := range m.Tags {
		if tag.Key == "batch" && c.histBatch[tag.Value] {
			return // history, not what happens now
		}
	}
	src := nickOf(m.Source)
	switch m.Command {
	case protocol.RPL_WELCOME:
		c.me = protocol.FoldNick(m.Param(0))
	case "BATCH":
		ref := m.Param(0)
		if strings.HasPrefix(ref, "+") && m.Param(1) == "chathistory" {
			c.histBatch[ref[1:]] = true
		} else if strings.HasPrefix(ref, "-") {
			delete(c.histBatch, ref[1:])
		}
	case "PONG":
		if tok := m.Params[len(m.Params)-1]; strings.HasPrefix(tok, "fz-") {
			c.pongs <- tok
		}
	case "NICK":
		to := protocol.FoldNick(m.Param(0))
		if src == c.me {
			c.me = to
		}
		for _, ms := range c.rooms {
			if ms != nil && ms[src] {
				delete(ms, src)
				ms[to] = true
			}
		}
	case "JOIN":
		room := protocol.FoldRoom(m.Param(0))
		if src == c.me {
			c.rooms[room] = nil // the NAMES that follows fills it
		} else if ms := c.rooms[room]; ms != nil {
			ms[src] = true
		}
	case "PART":
		for _, room := range strings.Split(m.Param(0), ",") {
			c.leave(protocol.FoldRoom(room), src)
		}
	case "KICK":
		c.leave(protocol.FoldRoom(m.Param(0)), protocol.FoldNick(m.Param(1)))
	case "QUIT":
		for room := range c.rooms {
			c.leave(room, src)
		}
	case protocol.RPL_NAMREPLY:
		room := protocol.FoldRoom(m.Param(2))
		if c.names[room] == nil {
			c.names[room] = map[string]bool{}
		}
		for _, n := range strings.Fields(m.Param(3)) {
			c.names[room][nickOf(strings.TrimLeft(n, "~&@%+"))] = true
		}
	case protocol.RPL_ENDOFNAMES:
		room := protocol.FoldRoom(m.Param(1))
		got := c.names[room]
		delete(c.names, room)
		ms, member := c.rooms[room]
		switch {
		case member && ms == nil:
			c.rooms[room] = got
			if !got[c.me] {
				c.fail("%s: NAMES %s after joining lacks itself: %v", c.me, room, keys(got))
			}
		case member && !sameSet(ms, got) && c.final.Load():
			c.fail("%s: NAMES %s = %v, but it was told %v", c.me, room, keys(got), keys(ms))
		case !member && got[c.me]:
			c.fail("%s: NAMES %s lists it, but it was never told it joined", c.me, room)
		}
	}
}

func (c *fuzzClient) leave(room, nick string) {
	ms, member := c.rooms[room]
	if !member {
		return
	}
	if nick == c.me {
		delete(c.rooms, room)
	} else if ms != nil {
		delete(ms, nick)
	}
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// write sends line, reporting false once the session is gone.
func (c *fuzzClient) write(t *testing.T, line []byte) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := c.conn.Write(append(line, '\r', '\n')); err != nil {
		if errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
			return false
		}
		select {
		case <-c.done:
			return false
		default:
		}
		t.Fatalf("write %q: %v (the server stopped reading)", line, err)
	}
	return true
}

// barrier sends a PING and waits for its PONG (or the end of the
// session): afterwards everything the server sent before is tracked.
func (c *fuzzClient) barrier(t *testing.T, token string) bool {
	if !c.write(t, []byte("PING :"+token)) {
		return false
	}
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		select {
		case got := <-c.pongs:
			if got == token {
				return true
			}
		case <-c.done:
			return false
		case <-deadline.C:
			t.Fatalf("no PONG %s within %v", token, waitFor)
		}
	}
}

// fuzzExec numbers executions, to label their goroutines.
var fuzzExec atomic.Uint64

func runSessions(t *testing.T, autoRegister bool, ops []fuzzOp) {
	// Every goroutine the execution starts, the server's included, carries
	// its label (goroutines inherit labels), so a leak is counted exactly
	// even while the fuzzing engine's own goroutines come and go.
	label := strconv.FormatUint(fuzzExec.Add(1), 10)
	pprof.Do(context.Background(), pprof.Labels("fuzz-exec", label), func(context.Context) {
		runLabeled(t, autoRegister, ops)
	})
	waitGoroutines(t, "fuzz-exec", label)
}

func runLabeled(t *testing.T, autoRegister bool, ops []fuzzOp) {
	srv := newTestServer(t, func(c *configs.Config, o *Options) {
		o.Logger = zerolog.Nop()
		c.Accounts.ThrottleFree = 1000 // no login delays: they would only slow the fuzzer
		c.Accounts.MinPasswordLength = 1
	})
	srv.workers = newWorkerPool(time.Millisecond) // idle workers must not outlive the execution
	clients := make([]*fuzzClient, fuzzSessions)
	for i := range clients {
		cc, sc := net.Pipe()
		srv.accept(sc, "tcp")
		clients[i] = startFuzzClient(cc)
		if autoRegister {
			n := fmt.Sprintf("n%d", i)
			clients[i].write(t, []byte("NICK "+n+"\r\nUSER "+n+" 0 * :"+n))
		}
	}
	for _, op := range ops {
		clients[op.sess].write(t, op.line)
	}

	// Quiesce: after one barrier per client the server has handled every
	// line, after a second one every client has read what that caused.
	// Then each client asks for NAMES of the rooms it knows of and the
	// vocabulary's, and its reader compares each reply with what it was
	// told.
	for round := range 2 {
		for i, c := range clients {
			c.barrier(t, fmt.Sprintf("fz-%d-quiet%d", i, round))
		}
	}
	for _, c := range clients {
		c.final.Store(true)
	}
	for i, c := range clients {
		rooms := []string{"#a", "#b", "#c"}
		select {
		case <-c.done:
			continue
		default:
			// Quiet, but a late line (a QUIT, a KICK) may still be on its
			// way to the reader, which writes c.rooms.
			c.mu.Lock()
			for r := range c.rooms {
				rooms = append(rooms, r)
			}
			c.mu.Unlock()
		}
		for _, r := range rooms {
			if !c.write(t, []byte("NAMES "+r)) {
				break
			}
		}
		c.barrier(t, fmt.Sprintf("fz-%d-names", i))
	}

	for _, c := range clients {
		c.write(t, []byte("QUIT"))
	}
	for i, c := range clients {
		select {
		case <-c.done:
		case <-time.After(waitFor):
			t.Fatalf("session %d not closed after QUIT", i)
		}
		c.conn.Close()
		for _, v := range c.violations {
			t.Errorf("session %d: %s", i, v)
		}
		if len(c.violations) > 0 {
			t.Logf("session %d received:\n%s", i, strings.Join(c.seen, "\n"))
		}
	}
	if got := testCounter(t, srv, "livechat_room_restarts_total"); got != 0 {
		t.Errorf("rooms recovered from %v panics", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// waitGoroutines waits until no goroutine carries the label key=value.
func waitGoroutines(t *testing.T, key, value string) {
	t.Helper()
	want := fmt.Sprintf("# labels: {%q:%q}", key, value)
	deadline := time.Now().Add(waitFor)
	for {
		var buf bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&buf, 1)
		left := 0
		// The debug=1 format: a header line, then records ("<count> @ <pcs>",
		// "# labels: ...", frames) separated by blank lines.
		_, body, _ := strings.Cut(buf.String(), "\n")
		records := strings.Split(body, "\n\n")
		for _, r := range records {
			if strings.Contains(r, want) {
				n, _ := strconv.Atoi(r[:strings.IndexByte(r, ' ')])
				left += n
			}
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			var leaked []string
			for _, r := range records {
				if strings.Contains(r, want) {
					leaked = append(leaked, r)
				}
			}
			t.Fatalf("%d goroutines left behind:\n%s", left, strings.Join(leaked, "\n\n"))
		}
		time.Sleep(time.Millisecond) // polling a count nothing signals
	}
}
