package daemon

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/configs"
)

// More clients than there are shared writers stop reading. The shared
// writers must hand them to goroutines of their own and go on serving
// the client that reads; once the stalled ones read again they get every
// line, in order.
func TestSharedWritersNotHeldByStalledClients(t *testing.T) {
	// Default socket buffers: a small receive buffer against the 64 KiB
	// loopback MSS leaves the window shut for long after the client
	// reads again (persist-timer backoff).
	testStalledClients(t, func(t *testing.T, srv *Server, addr, nick string) *client {
		return connect(t, addr, nick)
	})
}

// The same with the stalled clients on WebSocket, whose output the shared
// writers frame and write too.
func TestSharedWritersNotHeldByStalledWebSockets(t *testing.T) {
	var url string
	testStalledClients(t, func(t *testing.T, srv *Server, addr, nick string) *client {
		if url == "" {
			url = wsListen(t, srv)
		}
		c := dialWS(t, url)
		c.register(nick)
		return c
	})
}

func testStalledClients(t *testing.T, dialStuck func(t *testing.T, srv *Server, addr, nick string) *client) {
	srv, addr := testServer(t, func(c *configs.Config, _ *Options) { c.Limits.SendQBytes = 8 << 20 })
	talker := connect(t, addr, "talker")
	reader := connect(t, addr, "reader")
	var stuck []*client
	for i := range 2*runtime.GOMAXPROCS(0) + 2 {
		stuck = append(stuck, dialStuck(t, srv, addr, "stuck"+strconv.Itoa(i)))
	}
	for _, c := range append([]*client{talker, reader}, stuck...) {
		c.join("#busy")
	}
	for _, c := range append([]*client{talker, reader}, stuck...) {
		c.sync()
	}

	// blocked reports whether every stalled client's session has a
	// writer waiting on its socket: output piles up only behind a write
	// in progress.
	blocked := func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		n := 0
		for s := range srv.sessions {
			if !strings.HasPrefix(s.Nick(), "stuck") {
				continue
			}
			s.outMu.Lock()
			if s.outBytes > 256<<10 {
				n++
			}
			s.outMu.Unlock()
		}
		return n == len(stuck)
	}
	pad := strings.Repeat("y", 400)
	seq := 0
	round := func() {
		t.Helper()
		const k = 8
		lines := make([]string, k)
		for i := range lines {
			lines[i] = fmt.Sprintf("PRIVMSG #busy :%d %s", seq+i, pad)
		}
		talker.send(lines...)
		for i := range k {
			m := reader.read()
			if m.Command != "PRIVMSG" || !strings.HasPrefix(m.Param(1), strconv.Itoa(seq+i)+" ") {
				t.Fatalf("reader got %q, want message %d", m.String(), seq+i)
			}
		}
		seq += k
	}
	// The kernel's buffers take some megabytes first: bounded by count.
	for r := 0; !blocked(); r++ {
		if r == 20000 {
			t.Fatal("the stalled clients' sockets never filled")
		}
		round()
	}
	t.Logf("filled after %d messages", seq)
	// The reader keeps getting its lines at once (read fails after
	// waitFor, well before a blocked write's writeTimeout).
	start := time.Now()
	for range 50 {
		round()
	}
	if d := time.Since(start); d > waitFor {
		t.Fatalf("50 rounds took %v with stalled clients around", d)
	}

	t.Logf("sent %d messages", seq)
	for _, c := range stuck {
		want := 0
		for want < seq {
			m, err := c.tryRead()
			if err != nil {
				srv.mu.Lock()
				for s := range srv.sessions {
					s.outMu.Lock()
					t.Logf("%s writing=%v out=%d bytes=%d unsent=%d closing=%v", s.Nick(), s.writing, len(s.out), s.outBytes, s.unsentLen(), s.closing)
					s.outMu.Unlock()
				}
				srv.mu.Unlock()
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				for _, g := range strings.Split(string(buf), "\n\n") {
					if strings.Contains(g, "writeLoop") || strings.Contains(g, "writerPool") {
						t.Log(g)
					}
				}
				t.Fatalf("%s: after %d of %d: %v", c.nick, want, seq, err)
			}
			if m.Command != "PRIVMSG" {
				continue
			}
			got, _, _ := strings.Cut(m.Param(1), " ")
			if got != strconv.Itoa(want) {
				t.Fatalf("%s got message %s, want %d", c.nick, got, want)
			}
			want++
		}
	}
}

// A blocking write leaves its deadline on the socket; once it has passed,
// the shared writers' raw writes must still go through.
func TestSharedWriterAfterStaleDeadline(t *testing.T) {
	srv, addr := testServer(t)
	a := connect(t, addr, "alice")
	b := connect(t, addr, "bob")
	a.join("#r")
	b.join("#r")
	a.sync()
	b.sync()
	srv.mu.Lock()
	for s := range srv.sessions {
		s.conn.SetWriteDeadline(time.Now().Add(-time.Second))
	}
	srv.mu.Unlock()
	a.send("PRIVMSG #r :hello")
	if m, _ := b.expect("PRIVMSG"); m.Param(1) != "hello" {
		t.Fatalf("got %q", m.String())
	}
}
