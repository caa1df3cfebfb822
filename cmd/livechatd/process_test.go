package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestProcess runs livechatd as its own process the way `go run
// ./cmd/livechatd` does: in an empty directory, on the built-in defaults
// except the two ports. It finds the bound addresses in the JSON log, has
// a client register, checks /readyz, reloads with SIGHUP and stops with
// SIGTERM, expecting a clean exit.
func TestProcess(t *testing.T) {
	cmd := exec.Command(os.Args[0], "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0")
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LIVECHAT_") && !strings.HasPrefix(kv, "LIVECHATD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "LIVECHATD_TEST_RUN_MAIN=1") // see TestMain
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed once Wait has returned waitErr
	var waitErr error
	logs := newProcessLog(t)
	go logs.read(stderr)
	go func() {
		defer close(exited)
		<-logs.eof // Wait must not run before the pipe is read to the end
		waitErr = cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill() // only this test's own child
			<-exited
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs)
		}
	})

	metricsAddr := logs.wait("serving /metrics, /healthz, /readyz", nil)["addr"].(string)
	tcpAddr := logs.wait("accepting clients", map[string]string{"transport": "tcp"})["addr"].(string)
	pageAddr := logs.wait("accepting clients", map[string]string{"transport": "websocket"})["addr"].(string)
	logs.wait("chat in a browser: open http://"+pageAddr+"/", nil)
	logs.wait("chat in a terminal: nc "+strings.Replace(tcpAddr, ":", " ", 1)+"  (or point an IRC client at "+tcpAddr+")", nil)
	page, err := (&http.Client{Timeout: waitFor}).Get("http://" + pageAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	if page.StatusCode != http.StatusOK || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Errorf("the chat page: %d %s", page.StatusCode, page.Header.Get("Content-Type"))
	}

	c := dialTCP(t, tcpAddr)
	c.register("proc")
	resp, err := (&http.Client{Timeout: waitFor}).Get("http://" + metricsAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d", resp.StatusCode)
	}

	cmd.Process.Signal(syscall.SIGHUP)
	logs.wait("configuration reloaded", nil)
	c.send("PING after-reload")
	c.expect("PONG")

	cmd.Process.Signal(syscall.SIGTERM)
	if m, _ := c.expect("ERROR"); m.Param(0) != "Server shutting down" {
		t.Errorf("client got %q", m.String())
	}
	logs.wait("stopped", nil)
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("daemon exited with %v", waitErr)
		}
	case <-time.After(waitFor):
		t.Fatal("daemon did not exit after SIGTERM")
	}
}

// processLog collects a daemon's JSON log lines. The reader never
// blocks on the test, so the daemon can always write and exit.
type processLog struct {
	t       *testing.T
	mu      sync.Mutex
	lines   []map[string]any
	changed chan struct{} // a line arrived or the log ended (capacity 1)
	eof     chan struct{}
	next    int // the first line wait has not looked at; test goroutine only
}

func newProcessLog(t *testing.T) *processLog {
	return &processLog{t: t, changed: make(chan struct{}, 1), eof: make(chan struct{})}
}

func (p *processLog) read(r io.Reader) {
	defer close(p.eof)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			m = map[string]any{"message": "(not JSON)"}
		}
		m["_raw"] = sc.Text()
		p.mu.Lock()
		p.lines = append(p.lines, m)
		p.mu.Unlock()
		select {
		case p.changed <- struct{}{}:
		default:
		}
	}
}

func (p *processLog) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, m := range p.lines {
		b.WriteString(m["_raw"].(string) + "\n")
	}
	return b.String()
}

// wait returns the next line with message msg and the given string fields,
// failing the test if none comes within waitFor.
func (p *processLog) wait(msg string, fields map[string]string) map[string]any {
	p.t.Helper()
	deadline := time.After(waitFor)
	for {
		p.mu.Lock()
		lines := p.lines[p.next:]
		p.mu.Unlock()
		for _, m := range lines {
			p.next++
			match := m["message"] == msg
			for k, v := range fields {
				match = match && m[k] == v
			}
			if match {
				return m
			}
		}
		select {
		case <-p.changed:
		case <-p.eof:
			select {
			case <-p.changed: // the last lines; look once more
			default:
				p.t.Fatalf("daemon log ended before %q", msg)
			}
		case <-deadline:
			p.t.Fatalf("no %q log line within %s", msg, waitFor)
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	isolateEnv(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--log-level", "loud"}, 2, "log.level"},
		{[]string{"--listen", "6667"}, 2, "listen.tcp"},
		{[]string{"--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"serve"}, 2, `unexpected argument "serve"`},
		{[]string{"--config", "/nonexistent/livechatd.yaml"}, 2, "/nonexistent/livechatd.yaml"},
		{[]string{"--help"}, 0, "gencert"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := runCmd(tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.want)
			}
			if tc.code == 2 && strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
				t.Errorf("error is not one line: %q", errOut)
			}
		})
	}
}
