package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
)

// shortTempDir is a data_dir whose socket path fits in sun_path (108
// bytes), which t.TempDir's long names may not.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lcb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// durableYAML runs on file stores in dataDir with cheap hashes and no
// registration quotas, so a test can register quickly.
func durableYAML(dataDir string) string {
	return fmt.Sprintf(`data_dir: %q
listen:
  tcp: 127.0.0.1:0
  websocket: ""
metrics:
  listen: 127.0.0.1:0
accounts:
  hash_memory_kib: 64
  hash_iterations: 1
  register_per_ip: 0
  register_per_connection: 0
  throttle_free: 0
limits:
  flood_burst: 100000
  flood_rate: 100000
  max_conns_per_ip: 1000
  conn_rate_per_ip: 100000
`, dataDir)
}

// startDurable starts a daemon from yaml and returns it with its log.
func startDurable(t *testing.T, yaml string) (*instance, *logBuffer) {
	t.Helper()
	isolateEnv(t)
	path := filepath.Join(t.TempDir(), "livechatd.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	d, err := start(cfg, zerolog.New(logs), func() (*configs.Config, error) { return configs.Load(path, nil) })
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stopDaemon(t, d)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs)
		}
	})
	return d, logs
}

func stopDaemon(t *testing.T, d *instance) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := d.stop(ctx); err != nil {
		t.Error(err)
	}
}

// registerAccount registers name on a fresh connection, netcat style.
func registerAccount(t *testing.T, addr, name, password string) error {
	c := dialTCP(t, addr)
	defer c.conn.Close()
	c.send("REGISTER " + name + " " + password)
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	for range 1000 {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return err
		}
		m, err := protocol.ParseString(line)
		if err != nil {
			return err
		}
		switch m.Command {
		case "REGISTER":
			return nil
		case "FAIL":
			return fmt.Errorf("%s: %s", name, line)
		}
	}
	return fmt.Errorf("%s: no answer", name)
}

// A backup taken while clients register accounts and talk restores, in a
// new data_dir, to a daemon that has every account whose registration was
// acknowledged before the backup began, and lets them log in.
func TestBackupUnderLoad(t *testing.T) {
	dir := shortTempDir(t)
	d, logs := startDurable(t, durableYAML(dir))

	const password = "backup-test-password"
	var (
		mu    sync.Mutex
		acked []string // registrations the clients heard succeed, in order
		stop  atomic.Bool
		wg    sync.WaitGroup
		errs  = make(chan error, 8)
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000 && !stop.Load(); i++ {
				name := fmt.Sprintf("u%d-%d", w, i)
				if err := registerAccount(t, d.addrs.TCP, name, password); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acked = append(acked, name)
				mu.Unlock()
			}
		}()
	}
	// Chat too, so history.db is written during the backup.
	talker := dialTCP(t, d.addrs.TCP)
	talker.register("talker")
	talker.send("JOIN #load")
	talker.expect(protocol.RPL_ENDOFNAMES)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 100000 && !stop.Load(); i++ {
			talker.conn.SetWriteDeadline(time.Now().Add(waitFor))
			if _, err := fmt.Fprintf(talker.conn, "PRIVMSG #load :line %d\r\n", i); err != nil {
				errs <- err
				return
			}
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	deadline := time.Now().Add(waitFor)
	for count() < 20 && time.Now().Before(deadline) {
		select {
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(10 * time.Millisecond):
		}
	}

	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	archive := filepath.Join(t.TempDir(), "backup.tar")
	var out, errOut bytes.Buffer
	if code := run([]string{"backup", "--data-dir", dir, "--out", archive}, nil, &out, &errOut); code != 0 {
		t.Fatalf("backup exited %d: %s", code, errOut.String())
	}
	during := count() - len(before)
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	t.Logf("%s; %d accounts acknowledged before it, %d during it, %d in all", strings.TrimSpace(errOut.String()), len(before), during, count())
	if !strings.Contains(errOut.String(), "from the running daemon") {
		t.Errorf("backup did not come from the daemon: %s", errOut.String())
	}
	if logs.lineWith("backup taken") == "" {
		t.Error("the daemon did not log the backup")
	}
	stopDaemon(t, d)

	restored := shortTempDir(t)
	names := untar(t, archive, restored)
	for _, want := range []string{"accounts.db", "rooms.db", "history.db", "cloak.key", manifestName} {
		if !strings.Contains(names, want) {
			t.Errorf("archive has %s, want %s in it", names, want)
		}
	}

	// Offline: every acknowledged account is in the restored file.
	out.Reset()
	errOut.Reset()
	if code := run([]string{"accounts", "--data-dir", restored, "list"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("accounts list exited %d: %s", code, errOut.String())
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			listed[strings.ToLower(f[0])] = true
		}
	}
	var missing []string
	for _, name := range before {
		if !listed[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged accounts missing from the backup: %v", len(missing), missing)
	}

	// Online: the restored daemon lets them log in, and a backup of a
	// stopped daemon's files works too.
	d2, _ := startDurable(t, durableYAML(restored))
	for _, name := range []string{before[0], before[len(before)/2], before[len(before)-1]} {
		c := dialTCP(t, d2.addrs.TCP)
		c.register("x" + name)
		c.send("LOGIN " + name + " " + password)
		c.expect(protocol.RPL_LOGGEDIN)
	}
	stopDaemon(t, d2)
	// The history snapshot is a store the offline tools read.
	out.Reset()
	if code := run([]string{"history", "--data-dir", restored, "stats"}, nil, &out, &errOut); code != 0 || !strings.Contains(out.String(), "#load") {
		t.Errorf("history stats on the restored data_dir: exit %d, %s %s", code, out.String(), errOut.String())
	}
	if code := run([]string{"backup", "--data-dir", restored, "--out", filepath.Join(t.TempDir(), "b2.tar")}, nil, &out, &errOut); code != 0 {
		t.Fatalf("offline backup exited %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "no daemon running") {
		t.Errorf("offline backup: %s", errOut.String())
	}
}

// untar unpacks archive into dir and returns the names it held.
func untar(t *testing.T, archive, dir string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(hdr.Name)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return strings.Join(names, " ")
}

// A truncated archive, or one whose file does not match its manifest, is
// not taken for a backup.
func TestVerifyBackupRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cloak.key"), []byte("0123456789abcdef0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := writeBackup(&buf, dir, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyBackup(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("intact archive: %v", err)
	}
	if _, err := verifyBackup(bytes.NewReader(buf.Bytes()[:1024])); err == nil {
		t.Error("truncated archive verified")
	}
	damaged := bytes.Replace(buf.Bytes(), []byte("0123456789abcdef"), []byte("XXXXXXXXXXXXXXXX"), 1)
	if _, err := verifyBackup(bytes.NewReader(damaged)); err == nil {
		t.Error("damaged archive verified")
	}
}
