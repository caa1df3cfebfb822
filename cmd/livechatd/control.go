package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// The control socket lets `livechatd backup` reach the running daemon,
// which alone can open its stores. It lives in data_dir, so only who may
// read the data may ask for a copy of it: the daemon's user and root. One
// request per connection: the line "backup", answered with the archive.

const controlSocketName = "livechatd.sock"

// errNoDaemon: nothing listens on the control socket.
var errNoDaemon = errors.New("no daemon answers on the control socket")

type control struct {
	l       net.Listener
	log     zerolog.Logger
	dataDir string
	stores  map[string]snapshotter
	busy    sync.Mutex // one backup at a time
	wg      sync.WaitGroup
}

// listenControl serves backups of the stores among opened that keep
// files. It must run after the stores are open: holding their locks, this
// daemon owns data_dir, so a socket file left by a killed one is stale.
// Without a socket (a path too long for one, say) the daemon runs on and
// says so; backups then need the daemon stopped.
func listenControl(dataDir string, log zerolog.Logger, opened map[string]any) *control {
	stores := map[string]snapshotter{}
	for name, st := range opened {
		if s, ok := st.(snapshotter); ok {
			stores[name] = s
		}
	}
	if len(stores) == 0 {
		return nil // everything in memory: nothing to back up
	}
	path := filepath.Join(dataDir, controlSocketName)
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err == nil {
		err = os.Chmod(path, 0o600)
	}
	if err != nil {
		if l != nil {
			l.Close()
		}
		log.Warn().Err(err).Str("path", path).Msg("no control socket: livechatd backup works only while the daemon is stopped")
		return nil
	}
	c := &control{l: l, log: log, dataDir: dataDir, stores: stores}
	c.wg.Add(1)
	go c.serve()
	log.Info().Str("addr", path).Str("transport", "unix").Msg("serving backups (livechatd backup) on the control socket")
	return c
}

func (c *control) serve() {
	defer c.wg.Done()
	for {
		conn, err := c.l.Accept()
		if err != nil {
			return // closed
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer conn.Close()
			c.handle(conn)
		}()
	}
}

func (c *control) handle(conn net.Conn) {
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(conn, 64)).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "backup" {
		fmt.Fprintf(conn, "ERROR unknown request %q\n", strings.TrimSpace(line))
		return
	}
	conn.SetReadDeadline(time.Time{})
	if !c.busy.TryLock() {
		fmt.Fprintln(conn, "ERROR a backup is already running")
		return
	}
	defer c.busy.Unlock()
	start := time.Now()
	// A client that stops reading must not hold the stores' read
	// transactions open for ever.
	m, err := writeBackup(deadlineWriter{conn}, c.dataDir, c.stores, true)
	if err != nil {
		// The archive stops short of its manifest, which the client sees.
		c.log.Error().Err(err).Msg("backup failed")
		return
	}
	var total int64
	for _, f := range m.Files {
		total += f.Bytes
	}
	c.log.Info().Int64("bytes", total).Int("files", len(m.Files)).Dur("took", time.Since(start)).Msg("backup taken")
}

// close stops accepting and waits for backups under way (the stores must
// not close under them). Safe on a nil control.
func (c *control) close() {
	if c == nil {
		return
	}
	c.l.Close() // removes the socket file too
	c.wg.Wait()
}

// requestBackup asks the daemon on sock for an archive and copies it to
// w. It returns errNoDaemon when nobody listens there.
func requestBackup(sock string, w io.Writer) error {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return errNoDaemon
		}
		return fmt.Errorf("control socket %s: %w", sock, err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "backup\n"); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	// An archive starts with a file name; a refusal with "ERROR ".
	if head, err := br.Peek(6); err == nil && string(head) == "ERROR " {
		msg, _ := br.ReadString('\n')
		return fmt.Errorf("the daemon refused: %s", strings.TrimSpace(strings.TrimPrefix(msg, "ERROR ")))
	}
	_, err = io.Copy(w, br)
	return err
}

// deadlineWriter gives each write a minute.
type deadlineWriter struct{ conn net.Conn }

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.conn.SetWriteDeadline(time.Now().Add(time.Minute))
	return d.conn.Write(p)
}
