package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/livechat/livechat/daemon/wslisten"
	"github.com/livechat/livechat/protocol"
)

// wsConfig is baseConfig with a WebSocket listener too.
func wsConfig() string {
	return strings.Replace(baseConfig, "  websocket: \"\"\n", "  websocket: 127.0.0.1:0\n", 1)
}

// dialWS connects a line-level client to a WebSocket listener; client may
// be nil for plain ws://.
func dialWS(t *testing.T, url string, hc *http.Client, origin string) (*client, error) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return dialWSHeader(t, url, hc, h)
}

// dialWSHeader is dialWS with the handshake's headers given.
func dialWSHeader(t *testing.T, url string, hc *http.Client, h http.Header) (*client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	opts := &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{wslisten.TextSubprotocol}, HTTPHeader: h}
	conn, err := wslisten.Dial(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}, nil
}

// The daemon serves the chat page and the WebSocket on listen.websocket,
// refuses pages from other origins unless websocket.allowed_origins lists
// them, and a WebSocket user chats with a TCP user.
func TestWebSocketListener(t *testing.T) {
	r := startRig(t, wsConfig()+
		"websocket:\n  allowed_origins: [\"https://gamja.example.com\"]\n")
	base := "http://" + r.d.addrs.WebSocket + "/"

	resp, err := (&http.Client{Timeout: waitFor}).Get(base)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<title>") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s %.80q, want the chat page", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Error("the page is served without a Content-Security-Policy")
	}

	url := "ws://" + r.d.addrs.WebSocket + "/"
	if _, err := dialWS(t, url, nil, "https://evil.example"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("foreign origin: %v, want 403", err)
	}
	// The refusal reached the metrics before the 403 reached the client.
	if _, page := r.get("/metrics"); !strings.Contains(page, `livechat_connections_refused_total{reason="ws_origin"} 1`+"\n") {
		t.Error(`livechat_connections_refused_total{reason="ws_origin"} is not 1 after a foreign origin`)
	}
	if _, err := dialWS(t, url, nil, "https://gamja.example.com"); err != nil {
		t.Errorf("allowed origin refused: %v", err)
	}
	web, err := dialWS(t, url, nil, "http://"+r.d.addrs.WebSocket)
	if err != nil {
		t.Fatalf("the page's own origin refused: %v", err)
	}
	web.register("wendy")
	web.send("JOIN #lobby")
	web.expect(protocol.RPL_ENDOFNAMES)

	tcp := dialTCP(t, r.d.addrs.TCP)
	tcp.register("tom")
	tcp.send("JOIN #lobby", "PRIVMSG #lobby :hi wendy")
	if m, _ := web.expect("PRIVMSG"); m.Param(1) != "hi wendy" {
		t.Errorf("WebSocket client got %q", m.String())
	}
}

// listen.websocket_tls serves wss:// with the TLS listener's certificate,
// and WHOIS calls the connection secure.
func TestWebSocketTLS(t *testing.T) {
	certPath, keyPath, cert := newCert(t, t.TempDir())
	r := startRig(t, "listen:\n  tcp: 127.0.0.1:0\n  websocket: \"\"\n  websocket_tls: 127.0.0.1:0\n"+
		"  tls_cert: "+strconv.Quote(certPath)+"\n  tls_key: "+strconv.Quote(keyPath)+"\n"+
		"metrics:\n  listen: \"\"\naccounts:\n  store: memory\nhistory:\n  store: memory\n")
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	hc := &http.Client{Timeout: waitFor, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	web, err := dialWS(t, "wss://"+r.d.addrs.WebSocketTLS+"/", hc, "")
	if err != nil {
		t.Fatal(err)
	}
	web.register("wendy")
	web.send("WHOIS wendy")
	_, lines := web.expect(protocol.RPL_ENDOFWHOIS)
	if !slices.Contains(commandsOf(lines), protocol.RPL_WHOISSECURE) {
		t.Errorf("WHOIS over wss://: %v, want 671", commandsOf(lines))
	}
}

// livechatd counts the WebSocket listener's sockets that have not
// upgraded against limits.max_conns_per_ip.
func TestWebSocketListenerLimitsIdleSockets(t *testing.T) {
	r := startRig(t, wsConfig()+
		"  exempt: []\n  max_conns_per_ip: 1\n")
	idle, err := net.DialTimeout("tcp", r.d.addrs.WebSocket, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	resp, err := (&http.Client{Timeout: waitFor}).Get("http://" + r.d.addrs.WebSocket + "/")
	if err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a second socket from 127.0.0.1: %v, %v; want 429", resp, err)
	}
	resp.Body.Close()
	if _, page := r.get("/metrics"); !strings.Contains(page, `livechat_connections_refused_total{reason="ws_per_ip"} 1`+"\n") {
		t.Error(`livechat_connections_refused_total{reason="ws_per_ip"} is not 1`)
	}
}

// A SIGHUP applies websocket.allowed_origins and websocket.trusted_proxies
// without a restart, which would drop every user.
func TestReloadWebSocketPolicy(t *testing.T) {
	yaml := func(origin, proxies string) string {
		return wsConfig() +
			"websocket:\n  allowed_origins: [\"" + origin + "\"]\n  trusted_proxies: [" + proxies + "]\n"
	}
	r := startRig(t, yaml("https://gamja.example.com", ""))
	url := "ws://" + r.d.addrs.WebSocket + "/"
	viaProxy := func(origin string) (*client, error) {
		h := http.Header{}
		h.Set("Origin", origin)
		h.Set("X-Forwarded-For", "203.0.113.9")
		return dialWSHeader(t, url, nil, h)
	}
	// The address the daemon believes, which a user sees in their own
	// WHOIS (338); others see its cloak.
	whoisHost := func(c *client, nick string) string {
		c.register(nick)
		c.send("WHOIS " + nick)
		m, _ := c.expect(protocol.RPL_WHOISACTUALLY)
		return m.Param(3)
	}

	if _, err := viaProxy("https://kiwi.example.com"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("an origin not listed yet: %v, want 403", err)
	}
	before, err := viaProxy("https://gamja.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if host := whoisHost(before, "before"); host != "127.0.0.1" {
		t.Errorf("X-Forwarded-For believed from a proxy not listed yet: host %q", host)
	}

	r.write(yaml("https://kiwi.example.com", "127.0.0.1"))
	if err := r.d.reload(); err != nil {
		t.Fatal(err)
	}
	if line := r.logs.lineWith("cannot change without a restart"); line != "" {
		t.Errorf("reload warned: %s", line)
	}
	after, err := viaProxy("https://kiwi.example.com")
	if err != nil {
		t.Fatalf("the origin added by the reload: %v", err)
	}
	if host := whoisHost(after, "after"); host != "203.0.113.9" {
		t.Errorf("after listing the proxy: host %q, want 203.0.113.9", host)
	}
	if _, err := viaProxy("https://gamja.example.com"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("the origin the reload removed: %v, want 403", err)
	}
	before.send("PING still-here") // the reload dropped nobody
	before.expect("PONG")
}
