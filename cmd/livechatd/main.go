// Command livechatd is the livechat chat daemon.
//
//	livechatd [--config FILE] [--listen ADDR] [--tls-listen ADDR]
//	          [--ws-listen ADDR] [--wss-listen ADDR]
//	          [--tls-cert FILE] [--tls-key FILE] [--metrics-listen ADDR]
//	          [--data-dir DIR] [--log-level LEVEL]
//	livechatd gencert [--host NAME]... [--out DIR] [--days N] [--force]
//	livechatd accounts [--config FILE] [--data-dir DIR] list|delete NAME|passwd NAME
//	livechatd history [--config FILE] [--data-dir DIR] stats|export|delete|forget ...
//	livechatd backup [--config FILE] [--data-dir DIR] --out FILE|-
//	livechatd config check|print [daemon flags]
//	livechatd version
//
// With no flags it runs on built-in defaults: clients on 127.0.0.1:6667,
// metrics on 127.0.0.1:9667. --ws-listen adds the chat page and the
// WebSocket transport for browsers. gencert writes a self-signed TLS certificate
// and prints the settings that use it; accounts edits the account
// database and history reads and deletes history while the daemon is
// stopped.
//
// The files: main.go parses the command line, run.go starts and stops the
// daemon, reload.go applies SIGHUP, tls.go holds the live certificate,
// gencert.go, accountscli.go, historycli.go, backup.go, configcmd.go and
// version.go are the subcommands; sdnotify.go tells systemd how the daemon is.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/livechat/livechat/configs"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usageHead = `livechatd: the livechat chat daemon.

Usage:
  livechatd [flags]           run the daemon
  livechatd gencert [flags]   write a self-signed TLS certificate (livechatd gencert --help)
  livechatd accounts ...      list, delete or reset accounts while the daemon is stopped
                              (livechatd accounts --help)
  livechatd history ...       history stats, export, delete a room, forget an account,
                              while the daemon is stopped (livechatd history --help)
  livechatd backup --out FILE a consistent copy of data_dir as a tar file, also while
                              the daemon runs (livechatd backup --help)
  livechatd config check|print  validate the configuration, or print it with secrets
                              masked (livechatd config --help)
  livechatd version           the version, commit and Go release (also --version)

Flags (each also settable in the config file and as LIVECHAT_* env):
`

// run is main without os.Exit, so tests can call it. It returns the exit
// status: 0 after a clean shutdown, 1 when the daemon fails, 2 for bad
// usage or configuration.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "gencert":
			return gencert(args[1:], stdout, stderr)
		case "accounts":
			return accountsCommand(args[1:], stdin, stdout, stderr)
		case "history":
			return historyCommand(args[1:], stdout, stderr)
		case "version", "--version", "-version":
			return version(stdout)
		case "config":
			return configCommand(args[1:], stdout, stderr)
		case "backup":
			return backupCommand(args[1:], stdout, stderr)
		}
	}
	fs := pflag.NewFlagSet("livechatd", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	configs.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "livechatd: %v (see livechatd --help)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "livechatd: unexpected argument %q (the subcommands are gencert, accounts, history, backup, config and version; see --help)\n", fs.Arg(0))
		return 2
	}
	path := configs.ConfigPath(fs)
	load := func() (*configs.Config, error) { return configs.Load(path, fs) }
	cfg, err := load()
	if err != nil {
		fmt.Fprintln(stderr, "livechatd:", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	if err := serve(cfg, log, load); err != nil {
		log.Error().Err(err).Msg("livechatd stopped")
		return 1
	}
	return 0
}

// accountsCommand runs `livechatd accounts`: the common flags find the
// config and data_dir the daemon would use, the rest goes to runAccounts.
func accountsCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("livechatd accounts", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, accountsUsage+"\nFlags (to find data_dir as the daemon does):\n")
		fs.PrintDefaults()
	}
	configs.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "livechatd accounts: %v (see livechatd accounts --help)\n", err)
		return 2
	}
	path := configs.ConfigPath(fs)
	cfg, err := configs.Load(path, fs)
	if err != nil {
		fmt.Fprintln(stderr, "livechatd accounts:", err)
		return 2
	}
	if cfg.Accounts.Store != "file" {
		fmt.Fprintf(stderr, "livechatd accounts: accounts.store is %q, so no accounts are stored on disk\n", cfg.Accounts.Store)
		return 1
	}
	return runAccounts(fs.Args(), path, cfg.DataDir, cfg.Accounts.MinPasswordLength, stdin, stdout, stderr)
}

// newLogger writes human-readable lines on a terminal and JSON otherwise.
func newLogger(cfg *configs.Config, w io.Writer) zerolog.Logger {
	out := w
	console := cfg.Log.Format == "console"
	if cfg.Log.Format == "auto" {
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				console = true
			}
		}
	}
	if console {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	// The level is process-wide so that SIGHUP can change it for every
	// logger the daemon has derived (per connection, per room) at once.
	zerolog.SetGlobalLevel(parseLevel(cfg.Log.Level))
	return zerolog.New(out).With().Timestamp().Logger()
}

func parseLevel(s string) zerolog.Level {
	l, err := zerolog.ParseLevel(s)
	if err != nil {
		return zerolog.InfoLevel
	}
	return l
}
