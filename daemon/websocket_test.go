package daemon

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/wslisten"
	"github.com/livechat/livechat/protocol"
)

// wsListen serves srv over WebSocket on 127.0.0.1:0 as livechatd does and
// returns the ws:// URL. The server's Shutdown closes the listener.
func wsListen(t *testing.T, srv *Server) string {
	t.Helper()
	return wsListenWith(t, srv, wslisten.Options{})
}

func wsListenWith(t *testing.T, srv *Server, opts wslisten.Options) string {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Log = srv.log
	opts.Admit, opts.Refused = srv.AdmitHTTP, srv.CountRefusal // as livechatd does
	l := wslisten.New(raw, opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l, "websocket")
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return "ws://" + raw.Addr().String() + "/"
}

// dialWS connects a line-level test client over WebSocket.
func dialWS(t *testing.T, url string) *client {
	t.Helper()
	return dialWSWith(t, url, nil)
}

// dialWSWith is dialWS with the dial options given.
func dialWSWith(t *testing.T, url string, opts *websocket.DialOptions) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, err := wslisten.Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// rawWS is a WebSocket client that sees the messages themselves, to check
// the framing and the close status.
type rawWS struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialRawWS(t *testing.T, url string) *rawWS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{wslisten.TextSubprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &rawWS{t: t, ws: ws}
}

func (c *rawWS) send(line string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(line)); err != nil {
		c.t.Fatal(err)
	}
}

// readUntil reads messages until one holds word, and returns it.
func (c *rawWS) readUntil(word string) string {
	c.t.Helper()
	for range 1000 { // bounded; each read has a deadline
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		_, msg, err := c.ws.Read(ctx)
		cancel()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", word, err)
		}
		if strings.Contains(string(msg), word) {
			return string(msg)
		}
	}
	c.t.Fatalf("no %s in 1000 messages", word)
	return ""
}

// readUntilClosed returns every message until the server closes, and the
// close status.
func (c *rawWS) readUntilClosed() ([]string, websocket.StatusCode) {
	c.t.Helper()
	var got []string
	for range 1000 { // bounded; each read has a deadline
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		typ, msg, err := c.ws.Read(ctx)
		cancel()
		if err != nil {
			return got, websocket.CloseStatus(err)
		}
		if typ != websocket.MessageText {
			c.t.Errorf("message type %v with the text subprotocol", typ)
		}
		if strings.ContainsAny(string(msg), "\r\n") {
			c.t.Errorf("message %q holds a line ending; want one line per message", msg)
		}
		got = append(got, string(msg))
	}
	c.t.Fatal("the server never closed")
	return nil, 0
}

// A browser and a TCP client share a room both ways, and the browser uses
// an account: the WebSocket is a transport, not a second server.
func TestWebSocketChatsWithTCP(t *testing.T) {
	srv, addr := testServer(t)
	url := wsListen(t, srv)

	web := dialWS(t, url)
	web.send("REGISTER wendy hunter2hunter2")
	if ok, _ := web.expect("REGISTER"); ok.Param(0) != "SUCCESS" {
		t.Fatalf("REGISTER over WebSocket: %q", ok.String())
	}
	web.nick = "wendy"
	web.join("#lobby")

	tcp := connect(t, addr, "tom")
	tcp.join("#lobby")
	if j, _ := web.expect("JOIN"); !strings.HasPrefix(j.Source, "tom!") {
		t.Fatalf("browser saw %q", j.String())
	}

	web.send("PRIVMSG #lobby :hello from the browser")
	// It never sent USER: a person, who sees what they said.
	if m, _ := web.expect("PRIVMSG"); !strings.HasPrefix(m.Source, "wendy!") {
		t.Errorf("the browser's own message came back as %q", m.String())
	}
	if m, _ := tcp.expect("PRIVMSG"); !strings.HasPrefix(m.Source, "wendy!") || m.Param(1) != "hello from the browser" {
		t.Errorf("TCP client got %q", m.String())
	}
	tcp.send("PRIVMSG #lobby :hello from netcat")
	if m, _ := web.expect("PRIVMSG"); !strings.HasPrefix(m.Source, "tom!") || m.Param(1) != "hello from netcat" {
		t.Errorf("browser got %q", m.String())
	}

	tcp.send("WHOIS wendy")
	if m, _ := tcp.expect(protocol.RPL_WHOISACCOUNT); m.Param(2) != "wendy" {
		t.Errorf("WHOIS of the browser user: %q", m.String())
	}
	page := scrape(t, srv)
	if got := sample(t, page, `livechat_connections{transport="websocket"}`); got != 1 {
		t.Errorf(`livechat_connections{transport="websocket"} = %v, want 1`, got)
	}
	if got := sample(t, page, `livechat_connections{transport="tcp"}`); got != 1 {
		t.Errorf(`livechat_connections{transport="tcp"} = %v, want 1`, got)
	}
}

// Behind a TLS-terminating proxy that is trusted, a browser on https is
// shown as secure (671) and by the cloak of its own address;
// the same claims from an untrusted peer change nothing.
func TestWebSocketBehindTrustedProxy(t *testing.T) {
	srv, addr := testServer(t)
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, tc := range []struct {
		name    string
		proxies []netip.Prefix
		secure  bool
		host    string
	}{
		{"trusted", loopback, true, "203.0.113.9"},
		{"untrusted", nil, false, "127.0.0.1"},
	} {
		url := wsListenWith(t, srv, wslisten.Options{TrustedProxies: tc.proxies})
		h := http.Header{}
		h.Set("X-Forwarded-For", "203.0.113.9")
		h.Set("X-Forwarded-Proto", "https")
		web := dialWSWith(t, url, &websocket.DialOptions{HTTPHeader: h})
		nick := "web" + tc.name
		web.register(nick)

		tcp := connect(t, addr, "tom"+tc.name)
		tcp.send("WHOIS " + nick)
		user, _ := tcp.expect(protocol.RPL_WHOISUSER)
		if want := cloakOf(srv, tc.host); user.Param(3) != want {
			t.Errorf("%s proxy: WHOIS host %q, want %q, the cloak of %s", tc.name, user.Param(3), want, tc.host)
		}
		_, lines := tcp.expect(protocol.RPL_ENDOFWHOIS)
		var secure bool
		for _, m := range lines {
			secure = secure || m.Command == protocol.RPL_WHOISSECURE
		}
		if secure != tc.secure {
			t.Errorf("%s proxy: 671 shown %v, want %v", tc.name, secure, tc.secure)
		}
	}
}

// An idle browser is PINGed like a TCP client, stays when it answers,
// and goes when it does not: the read deadline fails the read and leaves
// the WebSocket usable.
func TestWebSocketPing(t *testing.T) {
	srv, _ := testServer(t, func(c *configs.Config, _ *Options) {
		c.Limits.PingInterval = 50 * time.Millisecond
		c.Limits.PingTimeout = 200 * time.Millisecond
	})
	web := dialWS(t, wsListen(t, srv))
	web.register("wendy")
	for range 3 { // three idle periods in a row, each answered
		ping, _ := web.expect("PING")
		web.send("PONG :" + ping.Param(0))
	}
	web.send("PING still-here")
	web.expect("PONG")
	web.expect("PING") // and now it says nothing more
	if m, _ := web.expect("ERROR"); !strings.Contains(m.Param(0), "Ping timeout") {
		t.Errorf("got %q, want a ping timeout", m.String())
	}
}

// roomWithWebSocketUser has TCP user tom and raw WebSocket user wendy in
// #lobby, tom having seen wendy join.
func roomWithWebSocketUser(t *testing.T) (*Server, *client, *rawWS) {
	t.Helper()
	srv, addr := testServer(t)
	url := wsListen(t, srv)
	tcp := connect(t, addr, "tom")
	tcp.join("#lobby")
	ws := dialRawWS(t, url)
	for _, l := range []string{"NICK wendy", "USER w 0 * :W", "JOIN #lobby"} {
		ws.send(l)
	}
	tcp.expect("JOIN")
	return srv, tcp, ws
}

// QUIT gets the usual ERROR line, then a normal WebSocket closure (1000),
// and the room hears the QUIT.
func TestWebSocketQuitClosesCleanly(t *testing.T) {
	_, tcp, ws := roomWithWebSocketUser(t)
	ws.send("QUIT :bye now")
	got, status := ws.readUntilClosed()
	if status != websocket.StatusNormalClosure {
		t.Errorf("close status %d, want 1000", status)
	}
	if len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "ERROR ") {
		t.Errorf("last message before the close: %q, want ERROR", got[len(got)-1:])
	}
	if q, _ := tcp.expect("QUIT"); !strings.HasPrefix(q.Source, "wendy!") || !strings.Contains(q.Param(0), "bye now") {
		t.Errorf("room saw %q", q.String())
	}
}

// Shutdown tells a browser why, and closes it normally.
func TestWebSocketShutdownClosesCleanly(t *testing.T) {
	srv, _ := testServer(t)
	url := wsListen(t, srv)
	ws := dialRawWS(t, url)
	ws.send("NICK wendy")
	ws.send("USER w 0 * :W")
	ws.send("PING :ready")
	for {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		_, msg, err := ws.ws.Read(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(msg), "PONG") {
			break
		}
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	got, status := ws.readUntilClosed()
	if status != websocket.StatusNormalClosure {
		t.Errorf("close status %d, want 1000", status)
	}
	if len(got) == 0 || got[len(got)-1] != "ERROR :Server shutting down" {
		t.Errorf("last messages %q, want ERROR :Server shutting down", got)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// The per-address limits count WebSocket clients like TCP ones.
func TestWebSocketPerIPLimit(t *testing.T) {
	srv, addr := testServer(t, limitLoopback(func(l *configs.Limits) { l.MaxConnsPerIP = 1 }))
	url := wsListen(t, srv)
	connect(t, addr, "tom")
	ws := dialRawWS(t, url)
	got, _ := ws.readUntilClosed()
	if len(got) != 1 || got[0] != "ERROR :Too many connections from your address" {
		t.Errorf("second connection from 127.0.0.1 over WebSocket got %q", got)
	}
}

// Sockets that have not upgraded (page loads, idle keep-alives) count
// against limits.max_conns_per_ip on their own: one address cannot hold
// the server's descriptors with them, and an open chat connection, which
// the IRC limit counts, does not use up a browser's room to load pages.
func TestWebSocketSocketsBeforeUpgradeAreLimited(t *testing.T) {
	srv, _ := testServer(t, limitLoopback(func(l *configs.Limits) { l.MaxConnsPerIP = 2 }))
	url := wsListen(t, srv)
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/")
	web := dialWS(t, url)
	web.register("wendy")
	for range 2 {
		c, err := net.DialTimeout("tcp", addr, waitFor)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	resp, err := (&http.Client{Timeout: waitFor}).Get("http://" + addr + "/")
	if err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a third socket from 127.0.0.1: %v, %v; want 429", resp, err)
	}
	resp.Body.Close()
	if got := sample(t, scrape(t, srv), `livechat_connections_refused_total{reason="ws_per_ip"}`); got != 1 {
		t.Errorf(`refused{reason="ws_per_ip"} = %v, want 1`, got)
	}
	web.send("PING still-here")
	web.expect("PONG")
}

// A legal line with a full tag section passes; the oversized-frame refusal
// itself is wslisten's (status 1009).
func TestWebSocketLongTaggedLine(t *testing.T) {
	srv, addr := testServer(t)
	url := wsListen(t, srv)
	web := dialWS(t, url)
	web.send("CAP REQ :message-tags", "CAP END")
	web.expect("CAP")
	web.register("wendy")
	web.join("#lobby")
	tcp := connect(t, addr, "tom")
	tcp.send("CAP REQ :message-tags")
	tcp.expect("CAP")
	tcp.join("#lobby")
	text := strings.Repeat("x", 400)
	web.send("@+draft/x=" + strings.Repeat("y", 4000) + " PRIVMSG #lobby :" + text)
	if m, _ := tcp.expect("PRIVMSG"); m.Param(1) != text {
		t.Errorf("TCP client got %q", m.String())
	}
}

// A message longer than the longest legal line closes the WebSocket with
// 1009; the room hears why, and the metrics count it.
func TestWebSocketOversizedMessage(t *testing.T) {
	srv, tcp, ws := roomWithWebSocketUser(t)
	ws.send("PRIVMSG #lobby :" + strings.Repeat("x", wslisten.DefaultMaxMessage))
	if _, status := ws.readUntilClosed(); status != websocket.StatusMessageTooBig {
		t.Errorf("close status %d, want 1009", status)
	}
	if q, _ := tcp.expect("QUIT"); q.Param(0) != "Message too long" {
		t.Errorf("room saw %q", q.String())
	}
	page := scrape(t, srv)
	if got := sample(t, page, "livechat_input_too_long_total"); got != 1 {
		t.Errorf("livechat_input_too_long_total = %v, want 1", got)
	}
	if got := sample(t, page, `livechat_disconnects_total{reason="too_long"}`); got != 1 {
		t.Errorf(`disconnects{reason="too_long"} = %v, want 1`, got)
	}
}
