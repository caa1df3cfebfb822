package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/livechat/livechat/configs"
)

const configUsage = `Usage:
  livechatd config check [flags]   load and validate the configuration the daemon would
                                   run with (file, LIVECHAT_* env, flags), and load the
                                   TLS certificate it names, without starting anything
  livechatd config print [flags]   print that configuration as YAML, secrets masked;
                                   values that differ from the defaults say so

Exit status: 0 valid, 2 invalid (the error names the key).
`

// configCommand runs `livechatd config check|print`. It takes the
// daemon's own flags, so `livechatd config check --listen :6667` checks
// exactly what `livechatd --listen :6667` would run.
func configCommand(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("livechatd config", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, configUsage+"\nFlags (as the daemon takes them):\n")
		fs.PrintDefaults()
	}
	configs.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "livechatd config: %v (see livechatd config --help)\n", err)
		return 2
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "check" && fs.Arg(0) != "print") {
		fmt.Fprint(stderr, configUsage)
		return 2
	}
	path := configs.ConfigPath(fs)
	cfg, err := configs.Load(path, fs)
	if err != nil {
		// Load's errors start "config: ", which this command's name says.
		fmt.Fprintf(stderr, "livechatd config %s: %s\n", fs.Arg(0), strings.TrimPrefix(err.Error(), "config: "))
		return 2
	}
	if fs.Arg(0) == "print" {
		if path != "" {
			fmt.Fprintf(stdout, "# livechatd configuration from %s, LIVECHAT_* environment and flags\n", path)
		} else {
			fmt.Fprintln(stdout, "# livechatd configuration from built-in defaults, LIVECHAT_* environment and flags")
		}
		if err := cfg.WriteYAML(stdout); err != nil {
			fmt.Fprintln(stderr, "livechatd config:", err)
			return 1
		}
		return 0
	}
	if cfg.Listen.TLS != "" || cfg.Listen.WebSocketTLS != "" {
		// The same checks the daemon makes at start and on SIGHUP.
		leaf, err := newCertStore(prometheus.NewRegistry()).load(cfg.Listen.TLSCert, cfg.Listen.TLSKey)
		if err != nil {
			fmt.Fprintln(stderr, "livechatd config: listen.tls_cert:", err)
			return 2
		}
		fmt.Fprintf(stdout, "TLS certificate %s: valid for %v until %s\n", cfg.Listen.TLSCert, certNames(leaf), leaf.NotAfter.UTC().Format("2006-01-02 15:04 MST"))
	}
	if path == "" {
		path = "built-in defaults"
	}
	fmt.Fprintf(stdout, "configuration OK (%s)\n", path)
	return 0
}
