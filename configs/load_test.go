package configs

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

const example = "livechatd.example.yaml"

// isolateEnv hides LIVECHAT_* variables of the machine running the tests;
// t.Setenv restores them afterwards.
func isolateEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, EnvPrefix) {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

func writeFile(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "livechatd.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("livechatd", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func mustLoad(t *testing.T, path string, fs *pflag.FlagSet) *Config {
	t.Helper()
	c, err := Load(path, fs)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	return c
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	t.Logf("error: %v", err)
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestNoFileGivesDefault(t *testing.T) {
	isolateEnv(t)
	if c := mustLoad(t, "", flags(t)); !reflect.DeepEqual(*c, Default()) {
		t.Errorf("Load with nothing set = %+v, want Default()", *c)
	}
}

// The example file doubles as documentation, so it must stay complete and
// true: every key present with its default, env var and flag.
func TestExampleIsDefault(t *testing.T) {
	isolateEnv(t)
	if c := mustLoad(t, example, nil); !reflect.DeepEqual(*c, Default()) {
		t.Errorf("example loads as %+v, want Default() %+v", *c, Default())
	}

	v := viper.New()
	v.SetConfigFile(example)
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	got := v.AllKeys()
	slices.Sort(got)
	want := Keys()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("example has keys %v, want every key %v", got, want)
	}

	text, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range Keys() {
		if !strings.Contains(string(text), "Env "+EnvName(key)+".") && !strings.Contains(string(text), "Env "+EnvName(key)+",") {
			t.Errorf("example does not document %s for %s", EnvName(key), key)
		}
	}
	// Each restart-only key says so in the comment block above it.
	for _, key := range restartKeys {
		if !commentAbove(string(text), key, "Restart to change") {
			t.Errorf("example does not say \"Restart to change\" for %s", key)
		}
	}
	for _, f := range flagKeys {
		if !strings.Contains(string(text), "flag --"+f.name) {
			t.Errorf("example does not document flag --%s", f.name)
		}
	}
}

// commentAbove reports whether the comment lines right above key's line in
// the example contain want. key is dotted; its last part is what the line
// starts with.
func commentAbove(text, key, want string) bool {
	leaf := key[strings.LastIndex(key, ".")+1:]
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		if !strings.HasPrefix(strings.TrimSpace(line), leaf+":") {
			continue
		}
		var comment strings.Builder
		for j := i - 1; j >= 0 && strings.HasPrefix(strings.TrimSpace(lines[j]), "#"); j-- {
			comment.WriteString(lines[j])
		}
		if strings.Contains(comment.String(), want) {
			return true
		}
	}
	return false
}

func TestFileOverridesDefault(t *testing.T) {
	isolateEnv(t)
	c := mustLoad(t, writeFile(t, "network: testnet\nlimits:\n  max_rooms: 7\n  ping_interval: 5m\n  flood_rate: 0.5\n"), nil)
	want := Default()
	want.Network = "testnet"
	want.Limits.MaxRooms = 7
	want.Limits.PingInterval = 5 * time.Minute
	want.Limits.FloodRate = 0.5
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("got %+v, want %+v", *c, want)
	}
}

func TestEnvOverridesFile(t *testing.T) {
	isolateEnv(t)
	path := writeFile(t, "listen:\n  tcp: 127.0.0.1:7000\n")
	t.Setenv("LIVECHAT_LISTEN_TCP", "127.0.0.1:7001")
	// Keys absent from the file must still be read from the environment.
	t.Setenv("LIVECHAT_LIMITS_MAX_ROOMS", "42")
	t.Setenv("LIVECHAT_ROOMS_IDLE_TTL", "90s")
	t.Setenv("LIVECHAT_METRICS_PPROF", "true")
	t.Setenv("LIVECHAT_METRICS_LISTEN", "") // empty means off, not unset

	c := mustLoad(t, path, flags(t))
	if c.Listen.TCP != "127.0.0.1:7001" {
		t.Errorf("listen.tcp = %q, want the env value", c.Listen.TCP)
	}
	if c.Limits.MaxRooms != 42 || c.Rooms.IdleTTL != 90*time.Second || !c.Metrics.PProf {
		t.Errorf("env not applied: max_rooms=%d idle_ttl=%s pprof=%v", c.Limits.MaxRooms, c.Rooms.IdleTTL, c.Metrics.PProf)
	}
	if c.Metrics.Listen != "" {
		t.Errorf("metrics.listen = %q, want empty env to disable it", c.Metrics.Listen)
	}
}

func TestFlagOverridesEnv(t *testing.T) {
	isolateEnv(t)
	path := writeFile(t, "log:\n  level: warn\ndata_dir: /file\nlisten:\n  tls_cert: c.pem\n  tls_key: k.pem\n")
	t.Setenv("LIVECHAT_LOG_LEVEL", "error")
	t.Setenv("LIVECHAT_DATA_DIR", "/env")
	t.Setenv("LIVECHAT_LISTEN_TCP", "127.0.0.1:7001")

	c := mustLoad(t, path, flags(t, "--log-level", "debug", "--listen=", "--tls-listen", ":6697"))
	if c.Log.Level != "debug" {
		t.Errorf("log.level = %q, want the flag value", c.Log.Level)
	}
	if c.DataDir != "/env" {
		t.Errorf("data_dir = %q, want env value since --data-dir was not given", c.DataDir)
	}
	if c.Listen.TCP != "" || c.Listen.TLS != ":6697" {
		t.Errorf("listen = %+v, want tcp disabled and tls from flags", c.Listen)
	}
}

// A list key reads a YAML list, a YAML string or a comma-separated
// environment variable; empty forms all mean the empty (nil) default.
func TestExemptList(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, env string
		setEnv          bool
		want            []string
	}{
		{"yaml list", "limits:\n  exempt:\n    - 10.0.0.0/8\n    - 2001:db8::/32\n", "", false, []string{"10.0.0.0/8", "2001:db8::/32"}},
		{"yaml flow list", "limits:\n  exempt: [192.0.2.7]\n", "", false, []string{"192.0.2.7"}},
		{"yaml string", "limits:\n  exempt: \"10.0.0.0/8, 192.0.2.7\"\n", "", false, []string{"10.0.0.0/8", "192.0.2.7"}},
		{"yaml empty", "limits:\n  exempt: []\n", "", false, nil},
		{"env commas", "", " 10.0.0.0/8 ,fd00::/8,,", true, []string{"10.0.0.0/8", "fd00::/8"}},
		{"env overrides file", "limits:\n  exempt: [192.0.2.7]\n", "10.0.0.0/8", true, []string{"10.0.0.0/8"}},
		{"empty env clears file", "limits:\n  exempt: [192.0.2.7]\n", "", true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolateEnv(t)
			if tc.setEnv {
				t.Setenv("LIVECHAT_LIMITS_EXEMPT", tc.env)
			}
			c := mustLoad(t, writeFile(t, tc.yaml), nil)
			if !slices.Equal(c.Limits.Exempt, tc.want) || (tc.want == nil) != (c.Limits.Exempt == nil) {
				t.Errorf("limits.exempt = %#v, want %#v", c.Limits.Exempt, tc.want)
			}
		})
	}
}

func TestExemptListErrors(t *testing.T) {
	isolateEnv(t)
	_, err := Load(writeFile(t, "limits:\n  exempt: [10, 11]\n"), nil)
	wantErr(t, err, "limits.exempt", "not a string", "config file")
	_, err = Load(writeFile(t, "limits:\n  exempt:\n    a: b\n"), nil)
	wantErr(t, err, "limits.exempt")
	t.Setenv("LIVECHAT_LIMITS_EXEMPT", "10.0.0.0/8,not-an-ip")
	_, err = Load("", nil)
	wantErr(t, err, "limits.exempt", "not-an-ip")
}

func TestFlagsSetTLSFiles(t *testing.T) {
	isolateEnv(t)
	c := mustLoad(t, "", flags(t, "--tls-listen", "127.0.0.1:0", "--tls-cert", "c.pem", "--tls-key", "k.pem"))
	if c.Listen.TLSCert != "c.pem" || c.Listen.TLSKey != "k.pem" {
		t.Errorf("listen = %+v, want the cert and key from flags", c.Listen)
	}
}

func TestFlagTLSNeedsCert(t *testing.T) {
	isolateEnv(t)
	_, err := Load("", flags(t, "--tls-listen", ":6697"))
	wantErr(t, err, "listen.tls_cert")
}

func TestConfigPath(t *testing.T) {
	if got := ConfigPath(nil); got != "" {
		t.Errorf("ConfigPath(nil) = %q", got)
	}
	if got := ConfigPath(flags(t)); got != "" {
		t.Errorf("ConfigPath(unset) = %q", got)
	}
	if got := ConfigPath(flags(t, "--config", "/etc/livechatd.yaml")); got != "/etc/livechatd.yaml" {
		t.Errorf("ConfigPath = %q", got)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        map[string]string
		want       []string
	}{
		{"unknown key", "lisen:\n  tcp: :6667\n", nil, []string{"unknown key", "lisen.tcp"}},
		{"unknown nested key", "limits:\n  max_romos: 5\n", nil, []string{"limits.max_romos"}},
		{"section as value", "listen: :6667\n", nil, []string{"listen:", "section"}},
		{"no value", "listen:\n  tcp:\n", nil, []string{"listen.tcp", "no value"}},
		{"bad yaml", "network: [unclosed\n", nil, []string{"config:"}},
		{"bare duration", "limits:\n  ping_interval: 30\n", nil, []string{"limits.ping_interval", "unit", "config file"}},
		{"bad int env", "", map[string]string{"LIVECHAT_LIMITS_MAX_ROOMS": "many"}, []string{"limits.max_rooms", "LIVECHAT_LIMITS_MAX_ROOMS"}},
		{"bad duration env", "", map[string]string{"LIVECHAT_ROOMS_IDLE_TTL": "10"}, []string{"rooms.idle_ttl"}},
		{"bad bool env", "", map[string]string{"LIVECHAT_METRICS_PPROF": "maybe"}, []string{"metrics.pprof"}},
		{"invalid after env", "", map[string]string{"LIVECHAT_HISTORY_REPLAY": "500"}, []string{"history.replay"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolateEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := Load(writeFile(t, tc.yaml), nil)
			wantErr(t, err, tc.want...)
		})
	}
}

func TestMissingFile(t *testing.T) {
	isolateEnv(t)
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path, nil)
	wantErr(t, err, path)
}
