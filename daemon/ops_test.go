package daemon

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
)

// limitLoopback configures per-IP limits for a test whose clients all come
// from 127.0.0.1, whatever exemptions testServer grants other tests.
func limitLoopback(set func(*configs.Limits)) func(*configs.Config, *Options) {
	return func(c *configs.Config, _ *Options) {
		c.Limits.Exempt = nil
		set(&c.Limits)
	}
}

// scrape returns the server's /metrics page.
func scrape(t *testing.T, srv *Server) string {
	t.Helper()
	code, body := get(t, srv.OpsHandler(false), "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	return body
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// sample returns the value of one series, such as
// `livechat_connections_refused_total{reason="per_ip"}`, from a scrape.
func sample(t *testing.T, page, series string) float64 {
	t.Helper()
	for line := range strings.Lines(page) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("no series %s in /metrics", series)
	return 0
}

// probe dials addr and says PING: it returns "" when the server answers,
// or the ERROR text it was refused with.
func probe(t *testing.T, addr string) (c *client, refusedWith string) {
	t.Helper()
	c = dial(t, addr)
	c.send("PING probe")
	for range 100 { // bounded; each read also has a deadline
		m := c.read()
		switch m.Command {
		case "PONG":
			return c, ""
		case "ERROR":
			if _, err := c.tryRead(); err == nil {
				t.Fatalf("refused connection left open after %q", m.String())
			}
			return nil, m.Param(0)
		}
	}
	t.Fatal("no PONG or ERROR")
	return nil, ""
}

// The N+1th connection from one address is refused with an ERROR line and
// counted; exempting the address lifts the limit at once (as SIGHUP does);
// a closed connection frees its slot.
func TestPerIPConnectionLimit(t *testing.T) {
	const limit = 3
	srv, addr := testServer(t, limitLoopback(func(l *configs.Limits) { l.MaxConnsPerIP = limit }))
	if got := sample(t, scrape(t, srv), `livechat_connections_refused_total{reason="per_ip"}`); got != 0 {
		t.Fatalf("refused before any connection: %v", got)
	}
	var held []*client
	for i := range limit {
		held = append(held, connect(t, addr, "held"+strconv.Itoa(i)))
	}
	if _, refused := probe(t, addr); refused != "Too many connections from your address" {
		t.Fatalf("connection %d: refused with %q, want the per-IP ERROR", limit+1, refused)
	}
	page := scrape(t, srv)
	if got := sample(t, page, `livechat_connections_refused_total{reason="per_ip"}`); got != 1 {
		t.Errorf("per_ip refusals = %v, want 1", got)
	}
	if got := sample(t, page, "livechat_ip_limit_addresses"); got != 1 {
		t.Errorf("tracked addresses = %v, want 1 (127.0.0.1)", got)
	}

	exempt := *srv.Config()
	exempt.Limits.Exempt = []string{"127.0.0.0/8", "::1"}
	srv.SetConfig(&exempt)
	for i := range limit {
		if _, refused := probe(t, addr); refused != "" {
			t.Fatalf("exempt connection %d refused: %q", i, refused)
		}
	}

	// Back under the limit: closing one held connection frees a slot. The
	// client sees EOF just before the server releases the slot, so retry
	// (each try is a full round trip, bounded in count and by deadlines).
	limited := *srv.Config()
	limited.Limits.Exempt = nil
	srv.SetConfig(&limited)
	if _, refused := probe(t, addr); refused == "" {
		t.Fatal("limit not back after removing the exemption")
	}
	held[0].send("QUIT")
	held[0].expect("ERROR")
	for try := 0; ; try++ {
		_, refused := probe(t, addr)
		if refused == "" {
			break
		}
		if try == 1000 {
			t.Fatalf("slot never released: still %q", refused)
		}
	}
	if got := sample(t, scrape(t, srv), `livechat_connections_refused_total{reason="per_ip_rate"}`); got != 0 {
		t.Errorf("per_ip_rate refusals = %v, want 0", got)
	}
}

func TestPerIPRateLimit(t *testing.T) {
	srv, addr := testServer(t, limitLoopback(func(l *configs.Limits) {
		l.ConnRatePerIP = 2
		l.ConnRateWindow = time.Hour // no refill during the test
	}))
	for range 2 {
		c, refused := probe(t, addr)
		if refused != "" {
			t.Fatalf("refused within the burst: %q", refused)
		}
		c.conn.Close()
	}
	_, refused := probe(t, addr)
	if refused != "Connecting too fast, try again in 1800s" {
		t.Fatalf("refused with %q, want the rate ERROR", refused)
	}
	if got := sample(t, scrape(t, srv), `livechat_connections_refused_total{reason="per_ip_rate"}`); got != 1 {
		t.Errorf("per_ip_rate refusals = %v, want 1", got)
	}
}

// A refusal must not stall the accept loop: refusing a TLS connection
// means finishing its handshake first, and a client that never starts one
// would otherwise hold up every connection queued behind it.
func TestTLSRefusalDoesNotBlockAccept(t *testing.T) {
	srv, _ := testServer(t, limitLoopback(func(l *configs.Limits) { l.MaxConnsPerIP = 1 }))
	cert := selfSigned(t)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l, "tls") // Shutdown at cleanup closes it
	addr := l.Addr().String()
	dialTLS := func() *client {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	}
	first := dialTLS()
	first.register("first")

	silent := dial(t, addr) // over the limit, and never says a word
	_ = silent
	third := dialTLS()
	if m, _ := third.expect("ERROR"); m.Param(0) != "Too many connections from your address" {
		t.Fatalf("got %q", m.String())
	}
}

// selfSigned makes a throwaway ECDSA certificate for 127.0.0.1.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// /readyz is 503 until a listener is serving and again once shutdown has
// begun; /healthz stays 200 while the process lives.
func TestReadyz(t *testing.T) {
	cfg := configs.Default()
	cfg.Accounts.Store = "memory"
	srv := New(&cfg, Options{Logger: zerolog.New(zerolog.NewTestWriter(t))})
	h := srv.OpsHandler(false)
	if code, _ := get(t, h, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before any listener = %d, want 503", code)
	}
	if code, _ := get(t, h, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l, "tcp") }()
	connect(t, l.Addr().String(), "alice") // Serve registers its listener before accepting
	if code, body := get(t, h, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz while serving = %d %q", code, body)
	}

	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz after shutdown = %d %q, want 503 shutting down", code, body)
	}
	if code, _ := get(t, h, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after shutdown = %d", code)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Serve did not return after Shutdown")
	}
}
