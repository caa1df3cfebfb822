package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// certStore holds the TLS listener's certificate. The listener asks it for
// the certificate on every handshake, so SIGHUP can swap in a renewed one
// while connected clients keep the session they already negotiated.
type certStore struct {
	expiry prometheus.Gauge

	mu   sync.RWMutex
	cert *tls.Certificate
}

func newCertStore(reg prometheus.Registerer) *certStore {
	c := &certStore{expiry: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "livechat_tls_certificate_expiry_timestamp_seconds",
		Help: "When the TLS certificate being served expires (Unix time); alert well before it.",
	})}
	reg.MustRegister(c.expiry)
	return c
}

// load reads and checks a certificate and key pair and, if they are
// usable, serves them from the next handshake on. On error the certificate
// in use stays.
func (c *certStore) load(certFile, keyFile string) (*x509.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("listen.tls_cert and listen.tls_key must both be set")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	leaf := cert.Leaf // filled in by LoadX509KeyPair since Go 1.23
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", certFile, err)
		}
	}
	// An expired certificate would fail every handshake; refusing it here
	// gives one clear error instead of a stream of client complaints.
	now := time.Now()
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("%s: certificate expired at %s", certFile, leaf.NotAfter.Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("%s: certificate is not valid until %s", certFile, leaf.NotBefore.Format(time.RFC3339))
	}
	c.mu.Lock()
	c.cert = &cert
	c.mu.Unlock()
	c.expiry.Set(float64(leaf.NotAfter.Unix()))
	return leaf, nil
}

func (c *certStore) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cert, nil
}

// tlsConfig is the listener's configuration: TLS 1.2 or newer, Go's
// default cipher suites, the certificate from the store.
func (c *certStore) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get}
}

// ircTLSConfig is tlsConfig for the IRC TLS listener: it also asks for a
// client certificate, for SASL EXTERNAL and CERTFP, without requiring or
// verifying one (people use self-signed ones; the fingerprint is what
// counts). The WebSocket listener does not ask: browsers would show every
// visitor of the web page a certificate picker.
func (c *certStore) ircTLSConfig() *tls.Config {
	cfg := c.tlsConfig()
	cfg.ClientAuth = tls.RequestClientCert
	return cfg
}

// certNames lists what a certificate is valid for, for logs.
func certNames(leaf *x509.Certificate) []string {
	names := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = append(names, leaf.Subject.CommonName)
	}
	return names
}

// logCert records which certificate is being served and warns when it is
// close to expiring.
func logCert(log zerolog.Logger, leaf *x509.Certificate, file, msg string) {
	ev := log.Info()
	if time.Until(leaf.NotAfter) < 30*24*time.Hour {
		ev = log.Warn()
		msg += "; it expires within 30 days"
	}
	ev.Str("file", file).Strs("names", certNames(leaf)).Time("not_after", leaf.NotAfter).Msg(msg)
}
