package configs

import (
	"reflect"
	"strings"
	"testing"
)

// What WriteYAML prints, Load reads back to the same configuration: file,
// environment and flags all show, and nested sections come out as YAML.
func TestWriteYAMLRoundTrip(t *testing.T) {
	isolateEnv(t)
	t.Setenv("LIVECHAT_LIMITS_EXEMPT", "10.0.0.0/8,192.0.2.7")
	path := writeFile(t, "motd: \"two\\nlines \\\"quoted\\\"\"\nlimits:\n  flood_rate: 2.5\n  ping_interval: 90s\nhistory:\n  store: memory\n")
	want, err := Load(path, flags(t, "--listen", ":7000"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := want.WriteYAML(&b); err != nil {
		t.Fatal(err)
	}
	isolateEnv(t)
	got, err := Load(writeFile(t, b.String()), nil)
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, b.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip changed the config:\n got %+v\nwant %+v\nprinted:\n%s", got, want, b.String())
	}
	for _, line := range []string{`  tcp: ":7000"  # default "127.0.0.1:6667"`, `  exempt: ["10.0.0.0/8", "192.0.2.7"]  # default []`, `  ping_interval: "1m30s"  # default "2m0s"`} {
		if !strings.Contains(b.String(), line+"\n") {
			t.Errorf("printed config lacks %q:\n%s", line, b.String())
		}
	}
}

// Secrets never print, while their being set still shows.
func TestWriteYAMLMasksSecrets(t *testing.T) {
	isolateEnv(t)
	const pw, cloak, hash = "server-pw-123", "cloak-secret-0123456789", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"
	t.Setenv("LIVECHAT_SERVER_PASSWORD", pw)
	path := writeFile(t, "cloak:\n  secret: "+cloak+"\noperators:\n  - \"root:"+hash+"\"\n")
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := c.WriteYAML(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, secret := range []string{pw, cloak, hash, "argon2id"} {
		if strings.Contains(out, secret) {
			t.Errorf("printed config shows %q:\n%s", secret, out)
		}
	}
	for _, line := range []string{`server_password: "` + Masked + `"`, `  secret: "` + Masked + `"`, `operators: ["root:` + Masked + `"]`} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("printed config lacks %q:\n%s", line, out)
		}
	}
	if got := c.Shown("server_password"); got != Masked {
		t.Errorf("Shown(server_password) = %q", got)
	}
}

// Every key named like a secret is one; the file names next to them are not.
func TestIsSecret(t *testing.T) {
	for _, key := range Keys() {
		last := key[strings.LastIndex(key, ".")+1:]
		f, _ := lookupKey(&Config{}, key)
		named := (strings.Contains(last, "password") || strings.Contains(last, "secret")) && f.Kind() == reflect.String
		if named && !IsSecret(key) {
			t.Errorf("%s is not masked", key)
		}
	}
	for _, key := range []string{"listen.tls_key", "listen.tls_cert", "accounts.token_ttl", "accounts.min_password_length", "server_name", "cluster.credentials_file"} {
		if IsSecret(key) {
			t.Errorf("%s is masked", key)
		}
	}
	if !IsSecret("operators") || !IsSecret("cluster.nats_password") || !IsSecret("cluster.nats_token") {
		t.Error("operators, and keys named like secrets, must be masked")
	}
}
