// Command livechatd is the livechat chat daemon.
//
//	livechatd [--config FILE] [--listen ADDR] [--tls-listen ADDR]
//	          [--metrics-listen ADDR] [--data-dir DIR] [--log-level LEVEL]
//
// With no flags it runs on built-in defaults: clients on 127.0.0.1:6667,
// metrics on 127.0.0.1:9667.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := pflag.NewFlagSet("livechatd", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	configs.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	path := configs.ConfigPath(fs)
	cfg, err := configs.Load(path, fs)
	if err != nil {
		fmt.Fprintln(stderr, "livechatd:", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	if err := serve(cfg, log, func() (*configs.Config, error) { return configs.Load(path, fs) }); err != nil {
		log.Error().Err(err).Msg("livechatd stopped")
		return 1
	}
	return 0
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

// serve runs the daemon until SIGINT or SIGTERM; SIGHUP reloads.
func serve(cfg *configs.Config, log zerolog.Logger, reload func() (*configs.Config, error)) error {
	reg := prometheus.NewRegistry()
	srv := daemon.New(cfg, daemon.Options{Logger: log, Metrics: reg})
	certs := &certStore{}

	var wg sync.WaitGroup
	var listeners []net.Listener
	fail := func(err error) error {
		for _, l := range listeners {
			l.Close()
		}
		return err
	}
	start := func(l net.Listener, transport string) {
		listeners = append(listeners, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l, transport); err != nil {
				log.Error().Err(err).Str("transport", transport).Msg("listener failed")
			}
		}()
		log.Info().Str("addr", l.Addr().String()).Str("transport", transport).Msg("accepting clients")
	}
	if cfg.Listen.TCP != "" {
		l, err := net.Listen("tcp", cfg.Listen.TCP)
		if err != nil {
			return fail(fmt.Errorf("listen.tcp: %w", err))
		}
		start(l, "tcp")
	}
	if cfg.Listen.TLS != "" {
		if err := certs.load(cfg.Listen.TLSCert, cfg.Listen.TLSKey); err != nil {
			return fail(fmt.Errorf("listen.tls_cert/listen.tls_key: %w", err))
		}
		l, err := tls.Listen("tcp", cfg.Listen.TLS, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get})
		if err != nil {
			return fail(fmt.Errorf("listen.tls: %w", err))
		}
		start(l, "tls")
	}
	if cfg.Metrics.Listen != "" {
		l, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fail(fmt.Errorf("metrics.listen: %w", err))
		}
		listeners = append(listeners, l)
		go srv.ServeOps(l, srv.OpsHandler(cfg.Metrics.PProf))
		log.Info().Str("addr", l.Addr().String()).Msg("serving /metrics, /healthz, /readyz")
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			cfg = reloadConfig(srv, cfg, reload, certs, log)
			continue
		}
		log.Info().Str("signal", sig.String()).Dur("timeout", cfg.ShutdownTimeout).Msg("shutting down")
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		err := srv.Shutdown(ctx)
		cancel()
		for _, l := range listeners {
			l.Close()
		}
		wg.Wait()
		if err != nil {
			log.Warn().Err(err).Msg("some clients were cut off at the shutdown deadline")
		}
		return nil
	}
	return nil
}

// reloadConfig applies a re-read config file. Keys that need a restart are
// reported and kept; an invalid file keeps the old config entirely.
func reloadConfig(srv *daemon.Server, old *configs.Config, reload func() (*configs.Config, error), certs *certStore, log zerolog.Logger) *configs.Config {
	cfg, err := reload()
	if err != nil {
		log.Error().Err(err).Msg("reload failed; the previous configuration stays in force")
		return old
	}
	for _, key := range cfg.Unreloadable(old) {
		log.Warn().Str("key", key).Msg("this key cannot change without a restart; keeping the running value")
	}
	// Keep what cannot change live, apply the rest.
	cfg.Listen, cfg.Metrics.Listen, cfg.DataDir, cfg.Accounts.Store = old.Listen, old.Metrics.Listen, old.DataDir, old.Accounts.Store
	if cfg.Listen.TLS != "" {
		if err := certs.load(cfg.Listen.TLSCert, cfg.Listen.TLSKey); err != nil {
			log.Error().Err(err).Msg("TLS certificate reload failed; keeping the old certificate")
		}
	}
	zerolog.SetGlobalLevel(parseLevel(cfg.Log.Level))
	srv.SetConfig(cfg)
	log.Info().Msg("configuration reloaded")
	return cfg
}

// certStore holds the TLS certificate so SIGHUP can replace it without
// touching connected clients.
type certStore struct {
	mu   sync.RWMutex
	cert *tls.Certificate
}

func (c *certStore) load(certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.cert = &cert
	c.mu.Unlock()
	return nil
}

func (c *certStore) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cert, nil
}
