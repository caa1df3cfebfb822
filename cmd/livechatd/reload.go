package main

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Reload outcomes, the values of livechat_config_reloads_total's result
// label.
const (
	reloadOK      = "ok"
	reloadInvalid = "invalid"   // the file did not load; nothing changed
	reloadTLS     = "tls_error" // the config applied, the old certificate stayed
)

func newReloadMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livechat_config_reloads_total",
		Help: "SIGHUP reloads by result: ok, invalid (config rejected, nothing changed), tls_error (config applied, old certificate kept).",
	}, []string{"result"})
	for _, r := range []string{reloadOK, reloadInvalid, reloadTLS} {
		v.WithLabelValues(r) // exported at 0 so alerts see the series
	}
	reg.MustRegister(v)
	return v
}

// reload re-reads the configuration (file, environment, the original
// flags) and applies what can change live: MOTD, limits, log level, the
// TLS certificate files, the WebSocket origins and trusted proxies. Keys
// that need a restart are reported and keep their running values. An
// invalid file changes nothing. The error, also logged, is for tests.
func (d *instance) reload() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.cfg
	cfg, err := d.load()
	if err != nil {
		d.reloads.WithLabelValues(reloadInvalid).Inc()
		d.log.Error().Err(err).Msg("reload failed; the previous configuration stays in force")
		return err
	}
	for _, key := range cfg.Unreloadable(old) {
		d.log.Warn().Str("key", key).Str("running", old.Shown(key)).Str("configured", cfg.Shown(key)).
			Msg("this key cannot change without a restart; keeping the running value")
	}
	cfg.KeepRestartOnly(old)

	result := reloadOK
	if d.certs != nil {
		if err = d.reloadCert(cfg.Listen.TLSCert, cfg.Listen.TLSKey); err != nil {
			result = reloadTLS
		}
	}
	if d.certs == nil || err != nil {
		// No TLS listener to serve them, or they did not load: the config
		// keeps naming the files actually in use.
		cfg.Listen.TLSCert, cfg.Listen.TLSKey = old.Listen.TLSCert, old.Listen.TLSKey
	}
	zerolog.SetGlobalLevel(parseLevel(cfg.Log.Level))
	proxies, _ := cfg.WebSocket.TrustedProxyPrefixes() // validated by load
	for _, l := range d.webs {
		l.SetPolicy(cfg.WebSocket.AllowedOrigins, cfg.WebSocket.Hostnames, proxies)
	}
	d.srv.SetConfig(cfg)
	d.cfg = cfg
	d.reloads.WithLabelValues(result).Inc()
	d.log.Info().Strs("changed", cfg.Changed(old)).Msg("configuration reloaded")
	return err
}

// reloadCert re-reads the certificate files, which may have been replaced
// in place (renewal) or renamed in the config.
func (d *instance) reloadCert(certFile, keyFile string) error {
	leaf, err := d.certs.load(certFile, keyFile)
	if err != nil {
		d.log.Error().Err(err).Str("key", "listen.tls_cert").Str("cert", certFile).Str("tls_key", keyFile).
			Msg("TLS certificate reload failed; keeping the old certificate")
		return fmt.Errorf("listen.tls_cert: %w", err)
	}
	logCert(d.log, leaf, certFile, "TLS certificate reloaded")
	return nil
}
