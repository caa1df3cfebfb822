package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
)

// tlsYAML is baseConfig with a TLS listener using the given files.
func tlsYAML(certPath, keyPath, extra string) string {
	return "listen:\n  tcp: 127.0.0.1:0\n  tls: 127.0.0.1:0\n  websocket: \"\"\n" +
		"  tls_cert: " + strconv.Quote(certPath) + "\n  tls_key: " + strconv.Quote(keyPath) + "\n" +
		"metrics:\n  listen: 127.0.0.1:0\naccounts:\n  store: memory\nhistory:\n  store: memory\n" + extra
}

// Over a real TLS connection the client verifies the gencert'd
// certificate, registers, and WHOIS shows the connection is secure (671);
// a plain TCP client's WHOIS does not.
func TestTLSWhoisSecure(t *testing.T) {
	certPath, keyPath, cert := newCert(t, t.TempDir())
	r := startRig(t, tlsYAML(certPath, keyPath, ""))

	c, conn := dialTLS(t, r.d.addrs.TLS, cert)
	c.register("alice")
	if v := conn.ConnectionState().Version; v < 0x0303 {
		t.Errorf("negotiated TLS version %#x, want 1.2 or newer", v)
	}
	c.send("WHOIS alice")
	_, lines := c.expect(protocol.RPL_ENDOFWHOIS)
	if !slices.Contains(commandsOf(lines), protocol.RPL_WHOISSECURE) {
		t.Errorf("WHOIS over TLS: %v, want 671", commandsOf(lines))
	}

	plain := dialTCP(t, r.d.addrs.TCP)
	plain.register("bob")
	plain.send("WHOIS bob")
	_, lines = plain.expect(protocol.RPL_ENDOFWHOIS)
	if slices.Contains(commandsOf(lines), protocol.RPL_WHOISSECURE) {
		t.Errorf("WHOIS over plain TCP claims a secure connection: %v", commandsOf(lines))
	}
	// Others see it too.
	plain.send("WHOIS alice")
	_, lines = plain.expect(protocol.RPL_ENDOFWHOIS)
	if !slices.Contains(commandsOf(lines), protocol.RPL_WHOISSECURE) {
		t.Errorf("bob's WHOIS alice: %v, want 671", commandsOf(lines))
	}
}

// A server that only accepts TLS 1.2 or newer turns away TLS 1.1.
func TestTLSMinimumVersion(t *testing.T) {
	certPath, keyPath, cert := newCert(t, t.TempDir())
	r := startRig(t, tlsYAML(certPath, keyPath, ""))
	roots := x509Pool(cert)
	conn, err := tlsDial(r.d.addrs.TLS, roots, 0x0302, 0x0302)
	if err == nil {
		conn.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

// SIGHUP's reload picks up a replaced certificate: new connections get
// it, the connection made before goes on undisturbed. A broken replacement
// is refused and the good certificate stays.
func TestReloadCertificate(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, first := newCert(t, dir)
	r := startRig(t, tlsYAML(certPath, keyPath, ""))

	old, oldConn := dialTLS(t, r.d.addrs.TLS, first)
	old.register("old")
	if got := oldConn.ConnectionState().PeerCertificates[0]; !got.Equal(first) {
		t.Fatal("first connection did not get the first certificate")
	}

	_, _, second := newCert(t, dir) // gencert --force over the same files
	if err := r.d.reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	fresh, freshConn := dialTLS(t, r.d.addrs.TLS, second)
	fresh.register("fresh")
	if got := freshConn.ConnectionState().PeerCertificates[0]; !got.Equal(second) {
		t.Fatalf("after reload a new connection got serial %v, want the new certificate %v", got.SerialNumber, second.SerialNumber)
	}
	old.send("PING still-here")
	if m, _ := old.expect("PONG"); m.Param(1) != "still-here" {
		t.Fatalf("old connection after reload: %q", m.String())
	}
	if line := r.logs.lineWith("TLS certificate reloaded"); line == "" {
		t.Error("no log line for the reloaded certificate")
	}

	// A half-written or wrong file: refused, logged with its key, and the
	// second certificate is still served.
	if err := os.WriteFile(certPath, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.d.reload(); err == nil || !strings.Contains(err.Error(), "listen.tls_cert") {
		t.Fatalf("reload with a broken certificate: %v, want a listen.tls_cert error", err)
	}
	if line := r.logs.lineWith("TLS certificate reload failed", `"key":"listen.tls_cert"`); line == "" {
		t.Errorf("no error log naming listen.tls_cert:\n%s", r.logs)
	}
	_, afterConn := dialTLS(t, r.d.addrs.TLS, second)
	if got := afterConn.ConnectionState().PeerCertificates[0]; !got.Equal(second) {
		t.Fatal("a broken certificate file replaced the good certificate")
	}
	_, page := r.get("/metrics")
	for _, series := range []string{
		`livechat_config_reloads_total{result="ok"} 1`,
		`livechat_config_reloads_total{result="tls_error"} 1`,
		"livechat_tls_certificate_expiry_timestamp_seconds " + strconv.FormatFloat(float64(second.NotAfter.Unix()), 'g', -1, 64),
	} {
		if !hasSeries(page, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}

// An invalid file changes nothing, and the log names the failing key.
func TestReloadInvalidConfigKeepsOld(t *testing.T) {
	r := startRig(t, baseConfig+"motd: first MOTD\n")
	before := r.d.srv.Config()
	r.write(strings.Replace(baseConfig, "history:\n", "history:\n  size: 10\n  replay: 20\n", 1) + "motd: second MOTD\n")
	err := r.d.reload()
	if err == nil || !strings.Contains(err.Error(), "history.replay") {
		t.Fatalf("reload of an invalid file: %v, want an error naming history.replay", err)
	}
	if line := r.logs.lineWith(`"level":"error"`, "history.replay", "previous configuration stays"); line == "" {
		t.Errorf("no error log naming history.replay:\n%s", r.logs)
	}
	if r.d.srv.Config() != before || r.d.config() != before {
		t.Error("an invalid reload replaced the config")
	}
	c := dialTCP(t, r.d.addrs.TCP)
	if motd := c.register("carol"); !slices.Contains(motd, "- first MOTD") {
		t.Errorf("MOTD after a failed reload = %q, want the first", motd)
	}
	_, page := r.get("/metrics")
	if !hasSeries(page, `livechat_config_reloads_total{result="invalid"} 1`) {
		t.Error("invalid reload not counted")
	}
}

// A reload that changes listen.tcp is reported and kept (the listener
// stays where it is), while the MOTD change applies to the next client.
func TestReloadKeepsListenAppliesMOTD(t *testing.T) {
	r := startRig(t, baseConfig+"motd: first MOTD\n")
	early := dialTCP(t, r.d.addrs.TCP)
	early.register("early")

	moved := strings.Replace(baseConfig, "tcp: 127.0.0.1:0", "tcp: 127.0.0.1:7", 1)
	moved = strings.Replace(moved, "limits:\n", "limits:\n  max_conns_per_ip: 5\n", 1)
	r.write(moved + "motd: second MOTD\n")
	if err := r.d.reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if line := r.logs.lineWith(`"level":"warn"`, `"key":"listen.tcp"`, `"configured":"127.0.0.1:7"`, "restart"); line == "" {
		t.Errorf("listen.tcp change not reported:\n%s", r.logs)
	}
	cfg := r.d.srv.Config()
	if cfg.Listen.TCP != "127.0.0.1:0" {
		t.Errorf("running listen.tcp = %q, want it kept", cfg.Listen.TCP)
	}
	if cfg.MOTD != "second MOTD" || cfg.Limits.MaxConnsPerIP != 5 {
		t.Errorf("live keys not applied: motd %q max_conns_per_ip %d", cfg.MOTD, cfg.Limits.MaxConnsPerIP)
	}
	if line := r.logs.lineWith("configuration reloaded", `"motd"`, `"limits.max_conns_per_ip"`); line == "" {
		t.Errorf("reload log does not list the changed keys:\n%s", r.logs)
	}
	late := dialTCP(t, r.d.addrs.TCP) // the same address still serves
	if motd := late.register("late"); !slices.Contains(motd, "- second MOTD") {
		t.Errorf("new client's MOTD = %q, want the reloaded one", motd)
	}
	early.send("PING early")
	early.expect("PONG")
}

// /healthz, /readyz and /metrics over HTTP; /readyz turns 503 as soon as
// the drain starts while the endpoint is still up, then the endpoint goes.
func TestOpsEndpoints(t *testing.T) {
	r := startRig(t, baseConfig)
	c := dialTCP(t, r.d.addrs.TCP)
	c.register("dave") // the listener is serving

	if code, body := r.get("/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := r.get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d %q", code, body)
	}
	code, page := r.get("/metrics")
	if code != http.StatusOK || !hasSeries(page, `livechat_connections{transport="tcp"} 1`) {
		t.Errorf("/metrics = %d, want livechat_connections{transport=\"tcp\"} 1 in:\n%.2000s", code, page)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := r.d.shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.expect("ERROR"); m.Param(0) != "Server shutting down" {
		t.Errorf("client got %q", m.String())
	}
	if code, body := r.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz while shutting down = %d %q, want 503", code, body)
	}
	if code, _ := r.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while shutting down = %d", code)
	}
	if _, err := net.DialTimeout("tcp", r.d.addrs.TCP, waitFor); err == nil {
		t.Error("client listener still accepting after shutdown")
	}
	r.d.closeOps()
	if _, err := (&http.Client{Timeout: waitFor}).Get("http://" + r.d.addrs.Metrics + "/healthz"); err == nil {
		t.Error("operator endpoint still answering after stop")
	}
}

// Every metric docs/OPERATIONS.md's "Running it" section promises is on /metrics,
// once the daemon has done what makes each appear.
func TestMetricsPromisedInREADME(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "\n## Running it")
	if start < 0 {
		t.Fatal("docs/OPERATIONS.md has no Running it section")
	}
	section := text[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var promised []string
	for _, name := range regexp.MustCompile(`livechat_[a-z0-9_]*[a-z0-9]`).FindAllString(section, -1) {
		if !slices.Contains(promised, name) {
			promised = append(promised, name)
		}
	}
	if len(promised) < 10 {
		t.Fatalf("found only %v in the Operations section", promised)
	}

	page := exercisedMetrics(t)
	for _, name := range promised {
		if !strings.Contains(page, "\n# TYPE "+name+" ") {
			t.Errorf("README promises %s; /metrics does not have it", name)
		}
	}
	t.Logf("checked %d metric names: %v", len(promised), promised)
}

// start fails with an error naming the key, and leaves nothing bound.
func TestStartErrors(t *testing.T) {
	isolateEnv(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := freePort(t)

	cfg := configs.Default()
	cfg.Accounts.Store = "memory"
	cfg.Listen.TCP = free
	cfg.Metrics.Listen = busy.Addr().String()
	if _, err := start(&cfg, nopLogger(), nil); err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Fatalf("start with a busy metrics port: %v, want a metrics.listen error", err)
	}
	l, err := net.Listen("tcp", free)
	if err != nil {
		t.Fatalf("listen.tcp was left bound after the failed start: %v", err)
	}
	l.Close()

	dir := t.TempDir()
	cfg = configs.Default()
	cfg.Accounts.Store = "memory"
	cfg.Listen.TCP = "127.0.0.1:0"
	cfg.Metrics.Listen = ""
	cfg.Listen.TLS = "127.0.0.1:0"
	cfg.Listen.TLSCert, cfg.Listen.TLSKey = filepath.Join(dir, "missing.crt"), filepath.Join(dir, "missing.key")
	if _, err := start(&cfg, nopLogger(), nil); err == nil || !strings.Contains(err.Error(), "listen.tls_cert") {
		t.Fatalf("start with a missing certificate: %v", err)
	}

	// An expired certificate is refused up front.
	req, err := newCertRequest(nil, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, _, err := req.generate(time.Now().Add(-72 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfg.Listen.TLSCert, certPEM, 0o644)
	os.WriteFile(cfg.Listen.TLSKey, keyPEM, 0o600)
	if _, err := start(&cfg, nopLogger(), nil); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("start with an expired certificate: %v", err)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func commandsOf(ms []protocol.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Command
	}
	return out
}

// hasSeries reports whether a /metrics page has the exact line.
func hasSeries(page, line string) bool {
	return slices.Contains(strings.Split(page, "\n"), line)
}

// The binary opens the durable stores under data_dir: an account
// registered before a restart logs in after it, a second daemon on the
// same data_dir is refused while the first runs, and the accounts
// subcommand reads the same database once the daemon has stopped.
func TestAccountsSurviveRestart(t *testing.T) {
	dataDir := t.TempDir()
	yaml := strings.Replace(baseConfig, "  store: memory", "  store: file", 1) + "data_dir: " + strconv.Quote(dataDir) + "\n"
	first := startRig(t, yaml)
	c := dialTCP(t, first.d.addrs.TCP)
	c.register("wendy")
	c.send("REGISTER wendy correct-horse-battery")
	if m, _ := c.expect("REGISTER"); m.Param(0) != "SUCCESS" {
		t.Fatalf("REGISTER: %q", m.String())
	}

	cfg, err := configs.Load(first.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := start(cfg, nopLogger(), nil); err == nil || !strings.Contains(err.Error(), "accounts.db") {
		t.Fatalf("a second daemon on the same data_dir started (err %v); want it refused naming accounts.db", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := first.d.stop(ctx); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd("accounts", "--data-dir", dataDir, "list")
	if code != 0 || !strings.Contains(out, "wendy") {
		t.Fatalf("accounts list: exit %d, %q %q", code, out, errOut)
	}

	second := startRig(t, yaml)
	c = dialTCP(t, second.d.addrs.TCP)
	c.register("guest1")
	c.send("LOGIN wendy correct-horse-battery")
	if m, _ := c.expect(protocol.RPL_LOGGEDIN); m.Param(2) != "wendy" {
		t.Fatalf("LOGIN after restart: %q", m.String())
	}
}

func TestAccountsCommand(t *testing.T) {
	isolateEnv(t)
	dir := t.TempDir()
	code, _, errOut := runCmd("accounts", "--data-dir", dir, "list")
	if code != 1 || !strings.Contains(errOut, filepath.Join(dir, "accounts.db")) {
		t.Errorf("list on an empty data_dir: exit %d %q", code, errOut)
	}
	t.Setenv("LIVECHAT_ACCOUNTS_STORE", "memory")
	code, _, errOut = runCmd("accounts", "list")
	if code != 1 || !strings.Contains(errOut, "memory") {
		t.Errorf("with accounts.store memory: exit %d %q", code, errOut)
	}
	t.Setenv("LIVECHAT_ACCOUNTS_STORE", "")
	code, _, errOut = runCmd("accounts", "--bogus")
	if code != 2 || !strings.Contains(errOut, "unknown flag") {
		t.Errorf("bad flag: exit %d %q", code, errOut)
	}
	code, _, errOut = runCmd("accounts", "--help")
	if code != 0 || !strings.Contains(errOut, "livechatd accounts list") || !strings.Contains(errOut, "--data-dir") {
		t.Errorf("--help: exit %d %q", code, errOut)
	}
}

// The built-in page address taken (a second daemon, another program on
// 8080) does not stop the chat; an address the operator chose must bind.
func TestDefaultPageAddressTaken(t *testing.T) {
	if l, err := net.Listen("tcp", configs.DefaultWebSocket); err == nil {
		defer l.Close()
	} // else something else holds it already: the same case
	r := startRig(t, strings.Replace(baseConfig, "  websocket: \"\"\n", "", 1))
	if r.d.addrs.WebSocket != "" {
		t.Fatalf("page served at %s although its default address was taken", r.d.addrs.WebSocket)
	}
	if line := r.logs.lineWith("the chat page is not served"); line == "" {
		t.Errorf("no warning:\n%s", r.logs)
	}
	c := dialTCP(t, r.d.addrs.TCP)
	c.register("still")

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	isolateEnv(t)
	cfg := configs.Default()
	cfg.Listen.TCP, cfg.Metrics.Listen, cfg.Listen.WebSocket = "127.0.0.1:0", "", busy.Addr().String()
	cfg.Accounts.Store, cfg.History.Store = "memory", "memory"
	if d, err := start(&cfg, zerolog.Nop(), nil); err == nil {
		d.stop(t.Context())
		t.Fatal("a chosen page address that is taken did not refuse the start")
	}
}

// The IRC TLS listener asks for a client certificate (for SASL EXTERNAL
// and CERTFP) without requiring one: a client presenting one sees its
// fingerprint in its own WHOIS (276).
func TestTLSClientCertificate(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, cert := newCert(t, dir)
	r := startRig(t, tlsYAML(certPath, keyPath, ""))
	clientDir := t.TempDir()
	clientCertPath, clientKeyPath, _ := newCert(t, clientDir)
	clientCert, err := tls.LoadX509KeyPair(clientCertPath, clientKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", r.d.addrs.TLS,
		&tls.Config{RootCAs: x509Pool(cert), ServerName: "localhost", Certificates: []tls.Certificate{clientCert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.register("carla")
	c.send("WHOIS carla")
	m, _ := c.expect(protocol.RPL_WHOISCERTFP)
	sum := sha256.Sum256(clientCert.Certificate[0])
	if want := "has client certificate fingerprint " + hex.EncodeToString(sum[:]); m.Param(2) != want {
		t.Fatalf("276 %q, want %q", m.Param(2), want)
	}
}
