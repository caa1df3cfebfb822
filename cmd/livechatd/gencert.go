package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/livechat/livechat/configs"
)

// The files gencert writes, inside --out.
const (
	certFileName = "tls.crt"
	keyFileName  = "tls.key"
)

// certRequest is what gencert was asked for, after validation.
type certRequest struct {
	dnsNames []string
	ips      []net.IP
	validFor time.Duration
}

const gencertUsage = `livechatd gencert: write a self-signed TLS certificate for the TLS listener.

It writes an ECDSA P-256 certificate (tls.crt) and its private key
(tls.key, mode 0600) into DIR, then prints the config lines and flags that
use them. A self-signed certificate suits testing and private servers;
clients must be told to trust it (its SHA-256 fingerprint is printed).

Usage:
  livechatd gencert [--host NAME]... [--out DIR] [--days N] [--force]

Flags:
`

// gencert is the gencert subcommand; it returns the exit status.
func gencert(args []string, stdout, stderr io.Writer) int {
	flags := pflag.NewFlagSet("livechatd gencert", pflag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, gencertUsage)
		flags.PrintDefaults()
	}
	hosts := flags.StringSlice("host", nil, "DNS `NAME` or IP address the certificate is for; repeat or comma-separate for several")
	localhost := flags.Bool("localhost", true, "also make it valid for localhost, 127.0.0.1 and ::1")
	out := flags.String("out", "", "`DIR` to write tls.crt and tls.key into (default: data_dir from --config, LIVECHAT_DATA_DIR or ./data)")
	configPath := flags.String("config", "", "config `FILE` to read data_dir from when --out is not given")
	days := flags.Int("days", 365, "days the certificate is valid")
	force := flags.Bool("force", false, "replace existing files (a running daemon picks them up on SIGHUP)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "livechatd gencert: %v (see livechatd gencert --help)\n", err)
		return 2
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "livechatd gencert: "+format+"\n", a...)
		return code
	}
	if flags.NArg() > 0 {
		return fail(2, "unexpected argument %q (names go in --host)", flags.Arg(0))
	}
	if flags.Changed("host") && len(*hosts) == 0 {
		return fail(2, "--host needs a name") // likely an empty shell variable
	}
	req, err := newCertRequest(*hosts, *localhost, *days)
	if err != nil {
		return fail(2, "%v", err)
	}
	dir := *out
	if dir == "" {
		cfg, err := configs.Load(*configPath, nil)
		if err != nil {
			return fail(2, "cannot tell where data_dir is (pass --out DIR): %v", err)
		}
		dir = cfg.DataDir
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return fail(1, "%v", err)
	}
	certPath, keyPath := filepath.Join(dir, certFileName), filepath.Join(dir, keyFileName)
	if !*force {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return fail(1, "%s already exists; pass --force to replace it", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fail(1, "%v", err)
			}
		}
	}
	certPEM, keyPEM, leaf, err := req.generate(time.Now())
	if err != nil {
		return fail(1, "%v", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(1, "%v", err)
	}
	// The key first: a daemon reloading between the two renames sees a
	// mismatched pair, refuses it and keeps serving the old one.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return fail(1, "%v", err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return fail(1, "%v", err)
	}
	printCertUsage(stdout, leaf, certPath, keyPath, *localhost && len(*hosts) == 0)
	return 0
}

// newCertRequest checks the requested names and validity.
func newCertRequest(hosts []string, localhost bool, days int) (*certRequest, error) {
	if days < 1 || days > 3650 {
		return nil, fmt.Errorf("--days must be between 1 and 3650 (got %d)", days)
	}
	req := &certRequest{validFor: time.Duration(days) * 24 * time.Hour}
	seen := make(map[string]bool)
	add := func(h string) error {
		h = strings.ToLower(strings.TrimSpace(h))
		if seen[h] {
			return nil
		}
		seen[h] = true
		if ip, err := netip.ParseAddr(h); err == nil {
			if ip.Zone() != "" {
				return fmt.Errorf("--host %q: an address in a certificate cannot have a %%zone", h)
			}
			req.ips = append(req.ips, net.IP(ip.AsSlice()))
			return nil
		}
		if !isDNSName(h) {
			return fmt.Errorf("--host %q: not a DNS name (like chat.example.org or *.example.org) or an IP address", h)
		}
		req.dnsNames = append(req.dnsNames, h)
		return nil
	}
	for _, h := range hosts {
		if err := add(h); err != nil {
			return nil, err
		}
	}
	if localhost {
		for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
			add(h) // always valid
		}
	}
	if len(req.dnsNames)+len(req.ips) == 0 {
		return nil, errors.New("no names: give --host NAME, or leave --localhost on")
	}
	return req, nil
}

// isDNSName accepts host names and a leading wildcard label: letters,
// digits and hyphens, labels of 1-63 characters not starting or ending in
// a hyphen, 253 characters in all.
func isDNSName(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// generate makes the key and the self-signed certificate, PEM encoded.
func (r *certRequest) generate(now time.Time) (certPEM, keyPEM []byte, leaf *x509.Certificate, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, nil, err
	}
	cn := ""
	if len(r.dnsNames) > 0 {
		cn = r.dnsNames[0]
	} else {
		cn = r.ips[0].String()
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"livechat self-signed"}},
		DNSNames:     r.dnsNames,
		IPAddresses:  r.ips,
		// An hour of slack for clients whose clock is a little behind.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(r.validFor),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	if leaf, err = x509.ParseCertificate(der); err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, leaf, nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it into place, so a reader (a daemon reloading) never sees half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*") // created 0600
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// printCertUsage tells the operator what was written and how to use it.
func printCertUsage(w io.Writer, leaf *x509.Certificate, certPath, keyPath string, localOnly bool) {
	listen := ":6697"
	if localOnly {
		listen = "127.0.0.1:6697"
	}
	sum := sha256.Sum256(leaf.Raw)
	fp := strings.ToUpper(hex.EncodeToString(sum[:]))
	var pairs []string
	for i := 0; i < len(fp); i += 2 {
		pairs = append(pairs, fp[i:i+2])
	}
	fmt.Fprintf(w, `Wrote a self-signed ECDSA P-256 certificate for %s,
valid until %s:
  certificate  %s
  private key  %s (mode 0600)
  SHA-256 fingerprint  %s

To serve TLS on port 6697, add to the config file:

  listen:
    tls: %s
    tls_cert: %s
    tls_key: %s

or run with the flags:

  livechatd --tls-listen %s --tls-cert %s --tls-key %s

A running daemon reads replaced certificate files on SIGHUP. Clients do not
trust a self-signed certificate until told to: import tls.crt, or pin the
fingerprint above.
`, strings.Join(certNames(leaf), ", "), leaf.NotAfter.UTC().Format("2006-01-02 15:04 MST"),
		certPath, keyPath, strings.Join(pairs, ":"),
		listen, strconv.Quote(certPath), strconv.Quote(keyPath),
		listen, shellQuote(certPath), shellQuote(keyPath))
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:=@,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
