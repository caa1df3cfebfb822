package daemon

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livechat/livechat/configs"
)

// frameClient speaks WebSocket frames by hand, to send what no library
// would: floods of pings, pongs and empty fragments.
type frameClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialFrames(t *testing.T, url string) *frameClient {
	t.Helper()
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/")
	conn, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(waitFor))
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Protocol: text.ircv3.net\r\n\r\n")
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return &frameClient{t: t, conn: conn, r: r}
}

// frame is a masked client frame (the mask is zero, so the payload goes
// as is).
func frame(fin bool, opcode byte, payload string) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	if len(payload) > 125 {
		panic("frame: payload too long for this helper")
	}
	return append([]byte{b0, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
}

// flood writes frames until the server stops reading them for good or
// max have gone, and returns everything the server sent meanwhile.
func (c *frameClient) flood(pre, each []byte, max int) []byte {
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c.r) // ends when the server closes, or at the deadline
		got <- b
	}()
	c.conn.Write(pre)
	batch := bytes.Repeat(each, 1000)
	for sent := 0; sent < max; sent += 1000 {
		if _, err := c.conn.Write(batch); err != nil {
			break // the server closed the connection
		}
	}
	return <-got
}

// A client that floods control frames or empty fragments, which the
// WebSocket library handles without a line ever reaching the session,
// spends the same flood tokens as lines: it is slowed, then cut with
// "Excess flood" and a 1008 close, and a bystander is served throughout.
func TestWebSocketFrameFloodIsCut(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pre, each []byte
	}{
		{"ping", nil, frame(true, 0x9, "")},
		{"pong", nil, frame(true, 0xA, "x")},
		{"empty fragments", frame(false, 0x1, ""), frame(false, 0x0, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := testServer(t, func(c *configs.Config, _ *Options) {
				c.Limits.FloodBurst, c.Limits.FloodRate, c.Limits.FloodMaxLag = 10, 100, 100*time.Millisecond
			})
			url := wsListen(t, srv)
			bystander := connect(t, addr, "bob")
			const max = 200_000
			got := string(dialFrames(t, url).flood(tc.pre, tc.each, max))
			if !strings.Contains(got, "ERROR :Excess flood") {
				t.Errorf("flood of %d frames: no ERROR :Excess flood (server sent %d bytes)", max, len(got))
			}
			if !strings.Contains(got, "\x03\xf0Excess flood") {
				t.Errorf("no close frame 1008 Excess flood")
			}
			page := scrape(t, srv)
			if n := sample(t, page, `livechat_flood_events_total{action="disconnect"}`); n != 1 {
				t.Errorf("flood disconnects = %v, want 1", n)
			}
			// burst + rate*max_lag frames pass or wait; a few more for
			// the sleeps' slack, never the flood.
			if n := sample(t, page, `livechat_flood_events_total{action="delay"}`); n > 1000 {
				t.Errorf("%v frames delayed before the cut; want about 10", n)
			}
			bystander.send("PING :still-here")
			if m, _ := bystander.expect("PONG"); m.Param(1) != "still-here" {
				t.Errorf("bystander got %q", m.String())
			}
		})
	}
}

// An empty line is free of nothing: a stream of them is flood like any
// other (a TCP client's blank lines, a browser's empty messages).
func TestEmptyLineFloodIsCut(t *testing.T) {
	_, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Limits.FloodBurst, c.Limits.FloodRate, c.Limits.FloodMaxLag = 10, 100, 100*time.Millisecond
	})
	bystander := connect(t, addr, "bob")
	c := dial(t, addr)
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(c.r)
		got <- string(b)
	}()
	c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	blank := bytes.Repeat([]byte("\r\n"), 1000)
	for range 200 {
		if _, err := c.conn.Write(blank); err != nil {
			break
		}
	}
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	if s := <-got; !strings.Contains(s, "ERROR :Excess flood") {
		t.Errorf("200000 blank lines: got %q, want ERROR :Excess flood", s)
	}
	bystander.send("PING :still-here")
	bystander.expect("PONG")
}

// One line per message (IRCv3 WebSocket): a message with a line break
// inside is refused whole with FAIL, while one trailing line ending is
// tolerated.
func TestWebSocketMessageWithLineBreakIsRefused(t *testing.T) {
	srv, tcp, ws := roomWithWebSocketUser(t)
	for _, msg := range []string{"PRIVMSG #lobby :hi\nQUIT :x", "PRIVMSG #lobby :hi\r\nQUIT :x", "PRIVMSG #lobby :hi\rQUIT :x", "PRIVMSG #lobby :hi\n\n"} {
		ws.send(msg)
		if got := ws.readUntil("FAIL"); !strings.Contains(got, "INVALID_MESSAGE") {
			t.Errorf("%q: got %q, want FAIL * INVALID_MESSAGE", msg, got)
		}
	}
	ws.send("PRIVMSG #lobby :trailing line ending\r\n")
	if m, _ := tcp.expect("PRIVMSG"); m.Param(1) != "trailing line ending" {
		t.Errorf("room got %q, want only the tolerated message", m.String())
	}
	ws.send("PING :alive")
	if got := ws.readUntil("PONG"); !strings.Contains(got, "alive") {
		t.Errorf("got %q", got)
	}
	if n := sample(t, scrape(t, srv), `livechat_input_refused_total{reason="ws_line_break"}`); n != 4 {
		t.Errorf(`input_refused{reason="ws_line_break"} = %v, want 4`, n)
	}
}

// A text message that is not UTF-8 closes the connection with 1007, as
// RFC 6455 asks; binary messages may carry any bytes (binary.ircv3.net)
// and get the usual FAIL.
func TestWebSocketInvalidUTF8(t *testing.T) {
	_, tcp, ws := roomWithWebSocketUser(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := ws.ws.Write(ctx, websocket.MessageBinary, []byte("PRIVMSG #lobby :caf\xe9")); err != nil {
		t.Fatal(err)
	}
	if got := ws.readUntil("FAIL"); !strings.Contains(got, "INVALID_UTF8") {
		t.Errorf("binary message: got %q, want FAIL INVALID_UTF8", got)
	}
	ws.send("PRIVMSG #lobby :caf\xe9")
	got, status := ws.readUntilClosed()
	if status != websocket.StatusInvalidFramePayloadData {
		t.Errorf("close status %d, want 1007", status)
	}
	if len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "ERROR ") {
		t.Errorf("messages before the close: %q, want an ERROR last", got)
	}
	if q, _ := tcp.expect("QUIT"); q.Param(0) != reasonInvalidUTF8 {
		t.Errorf("room saw %q", q.String())
	}
}
