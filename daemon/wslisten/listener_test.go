package wslisten

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"
)

// waitFor bounds every wait; nothing sleeps and hopes.
const waitFor = 10 * time.Second

func TestMain(m *testing.M) {
	// Most test clients never read the close frame; don't wait a second
	// for each of them at cleanup.
	closeWait = 50 * time.Millisecond
	os.Exit(m.Run())
}

// serve starts a Listener on 127.0.0.1:0 and returns it with its ws:// URL.
func serve(t *testing.T, opts Options) (*Listener, string) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Log = zerolog.New(zerolog.NewTestWriter(t))
	l := New(raw, opts)
	t.Cleanup(func() { l.Close() })
	return l, "ws://" + raw.Addr().String() + "/"
}

// accept waits for the server side of the next connection.
func accept(t *testing.T, l *Listener) net.Conn {
	t.Helper()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(got)
			return
		}
		got <- c
	}()
	select {
	case c, ok := <-got:
		if !ok {
			t.Fatal("Accept failed")
		}
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(waitFor):
		t.Fatal("no connection accepted")
		return nil
	}
}

func dialRaw(t *testing.T, url string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

func readMessage(t *testing.T, ws *websocket.Conn) (websocket.MessageType, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	typ, msg, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, string(msg)
}

func writeMessage(t *testing.T, ws *websocket.Conn, typ websocket.MessageType, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := ws.Write(ctx, typ, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func readLine(t *testing.T, r *bufio.Reader, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("server read: %v", err)
	}
	return line
}

func TestLinesBothWays(t *testing.T) {
	l, url := serve(t, Options{})
	ws := dialRaw(t, url, &websocket.DialOptions{Subprotocols: []string{TextSubprotocol}})
	if ws.Subprotocol() != TextSubprotocol {
		t.Fatalf("subprotocol %q, want %q", ws.Subprotocol(), TextSubprotocol)
	}
	srv := accept(t, l)
	r := bufio.NewReader(srv)

	writeMessage(t, ws, websocket.MessageText, "NICK alice")
	writeMessage(t, ws, websocket.MessageText, "PRIVMSG #a :hi\r\n") // tolerated, not doubled
	for _, want := range []string{"NICK alice\r\n", "PRIVMSG #a :hi\r\n"} {
		if got := readLine(t, r, srv); got != want {
			t.Errorf("server read %q, want %q", got, want)
		}
	}

	// A batch written at once, with a line split across two writes.
	srv.Write([]byte(":s 001 alice :Welcome\r\n:s PING :x\r\n:s NOT"))
	srv.Write([]byte("ICE alice :split\r\n"))
	for _, want := range []string{":s 001 alice :Welcome", ":s PING :x", ":s NOTICE alice :split"} {
		typ, got := readMessage(t, ws)
		if typ != websocket.MessageText || got != want {
			t.Errorf("client got %v %q, want text %q (one line per message, no line ending)", typ, got, want)
		}
	}

	// Text messages must be UTF-8: bad bytes from a TCP client are replaced.
	srv.Write([]byte(":bob PRIVMSG #a :caf\xe9\r\n"))
	if _, got := readMessage(t, ws); got != ":bob PRIVMSG #a :caf\uFFFD" {
		t.Errorf("invalid UTF-8 sent as %q", got)
	}
}

func TestSubprotocolNegotiation(t *testing.T) {
	l, url := serve(t, Options{})
	for _, tc := range []struct {
		offer []string
		want  string
		typ   websocket.MessageType
	}{
		{[]string{TextSubprotocol}, TextSubprotocol, websocket.MessageText}, // Kiwi IRC (irc-framework's default)
		{[]string{BinarySubprotocol}, BinarySubprotocol, websocket.MessageBinary},
		{[]string{BinarySubprotocol, TextSubprotocol}, TextSubprotocol, websocket.MessageText},
		{nil, "", websocket.MessageText}, // none is text: gamja asks for none
		{[]string{"chat", TextSubprotocol}, TextSubprotocol, websocket.MessageText},
	} {
		ws := dialRaw(t, url, &websocket.DialOptions{Subprotocols: tc.offer})
		if ws.Subprotocol() != tc.want {
			t.Errorf("offer %v: negotiated %q, want %q", tc.offer, ws.Subprotocol(), tc.want)
		}
		srv := accept(t, l)
		srv.Write([]byte(":s NOTICE * :caf\xe9\r\n"))
		typ, got := readMessage(t, ws)
		if typ != tc.typ {
			t.Errorf("offer %v: message type %v, want %v", tc.offer, typ, tc.typ)
		}
		if tc.typ == websocket.MessageBinary && got != ":s NOTICE * :caf\xe9" {
			t.Errorf("binary subprotocol altered the bytes: %q", got)
		}
	}
}

func TestOversizedMessageClosesWith1009(t *testing.T) {
	l, url := serve(t, Options{MaxMessage: 600})
	ws := dialRaw(t, url, nil)
	srv := accept(t, l)
	writeMessage(t, ws, websocket.MessageText, "PRIVMSG #a :"+strings.Repeat("x", 700))
	srv.SetReadDeadline(time.Now().Add(waitFor))
	if err := readToError(srv); err != ErrMessageTooBig {
		t.Errorf("server read of an oversized message: %v, want ErrMessageTooBig", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, _, err := ws.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
		t.Fatalf("client read after an oversized message: %v (status %d), want status 1009", err, got)
	}
	if _, err := srv.Read(make([]byte, 64)); err != ErrMessageTooBig {
		t.Errorf("server read again: %v, want ErrMessageTooBig", err)
	}
	if _, err := srv.Write([]byte("NOTICE * :late\r\n")); err != ErrMessageTooBig {
		t.Errorf("server write after an oversized message: %v, want ErrMessageTooBig", err)
	}
}

// The session's writer may be the first to hit the connection the library
// closed over an oversized message, while its reader is still returning;
// both must report the oversized message, not a bare write error.
func TestOversizedMessageSeenByWriterFirst(t *testing.T) {
	for range 20 {
		l, url := serve(t, Options{MaxMessage: 600})
		ws := dialRaw(t, url, nil)
		srv := accept(t, l)
		readErr := make(chan error, 1)
		srv.SetReadDeadline(time.Now().Add(waitFor))
		go func() { readErr <- readToError(srv) }()
		writeMessage(t, ws, websocket.MessageText, "PRIVMSG #a :"+strings.Repeat("x", 700))
		var err error
		for i := 0; i < 1_000_000 && err == nil; i++ {
			_, err = srv.Write([]byte("NOTICE * :filler\r\n"))
		}
		if err != ErrMessageTooBig {
			t.Fatalf("server write after an oversized message: %v, want ErrMessageTooBig", err)
		}
		if err := <-readErr; err != ErrMessageTooBig {
			t.Fatalf("server read: %v, want ErrMessageTooBig", err)
		}
	}
}

// readToError reads c as the daemon's session does, in small pieces until
// an error, and returns the error. The caller sets the read deadline.
func readToError(c net.Conn) error {
	buf := make([]byte, 64)
	for range 1000 { // bounded: a message is at most a few hundred pieces
		if _, err := c.Read(buf); err != nil {
			return err
		}
	}
	return errors.New("no error after 1000 reads")
}

func TestOrigins(t *testing.T) {
	for _, tc := range []struct {
		allowed []string
		origin  string
		ok      bool
	}{
		{nil, "", true}, // not a browser
		{nil, "http://HOST", true},
		{nil, "http://evil.example", false},
		{[]string{"*.example.com"}, "https://kiwi.example.com", true},
		{[]string{"*.example.com"}, "https://example.org", false},
		{[]string{"https://gamja.example.com"}, "https://gamja.example.com", true},
		{[]string{"https://gamja.example.com"}, "http://gamja.example.com", false},
		{[]string{"*"}, "http://anything.example", true},
	} {
		refused := make(chan string, 1)
		l, url := serve(t, Options{AllowedOrigins: tc.allowed, Refused: func(r string) { refused <- r }})
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", strings.Replace(tc.origin, "HOST", l.Addr().String(), 1))
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
		cancel()
		if tc.ok {
			if err != nil {
				t.Errorf("allowed %v, origin %q: refused: %v", tc.allowed, tc.origin, err)
				continue
			}
			accept(t, l)
			ws.CloseNow()
			continue
		}
		if err == nil {
			ws.CloseNow()
			t.Errorf("allowed %v, origin %q: accepted, want refused", tc.allowed, tc.origin)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("allowed %v, origin %q: %v, want 403", tc.allowed, tc.origin, err)
		}
		select {
		case r := <-refused:
			if r != RefusedOrigin {
				t.Errorf("allowed %v, origin %q: refused as %q, want %q", tc.allowed, tc.origin, r, RefusedOrigin)
			}
		case <-time.After(waitFor):
			t.Errorf("allowed %v, origin %q: Refused was not called", tc.allowed, tc.origin)
		}
	}
}

func TestPageAndUpgradeShareTheAddress(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "the page") })
	_, url := serve(t, Options{Page: page})
	resp, err := http.Get("http" + strings.TrimPrefix(url, "ws"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "the page" {
		t.Errorf("GET / = %d %q", resp.StatusCode, body)
	}
}

func TestReadDeadlineLeavesConnectionUsable(t *testing.T) {
	l, url := serve(t, Options{})
	ws := dialRaw(t, url, nil)
	srv := accept(t, l)
	srv.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := srv.Read(make([]byte, 64)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	// The daemon PINGs a quiet client and reads on: the WebSocket must
	// have survived the timeout.
	srv.Write([]byte("PING :s\r\n"))
	if _, got := readMessage(t, ws); got != "PING :s" {
		t.Fatalf("got %q", got)
	}
	writeMessage(t, ws, websocket.MessageText, "PONG :s")
	if got := readLine(t, bufio.NewReader(srv), srv); got != "PONG :s\r\n" {
		t.Errorf("after a timeout the server read %q", got)
	}
}

// A deadline that passes in the middle of a message only fails that
// read, as on TCP: the next one goes on with the message, which arrives
// whole.
func TestReadDeadlineMidMessageIsSurvived(t *testing.T) {
	l, url := serve(t, Options{})
	ws := dialRaw(t, url, nil)
	srv := accept(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	w, err := ws.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	// More than the library's write buffer, so a first fragment goes out
	// now and the message stays open.
	line := "PRIVMSG #a :" + strings.Repeat("x", 5000)
	if _, err := w.Write([]byte(line[:5005])); err != nil {
		t.Fatal(err)
	}
	srv.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if err := readToError(srv); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read stalled mid-message: %v, want a timeout", err)
	}
	if _, err := w.Write([]byte(line[5005:])); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readLine(t, bufio.NewReader(srv), srv); got != line+"\r\n" {
		t.Errorf("after the stall the server read %d bytes, want the whole %d-byte line", len(got), len(line)+2)
	}
}

func TestCloseIsNormalClosure(t *testing.T) {
	l, url := serve(t, Options{})
	ws := dialRaw(t, url, nil)
	srv := accept(t, l)
	srv.Write([]byte("ERROR :Bye\r\n"))
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	if _, got := readMessage(t, ws); got != "ERROR :Bye" {
		t.Fatalf("got %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, _, err := ws.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after Close the client read %v, want status 1000", err)
	}
	select {
	case <-closed:
	case <-time.After(waitFor):
		t.Fatal("Close did not return after the client answered the close")
	}
}

func TestWriteDeadlineCutsAStuckWrite(t *testing.T) {
	l, url := serve(t, Options{})
	dialRaw(t, url, nil) // never reads
	srv := accept(t, l)
	done := make(chan error, 1)
	go func() {
		line := []byte(":s NOTICE * :" + strings.Repeat("x", 400) + "\r\n")
		for {
			if _, err := srv.Write(line); err != nil {
				done <- err
				return
			}
		}
	}()
	// Once the socket buffers fill the writer blocks; a deadline set from
	// another goroutine must free it, as it would on a TCP socket.
	srv.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("want an error")
		}
	case <-time.After(waitFor):
		t.Fatal("a write stuck on a client that does not read ignored the deadline")
	}
}

func TestClientAddrBelievesOnlyTrustedProxies(t *testing.T) {
	l := &Listener{}
	l.SetPolicy(nil, nil, []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
	})
	for _, tc := range []struct {
		peer, xff, want string
	}{
		{"192.0.2.1:5000", "", "192.0.2.1:5000"},
		{"192.0.2.1:5000", "203.0.113.9", "192.0.2.1:5000"}, // not a proxy: ignored
		{"10.1.1.1:5000", "203.0.113.9", "203.0.113.9:0"},
		{"10.1.1.1:5000", "198.51.100.7, 203.0.113.9", "203.0.113.9:0"}, // right-most untrusted
		{"10.1.1.1:5000", "203.0.113.9, 10.2.2.2", "203.0.113.9:0"},     // through two proxies
		{"10.1.1.1:5000", "203.0.113.9, garbage", "10.1.1.1:5000"},      // stop at garbage
		{"10.1.1.1:5000", "", "10.1.1.1:5000"},                          // proxy, no header
		{"[::1]:5000", "2001:db8::5", "[2001:db8::5]:0"},                // IPv6
		{"10.1.1.1:5000", "::ffff:203.0.113.9", "203.0.113.9:0"},        // mapped: plain IPv4
		{"10.1.1.1:5000", "10.3.3.3", "10.3.3.3:0"},                     // all trusted: left-most
	} {
		r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := l.clientAddr(r).String(); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q: client %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}

func TestForwardedSecureBelievesOnlyTrustedProxies(t *testing.T) {
	l := &Listener{}
	l.SetPolicy(nil, nil, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	for _, tc := range []struct {
		peer  string
		proto []string
		want  bool
	}{
		{"192.0.2.1:5000", nil, false},
		{"192.0.2.1:5000", []string{"https"}, false}, // not a proxy: ignored
		{"10.1.1.1:5000", nil, false},                // proxy that says nothing
		{"10.1.1.1:5000", []string{"https"}, true},
		{"10.1.1.1:5000", []string{"HTTPS"}, true},
		{"10.1.1.1:5000", []string{"wss"}, true},
		{"10.1.1.1:5000", []string{"http"}, false},
		{"10.1.1.1:5000", []string{"https, http"}, false}, // client's claim, proxy's truth
		{"10.1.1.1:5000", []string{"https", "http"}, false},
		{"10.1.1.1:5000", []string{"https, https"}, true}, // two TLS hops
	} {
		r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
		for _, p := range tc.proto {
			r.Header.Add("X-Forwarded-Proto", p)
		}
		if got := l.forwardedSecure(r); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-Proto %q: secure %v, want %v", tc.peer, tc.proto, got, tc.want)
		}
	}
}

func TestCloseStopsAccept(t *testing.T) {
	l, url := serve(t, Options{})
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, _, err := websocket.Dial(ctx, url, nil); err == nil {
		t.Error("dial after Close succeeded")
	}
}

// A client may send its first message in the same packet as the upgrade
// request; the bytes net/http already buffered must not be lost when the
// connection gets its smaller buffers.
func TestMessageRightBehindTheUpgrade(t *testing.T) {
	l, url := serve(t, Options{})
	raw, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	payload := []byte("NICK early")
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(payload)), mask[0], mask[1], mask[2], mask[3]}
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	raw.SetDeadline(time.Now().Add(waitFor))
	if _, err := raw.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	srv := accept(t, l)
	if got := readLine(t, bufio.NewReader(srv), srv); got != "NICK early\r\n" {
		t.Errorf("server read %q", got)
	}
}

// Admit counts sockets until they upgrade or close: one address cannot
// hold more than it allows with sockets that never upgrade, and a socket
// that upgrades stops counting.
func TestAdmitBoundsSocketsThatDoNotUpgrade(t *testing.T) {
	var mu sync.Mutex
	held := 0
	events := make(chan string, 16)
	admit := func(net.Addr) (func(), bool) {
		mu.Lock()
		defer mu.Unlock()
		if held >= 2 {
			return nil, false
		}
		held++
		return func() {
			mu.Lock()
			held--
			mu.Unlock()
			events <- "released"
		}, true
	}
	l, url := serve(t, Options{Admit: admit, Refused: func(r string) { events <- r }})
	addr := l.Addr().String()
	expectEvent := func(want string) {
		t.Helper()
		select {
		case got := <-events:
			if got != want {
				t.Fatalf("event %q, want %q", got, want)
			}
		case <-time.After(waitFor):
			t.Fatalf("no %q event", want)
		}
	}
	refusedAtOnce := func() {
		t.Helper()
		resp, err := (&http.Client{Timeout: waitFor}).Get("http://" + addr + "/")
		if err != nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("a socket over the limit: %v, %v; want 429", resp, err)
		}
		resp.Body.Close()
		expectEvent(RefusedPerIP)
	}

	idle := dialTCP(t, addr)
	dialTCP(t, addr)
	refusedAtOnce()

	idle.Close()
	expectEvent("released")
	dialRaw(t, url, nil) // takes the freed place, then gives it up once upgraded
	accept(t, l)
	expectEvent("released")
	dialTCP(t, addr)
	refusedAtOnce()
}

// A trusted proxy's socket carries many clients: it is not Admit's to
// refuse.
func TestAdmitSkipsTrustedProxies(t *testing.T) {
	l, url := serve(t, Options{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Admit:          func(net.Addr) (func(), bool) { return nil, false },
	})
	dialRaw(t, url, nil)
	accept(t, l)
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A wss connection is secure and a plain one is not, though net/http
// cannot see the TLS under the cork.
func TestSecureOverTLS(t *testing.T) {
	l, client := newTLSTestListener(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+l.Addr().String()+"/", &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	if c := accept(t, l).(*conn); !c.Secure() {
		t.Error("a wss connection is not secure")
	}

	plain, url := serve(t, Options{})
	dialRaw(t, url, nil)
	if c := accept(t, plain).(*conn); c.Secure() {
		t.Error("a ws connection is secure")
	}
}

// newTLSTestListener starts a listener over TLS with a test certificate,
// and returns it with an HTTP client that trusts that certificate.
func newTLSTestListener(t *testing.T) (*Listener, *http.Client) {
	t.Helper()
	borrowed := httptest.NewTLSServer(http.NotFoundHandler()) // for its certificate and a client that trusts it
	client := borrowed.Client()
	cfg := borrowed.TLS.Clone()
	borrowed.Close()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(tls.NewListener(raw, cfg), Options{Log: zerolog.New(zerolog.NewTestWriter(t))})
	t.Cleanup(func() { l.Close() })
	return l, client
}
