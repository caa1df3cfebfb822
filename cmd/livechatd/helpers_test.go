package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/internal/syncbuf"
	"github.com/livechat/livechat/protocol"
)

// waitFor bounds every wait in these tests; nothing sleeps and hopes.
const waitFor = 10 * time.Second

// TestMain lets a test run this binary as the daemon itself (see
// TestProcess): with the marker set it is livechatd, not a test binary.
func TestMain(m *testing.M) {
	if os.Getenv("LIVECHATD_TEST_RUN_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// isolateEnv hides LIVECHAT_* variables of the machine running the tests.
func isolateEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, configs.EnvPrefix) {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

// logBuffer collects the daemon's log lines; safe for concurrent use.
type logBuffer struct{ syncbuf.Buffer }

// lineWith returns the first log line containing every part, or "".
func (b *logBuffer) lineWith(parts ...string) string {
	for line := range strings.Lines(b.String()) {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return line
		}
	}
	return ""
}

// rig is a daemon started in-process from a config file the test can
// rewrite before calling reload.
type rig struct {
	t    *testing.T
	d    *instance
	logs *logBuffer
	path string // the config file
}

// baseConfig is what tests start from: every listener on 127.0.0.1:0,
// accounts and history in memory (nothing written to the working
// directory), fast flood control out of the way.
const baseConfig = `
listen:
  tcp: 127.0.0.1:0
  websocket: ""
metrics:
  listen: 127.0.0.1:0
accounts:
  store: memory
history:
  store: memory
limits:
  flood_burst: 100000
  flood_rate: 100000
`

// startRig writes yaml to a config file and starts the daemon from it.
func startRig(t *testing.T, yaml string) *rig {
	t.Helper()
	isolateEnv(t)
	r := &rig{t: t, logs: &logBuffer{}, path: filepath.Join(t.TempDir(), "livechatd.yaml")}
	r.write(yaml)
	cfg, err := configs.Load(r.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(r.logs).With().Timestamp().Logger()
	zerolog.SetGlobalLevel(parseLevel(cfg.Log.Level))
	r.d, err = start(cfg, log, func() (*configs.Config, error) { return configs.Load(r.path, nil) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		r.d.stop(ctx)
		if t.Failed() {
			t.Logf("daemon log:\n%s", r.logs)
		}
	})
	return r
}

func (r *rig) write(yaml string) {
	r.t.Helper()
	if err := os.WriteFile(r.path, []byte(yaml), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// get fetches an operator endpoint.
func (r *rig) get(path string) (int, string) {
	r.t.Helper()
	c := &http.Client{Timeout: waitFor}
	resp, err := c.Get("http://" + r.d.addrs.Metrics + path)
	if err != nil {
		r.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// newCert runs `livechatd gencert --out dir --force` and returns the
// certificate it wrote.
func newCert(t *testing.T, dir string) (certPath, keyPath string, cert *x509.Certificate) {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run([]string{"gencert", "--out", dir, "--force"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("gencert exited %d: %s", code, errOut.String())
	}
	certPath, keyPath = filepath.Join(dir, certFileName), filepath.Join(dir, keyFileName)
	return certPath, keyPath, readCert(t, certPath)
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// client is a line-level test client over TCP or TLS.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialTCP(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// dialTLS connects and verifies the server against trusted, as a careful
// client that imported the self-signed certificate would.
func dialTLS(t *testing.T, addr string, trusted *x509.Certificate) (*client, *tls.Conn) {
	t.Helper()
	conn, err := tlsDial(addr, x509Pool(trusted), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}, conn
}

func (c *client) send(lines ...string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	for _, l := range lines {
		if _, err := c.conn.Write([]byte(l + "\r\n")); err != nil {
			c.t.Fatalf("write %q: %v", l, err)
		}
	}
}

func (c *client) read() protocol.Message {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	m, err := protocol.ParseString(line)
	if err != nil {
		c.t.Fatalf("parse %q: %v", line, err)
	}
	return m
}

// expect reads until a message with command arrives and returns it with
// the messages skipped on the way.
func (c *client) expect(command string) (protocol.Message, []protocol.Message) {
	c.t.Helper()
	var skipped []protocol.Message
	for range 1000 {
		m := c.read()
		if m.Command == command {
			return m, skipped
		}
		skipped = append(skipped, m)
	}
	c.t.Fatalf("no %s in 1000 lines", command)
	return protocol.Message{}, nil
}

// register does NICK/USER and returns the MOTD lines.
func (c *client) register(nick string) []string {
	c.t.Helper()
	c.send("NICK "+nick, "USER "+nick+" 0 * :Test "+nick)
	c.expect(protocol.RPL_WELCOME)
	var motd []string
	for range 1000 {
		m := c.read()
		switch m.Command {
		case protocol.RPL_MOTD:
			motd = append(motd, m.Param(1))
		case protocol.RPL_ENDOFMOTD, protocol.ERR_NOMOTD:
			return motd
		}
	}
	c.t.Fatal("no end of MOTD")
	return nil
}

func x509Pool(certs ...*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}

// tlsDial handshakes with the TLS versions limited to [minV, maxV].
func tlsDial(addr string, roots *x509.CertPool, minV, maxV uint16) (*tls.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr,
		&tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: minV, MaxVersion: maxV})
}

func nopLogger() zerolog.Logger { return zerolog.Nop() }
