package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/configs"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestGencert(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new") // created on demand
	code, out, errOut := runCmd("gencert", "--host", "chat.example.org", "--host", "192.0.2.7,Chat.Example.Org", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")

	if st, err := os.Stat(keyPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("new directory: %v, mode %v; want 0700", err, st.Mode().Perm())
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatalf("the files are not a usable pair: %v", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Errorf("key is %T, want ECDSA P-256", pair.PrivateKey)
	}
	cert := readCert(t, certPath)
	if want := []string{"chat.example.org", "localhost"}; !slices.Equal(cert.DNSNames, want) {
		t.Errorf("DNS names %v, want %v", cert.DNSNames, want)
	}
	if got := certNames(cert); !slices.Equal(got, []string{"chat.example.org", "localhost", "192.0.2.7", "127.0.0.1", "::1"}) {
		t.Errorf("names %v", got)
	}
	if life := time.Until(cert.NotAfter); life < 364*24*time.Hour || life > 366*24*time.Hour {
		t.Errorf("valid for %v, want a year", life)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || cert.IsCA {
		t.Errorf("usage %v, CA %v: want a server certificate, not a CA", cert.ExtKeyUsage, cert.IsCA)
	}
	if err := cert.VerifyHostname("chat.example.org"); err != nil {
		t.Error(err)
	}
	for _, want := range []string{
		"listen:\n    tls: :6697\n",
		"tls_cert: \"" + certPath + "\"",
		"tls_key: \"" + keyPath + "\"",
		"--tls-listen :6697 --tls-cert " + certPath + " --tls-key " + keyPath,
		"SHA-256 fingerprint",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// The printed config lines work as printed.
	isolateEnv(t)
	yaml := out[strings.Index(out, "  listen:"):]
	yaml = yaml[:strings.Index(yaml, "\n\n")]
	yaml = strings.ReplaceAll(yaml, ":6697", "127.0.0.1:0")
	cfgPath := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgPath, []byte(strings.ReplaceAll(yaml, "\n  ", "\n")[2:]+"\n"), 0o600)
	if cfg, err := configs.Load(cfgPath, nil); err != nil || cfg.Listen.TLSCert != certPath {
		t.Errorf("printed config lines do not load: %v", err)
	}

	// No silent overwrite; --force replaces both files.
	code, _, errOut = runCmd("gencert", "--out", dir)
	if code != 1 || !strings.Contains(errOut, "already exists") || !strings.Contains(errOut, "--force") {
		t.Errorf("second run: exit %d %q, want a refusal naming --force", code, errOut)
	}
	if code, _, errOut := runCmd("gencert", "--out", dir, "--force"); code != 0 {
		t.Fatalf("--force: exit %d %s", code, errOut)
	}
	if again := readCert(t, certPath); again.Equal(cert) {
		t.Error("--force did not replace the certificate")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// Without --out the certificate goes to data_dir, from the environment
// (or --config); with only localhost the printed address stays local.
func TestGencertDefaultsToDataDir(t *testing.T) {
	isolateEnv(t)
	dir := t.TempDir()
	t.Setenv("LIVECHAT_DATA_DIR", dir)
	code, out, errOut := runCmd("gencert")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	cert := readCert(t, filepath.Join(dir, "tls.crt"))
	if !slices.Equal(certNames(cert), []string{"localhost", "127.0.0.1", "::1"}) {
		t.Errorf("names %v", certNames(cert))
	}
	if !strings.Contains(out, "tls: 127.0.0.1:6697") {
		t.Errorf("output does not suggest a local address:\n%s", out)
	}

	t.Setenv("LIVECHAT_DATA_DIR", "")
	code, _, errOut = runCmd("gencert", "--force")
	if code != 2 || !strings.Contains(errOut, "data_dir") || !strings.Contains(errOut, "--out") {
		t.Errorf("with an invalid data_dir: exit %d %q", code, errOut)
	}
}

func TestGencertErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--host", "bad_name"}, `"bad_name": not a DNS name`},
		{[]string{"--host", "-lead.example.org"}, "not a DNS name"},
		{[]string{"--host", strings.Repeat("a", 64) + ".org"}, "not a DNS name"},
		{[]string{"--host", "fe80::1%eth0"}, "zone"},
		{[]string{"--host", ""}, "--host needs a name"},
		{[]string{"--localhost=false"}, "no names"},
		{[]string{"--days", "0"}, "--days"},
		{[]string{"--days", "100000"}, "--days"},
		{[]string{"--days", "many"}, "invalid argument"},
		{[]string{"--bogus"}, "unknown flag"},
		{[]string{"chat.example.org"}, "unexpected argument"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			code, _, errOut := runCmd(append([]string{"gencert", "--out", dir}, tc.args...)...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tc.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Errorf("bad arguments still wrote %d files", len(entries))
			}
		})
	}
	code, _, errOut := runCmd("gencert", "--help")
	if code != 0 || !strings.Contains(errOut, "--host") {
		t.Errorf("--help: exit %d %q", code, errOut)
	}
}

func TestIsDNSName(t *testing.T) {
	for name, want := range map[string]bool{
		"localhost": true, "chat.example.org": true, "*.example.org": true, "a-b.c": true, "xn--bcher-kva.example": true,
		"": false, "*": false, "a..b": false, "a_b": false, "-a": false, "a-": false, "a.b.": false, "*.*.a": false, "ünï": false,
	} {
		if got := isDNSName(name); got != want {
			t.Errorf("isDNSName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/srv/livechat/tls.crt": "/srv/livechat/tls.crt",
		"/tmp/my dir/tls.crt":   `'/tmp/my dir/tls.crt'`,
		"/tmp/it's":             `'/tmp/it'\''s'`,
		"":                      "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
