package configs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix starts every environment variable that sets a key.
const EnvPrefix = "LIVECHAT_"

// Default returns the built-in defaults. They must be enough to run the
// daemon in an empty directory, so they bind to loopback only and keep
// durable state under a relative ./data.
// DefaultWebSocket is where the chat page is served out of the box: on
// loopback, so a newcomer's `go run` has a page to open and nobody else
// reaches it until the operator says so.
const DefaultWebSocket = "127.0.0.1:8080"

func Default() Config {
	return Config{
		ServerName: "livechat.local",
		Network:    "livechat",
		MOTD: "Welcome to livechat, a small IRC-style chat server.\n" +
			"Connected with netcat or telnet? Type HELP and press Enter to see the commands.",
		DataDir:         "./data",
		ShutdownTimeout: 5 * time.Second,
		Listen:          Listen{TCP: "127.0.0.1:6667", WebSocket: DefaultWebSocket},
		Metrics:         Metrics{Listen: "127.0.0.1:9667"},
		Log:             Log{Level: "info", Format: "auto"},
		Limits: Limits{
			MaxClients:          100000,
			MaxRooms:            100000,
			MaxRoomMembers:      20000,
			MaxJoinedRooms:      100,
			SendQBytes:          256 << 10,
			RegistrationTimeout: 30 * time.Second,
			PingInterval:        120 * time.Second,
			PingTimeout:         60 * time.Second,
			FloodBurst:          20,
			FloodRate:           5,
			FloodMaxLag:         10 * time.Second,
			MultilineMaxBytes:   4096,
			MultilineMaxLines:   100,
			MaxConnsPerIP:       16,
			ConnRatePerIP:       30,
			ConnRateWindow:      10 * time.Second,
			Monitor:             100,
			Whowas:              1000,
			DevicesPerAccount:   10,
		},
		History: History{
			Size: 200, Replay: 20, MaxQuery: 100,
			Store: "file", Sync: "interval", SyncInterval: 10 * time.Millisecond,
			MaxAge: 365 * 24 * time.Hour, MaxMessages: 1_000_000, MaxMegabytes: 2048,
		},
		Rooms:   Rooms{IdleTTL: 10 * time.Minute},
		Cluster: Cluster{LeaseTTL: 5 * time.Second, Replicas: 1},
		Accounts: Accounts{
			Store:             "file",
			RegisterEarly:     true,
			MinPasswordLength: 8,
			// OWASP's argon2id recommendation: 19 MiB, t=2, p=1.
			HashMemoryKiB:    19456,
			HashIterations:   2,
			HashParallelism:  1,
			HashWait:         5 * time.Second,
			HashQueuePerIP:   4,
			RegisterPerIP:    5,
			RegisterWindow:   time.Hour,
			RegisterPerConn:  3,
			ThrottleFree:     3,
			ThrottleAccount:  100,
			ThrottleTrust:    30 * 24 * time.Hour,
			ThrottleDelay:    time.Second,
			ThrottleMaxDelay: 5 * time.Minute,
			TokenTTL:         30 * 24 * time.Hour,
			SCRAMIterations:  10000,
			Multiclient:      true,
		},
		Cloak: Cloak{Enabled: true, Suffix: "livechat", IPv4Prefix: 32, IPv6Prefix: 64},
	}
}

// flagKeys maps each common flag to the key it overrides. The config flag
// is not here: it names the file rather than setting a key.
var flagKeys = []struct{ name, key, usage string }{
	{"listen", "listen.tcp", "plain TCP client listener `ADDR` (\"\" disables)"},
	{"tls-listen", "listen.tls", "TLS client listener `ADDR` (\"\" disables; needs listen.tls_cert and listen.tls_key)"},
	{"ws-listen", "listen.websocket", "WebSocket listener `ADDR` for browsers and web IRC clients; serves the chat page at / (\"\" disables)"},
	{"wss-listen", "listen.websocket_tls", "WebSocket-over-TLS listener `ADDR` (\"\" disables; uses listen.tls_cert and listen.tls_key)"},
	{"tls-cert", "listen.tls_cert", "PEM certificate chain `FILE` for the TLS listener (see: livechatd gencert)"},
	{"tls-key", "listen.tls_key", "PEM private key `FILE` for the TLS listener"},
	{"metrics-listen", "metrics.listen", "operator HTTP listener `ADDR` for /metrics and health checks (\"\" disables)"},
	{"data-dir", "data_dir", "`DIR` for durable state such as accounts"},
	{"log-level", "log.level", "log `LEVEL`: trace, debug, info, warn or error"},
}

// RegisterFlags adds the common flags to fs. Flag defaults show the
// built-in values for --help; only flags the user actually sets override
// the file and environment.
func RegisterFlags(fs *pflag.FlagSet) {
	d := Default()
	fs.String("config", "", "read configuration from the YAML `FILE` (default: built-in defaults only)")
	for _, f := range flagKeys {
		def, _ := lookupKey(&d, f.key)
		fs.String(f.name, def.String(), f.usage+" [key "+f.key+", env "+EnvName(f.key)+"]")
	}
}

// ConfigPath returns the --config flag's value from fs, "" when fs is nil,
// lacks the flag, or it was not given.
func ConfigPath(fs *pflag.FlagSet) string {
	if fs == nil {
		return ""
	}
	if f := fs.Lookup("config"); f != nil {
		return f.Value.String()
	}
	return ""
}

// EnvName returns the environment variable that sets key
// (listen.tcp -> LIVECHAT_LISTEN_TCP).
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys returns every dotted key, in struct order.
func Keys() []string { return slices.Clone(allKeys) }

var allKeys = func() []string {
	var keys []string
	var c Config
	walk(reflect.ValueOf(&c).Elem(), "", func(key string, _ reflect.Value) { keys = append(keys, key) })
	return keys
}()

// Load builds a Config from, lowest precedence first: the defaults, the
// YAML file at path ("" reads none), LIVECHAT_* environment variables, and
// the flags in fs that the user set (fs may be nil). The result is validated.
//
// An environment variable that is set but empty counts as set, so
// LIVECHAT_LISTEN_TCP= disables the plain listener just as --listen= does.
func Load(path string, fs *pflag.FlagSet) (*Config, error) {
	v := viper.New()
	v.AllowEmptyEnv(true)
	if path != "" {
		if err := readFile(v, path); err != nil {
			return nil, err
		}
	}
	d := Default()
	for _, key := range allKeys {
		def, _ := lookupKey(&d, key)
		v.SetDefault(key, def.Interface())
		// Explicit binding, not AutomaticEnv: every key is known, and no
		// prefix or replacer rules hide what a variable is called.
		if err := v.BindEnv(key, EnvName(key)); err != nil {
			return nil, fmt.Errorf("config: %s: %w", key, err)
		}
	}
	if fs != nil {
		for _, f := range flagKeys {
			if fl := fs.Lookup(f.name); fl != nil {
				// viper only lets a bound flag win when it has Changed.
				if err := v.BindPFlag(f.key, fl); err != nil {
					return nil, fmt.Errorf("config: %s: %w", f.key, err)
				}
			}
		}
	}

	c := new(Config)
	var decodeErr error
	walk(reflect.ValueOf(c).Elem(), "", func(key string, f reflect.Value) {
		if decodeErr != nil {
			return
		}
		if err := set(f, v.Get(key)); err != nil {
			decodeErr = fmt.Errorf("config: %s: %v (from %s)", key, err, origin(v, fs, key))
		}
	})
	if decodeErr != nil {
		return nil, decodeErr
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// readFile loads path into v and rejects keys Config does not have, so a
// typo such as "lisen:" fails loudly instead of silently keeping a default.
// It runs before defaults are set so v.AllKeys holds only the file's keys.
func readFile(v *viper.Viper, path string) error {
	v.SetConfigFile(path)
	v.SetConfigType("yaml") // whatever the extension says
	if err := v.ReadInConfig(); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("config: %s: %s", path, oneLine(err.Error()))
	}
	var unknown []string
	for _, key := range v.AllKeys() {
		switch {
		case slices.Contains(allKeys, key):
			// A bare "tcp:" would silently mean the default, which is
			// surprising when the operator meant "off".
			if v.Get(key) == nil {
				return fmt.Errorf("config: %s: has no value in %s (write \"\" for empty, or remove the line)", key, path)
			}
		case isSection(key):
			// An empty section (all children commented out) is fine.
			if v.Get(key) != nil {
				return fmt.Errorf("config: %s: is a section in %s and needs nested keys, not a value", key, path)
			}
		default:
			unknown = append(unknown, key)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("config: unknown key %s in %s", strings.Join(unknown, ", "), path)
	}
	return nil
}

func isSection(key string) bool {
	return slices.ContainsFunc(allKeys, func(k string) bool { return strings.HasPrefix(k, key+".") })
}

// origin names where a bad value came from, so the operator knows whether
// to look at the file, the environment or the command line.
func origin(v *viper.Viper, fs *pflag.FlagSet, key string) string {
	if fs != nil {
		for _, f := range flagKeys {
			if f.key == key && fs.Changed(f.name) {
				return "flag --" + f.name
			}
		}
	}
	if _, ok := os.LookupEnv(EnvName(key)); ok {
		return "env " + EnvName(key)
	}
	if v.InConfig(key) {
		return "config file"
	}
	return "default"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
