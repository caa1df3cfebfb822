package main

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livechat/livechat/protocol"
)

func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		code, out, _ := runCmd(arg)
		if code != 0 || !strings.HasPrefix(out, "livechatd ") || !strings.Contains(out, runtime.Version()) || !strings.Contains(out, " commit ") {
			t.Errorf("livechatd %s: exit %d, %q", arg, code, out)
		}
	}
}

func TestConfigCheckAndPrint(t *testing.T) {
	isolateEnv(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("server_password: \"hunter2-hunter2\"\nlimits:\n  max_clients: 50\n"), 0o600)
	os.WriteFile(bad, []byte("limits:\n  max_clients: -1\n"), 0o600)

	if code, out, errOut := runCmd("config", "check", "--config", good); code != 0 || !strings.Contains(out, "configuration OK") {
		t.Errorf("check good: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := runCmd("config", "check", "--config", bad); code != 2 || !strings.Contains(errOut, "limits.max_clients") {
		t.Errorf("check bad: exit %d, %q", code, errOut)
	}
	// A flag is checked as the daemon would take it.
	if code, _, errOut := runCmd("config", "check", "--config", good, "--listen", "6667"); code != 2 || !strings.Contains(errOut, "listen.tcp") {
		t.Errorf("check bad flag: exit %d, %q", code, errOut)
	}
	// The certificate it names must load.
	tlsConf := filepath.Join(dir, "tls.yaml")
	os.WriteFile(tlsConf, []byte("listen:\n  tls: 127.0.0.1:0\n  tls_cert: "+filepath.Join(dir, "none.crt")+"\n  tls_key: "+filepath.Join(dir, "none.key")+"\n"), 0o600)
	if code, _, errOut := runCmd("config", "check", "--config", tlsConf); code != 2 || !strings.Contains(errOut, "listen.tls_cert") {
		t.Errorf("check missing cert: exit %d, %q", code, errOut)
	}
	certPath, keyPath, _ := newCert(t, dir)
	os.WriteFile(tlsConf, []byte("listen:\n  tls: 127.0.0.1:0\n  tls_cert: "+certPath+"\n  tls_key: "+keyPath+"\n"), 0o600)
	if code, out, errOut := runCmd("config", "check", "--config", tlsConf); code != 0 || !strings.Contains(out, "TLS certificate") {
		t.Errorf("check with cert: exit %d, %q %q", code, out, errOut)
	}

	t.Setenv("LIVECHAT_LIMITS_MAX_ROOMS", "77")
	code, out, errOut := runCmd("config", "print", "--config", good, "--data-dir", "/srv/chat")
	if code != 0 {
		t.Fatalf("print: exit %d, %q", code, errOut)
	}
	for _, want := range []string{"max_clients: 50  # default", "max_rooms: 77  # default", `data_dir: "/srv/chat"`, `server_password: "********"`} {
		if !strings.Contains(out, want) {
			t.Errorf("print lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("print shows the server password:\n%s", out)
	}
}

// The daemon as systemd runs it, with every secret in play: the server
// password, an operator's, users' passwords by LOGIN, REGISTER and SASL,
// wrong ones too, and the cloak secret; at trace level, through a reload
// that changes the server password and a key that needs a restart. No
// secret may appear in the log. Meanwhile systemd's notify socket hears
// READY=1, WATCHDOG=1, RELOADING=1 and STOPPING=1.
func TestProcessSecretsAndNotify(t *testing.T) {
	const (
		serverPW  = "srv-Pa55word-41e9"
		serverPW2 = "srv-Pa55word-2-77b1"
		wrongSrv  = "wrong-srv-Pa55-0c3d"
		userPW    = "user-Pa55word-9f2a"
		wrongPW   = "wrong-Pa55word-5d7c"
		operPW    = "oper-Pa55word-b6e0"
		cloakKey  = "cloak-secret-0123456789-a1b2"
	)
	code, hash, errOut := runCmdStdin(operPW+"\n", "accounts", "hash")
	if code != 0 {
		t.Fatalf("accounts hash: %s", errOut)
	}
	hash = strings.TrimSpace(hash)
	secrets := []string{serverPW, serverPW2, wrongSrv, userPW, wrongPW, operPW, cloakKey, hash,
		base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + userPW))}

	dir := shortTempDir(t)
	conf := filepath.Join(dir, "livechatd.yaml")
	yaml := func(serverPassword string, port int) string {
		return fmt.Sprintf(`data_dir: %q
server_password: %q
listen:
  tcp: 127.0.0.1:%d
  websocket: ""
metrics:
  listen: ""
log:
  level: trace
  format: json
accounts:
  hash_memory_kib: 64
  hash_iterations: 1
cloak:
  secret: %q
operators: [%q]
`, dir, serverPassword, port, cloakKey, "root:"+hash)
	}
	os.WriteFile(conf, []byte(yaml(serverPW, 0)), 0o600)

	notify := listenNotify(t, filepath.Join(dir, "notify"))
	cmd := exec.Command(os.Args[0], "--config", conf)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LIVECHAT_") && !strings.HasPrefix(kv, "LIVECHATD_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "WATCHDOG_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "LIVECHATD_TEST_RUN_MAIN=1", "NOTIFY_SOCKET="+notify.path, "WATCHDOG_USEC=100000")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := newProcessLog(t)
	go logs.read(stderr)
	exited := make(chan error, 1)
	go func() {
		<-logs.eof
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		case <-time.After(waitFor):
			cmd.Process.Kill() // only this test's own child
			<-exited
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs)
		}
	})
	addr := logs.wait("accepting clients", map[string]string{"transport": "tcp"})["addr"].(string)
	notify.wait(t, "READY=1")

	wrong := dialTCP(t, addr)
	wrong.send("PASS "+wrongSrv, "NICK w", "USER w 0 * :w")
	wrong.expect(protocol.ERR_PASSWDMISMATCH)

	a := dialTCP(t, addr)
	a.send("PASS " + serverPW)
	a.register("alice")
	a.send("REGISTER alice " + userPW)
	a.expect("REGISTER")
	a.send("OPER root " + wrongPW)
	a.expect(protocol.ERR_PASSWDMISMATCH)
	a.send("OPER root " + operPW)
	a.expect(protocol.RPL_YOUREOPER)

	b := dialTCP(t, addr)
	b.send("PASS " + serverPW)
	b.register("bob")
	b.send("LOGIN alice " + wrongPW)
	b.expect("FAIL")
	b.send("LOGIN alice " + userPW)
	b.expect(protocol.RPL_LOGGEDIN)

	s := dialTCP(t, addr)
	s.send("CAP LS 302", "PASS "+serverPW, "NICK sasl", "USER s 0 * :s", "CAP REQ :sasl", "AUTHENTICATE PLAIN")
	s.expect("AUTHENTICATE")
	s.send("AUTHENTICATE " + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00"+userPW)))
	s.expect(protocol.RPL_SASLSUCCESS)
	s.send("CAP END")
	s.expect(protocol.RPL_WELCOME)

	notify.wait(t, "WATCHDOG=1")
	// A reload changes the server password (live) and the listener (kept
	// until a restart, and logged with both values).
	port := addr[strings.LastIndex(addr, ":")+1:]
	var p int
	fmt.Sscan(port, &p)
	os.WriteFile(conf, []byte(yaml(serverPW2, p+1)), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	logs.wait("configuration reloaded", nil)
	notify.wait(t, "RELOADING=1")
	notify.wait(t, "READY=1")
	c := dialTCP(t, addr)
	c.send("PASS " + serverPW2)
	c.register("carol")

	cmd.Process.Signal(syscall.SIGTERM)
	logs.wait("stopped", nil)
	notify.wait(t, "STOPPING=1")
	if err := <-exited; err != nil {
		t.Fatalf("daemon exited with %v", err)
	}
	exited <- nil // for the cleanup

	all := logs.String()
	if !strings.Contains(all, `"account":"alice"`) || logs.lineWith("this key cannot change without a restart") == "" {
		t.Fatalf("the log lacks the lines this test is about:\n%s", all)
	}
	for _, secret := range secrets {
		if strings.Contains(all, secret) {
			t.Errorf("the log contains the secret %q:\n%s", secret, all)
		}
	}
	t.Logf("%d log lines at trace level, none with any of %d secrets", strings.Count(all, "\n"), len(secrets))
}

func (p *processLog) lineWith(part string) string {
	for _, line := range strings.Split(p.String(), "\n") {
		if strings.Contains(line, part) {
			return line
		}
	}
	return ""
}

// notifySocket stands in for systemd's end of $NOTIFY_SOCKET.
type notifySocket struct {
	path    string
	mu      sync.Mutex
	got     []string
	changed chan struct{}
	next    int // test goroutine only
}

func listenNotify(t *testing.T, path string) *notifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &notifySocket{path: path, changed: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.got = append(n.got, strings.Split(string(buf[:k]), "\n")...)
			n.mu.Unlock()
			select {
			case n.changed <- struct{}{}:
			default:
			}
		}
	}()
	return n
}

// wait returns once state has arrived after the one wait last returned.
func (n *notifySocket) wait(t *testing.T, state string) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		n.mu.Lock()
		got := n.got
		n.mu.Unlock()
		if i := slices.Index(got[n.next:], state); i >= 0 {
			n.next += i + 1
			return
		}
		select {
		case <-n.changed:
		case <-deadline:
			t.Fatalf("no %s from the daemon; it sent %q", state, got)
		}
	}
}

func runCmdStdin(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errOut strings.Builder
	code = run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}
