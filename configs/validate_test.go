package configs

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestDefaultValidates(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRules(t *testing.T) {
	for _, tc := range []struct {
		key    string
		mutate func(*Config)
	}{
		{"server_name", func(c *Config) { c.ServerName = "" }},
		{"server_name", func(c *Config) { c.ServerName = "live chat" }},
		{"network", func(c *Config) { c.Network = "" }},
		{"network", func(c *Config) { c.Network = "a\tb" }},
		{"log.level", func(c *Config) { c.Log.Level = "verbose" }},
		{"log.format", func(c *Config) { c.Log.Format = "xml" }},
		{"listen.tcp", func(c *Config) { c.Listen.TCP = "6667" }},
		{"listen.tcp", func(c *Config) { c.Listen.TCP = "localhost:99999" }},
		{"listen.tls", func(c *Config) { c.Listen.TLS = "nohost"; c.Listen.TLSCert, c.Listen.TLSKey = "c", "k" }},
		{"metrics.listen", func(c *Config) { c.Metrics.Listen = "host:http" }},
		{"metrics.listen", func(c *Config) { c.Metrics.Listen = c.Listen.TCP }},
		{"listen.tcp", func(c *Config) { c.Listen.TCP, c.Listen.WebSocket = "", "" }},
		{"listen.tls_cert", func(c *Config) { c.Listen.TLS = ":6697"; c.Listen.TLSKey = "k" }},
		{"listen.tls_key", func(c *Config) { c.Listen.TLS = ":6697"; c.Listen.TLSCert = "c" }},
		{"listen.websocket", func(c *Config) { c.Listen.WebSocket = "8080" }},
		{"listen.websocket", func(c *Config) { c.Listen.WebSocket = c.Listen.TCP }},
		{"listen.websocket_tls", func(c *Config) { c.Listen.WebSocketTLS = "x:y"; c.Listen.TLSCert, c.Listen.TLSKey = "c", "k" }},
		{"listen.tls_cert", func(c *Config) { c.Listen.WebSocketTLS = ":8443"; c.Listen.TLSKey = "k" }},
		{"websocket.allowed_origins", func(c *Config) { c.WebSocket.AllowedOrigins = []string{"[a-"} }},
		{"websocket.allowed_origins", func(c *Config) { c.WebSocket.AllowedOrigins = []string{""} }},
		{"websocket.hostnames", func(c *Config) { c.WebSocket.Hostnames = []string{"https://chat.example.com"} }},
		{"websocket.hostnames", func(c *Config) { c.WebSocket.Hostnames = []string{"*.example.com"} }},
		{"websocket.hostnames", func(c *Config) { c.WebSocket.Hostnames = []string{"chat.example.com:0"} }},
		{"websocket.hostnames", func(c *Config) { c.WebSocket.Hostnames = []string{""} }},
		{"websocket.trusted_proxies", func(c *Config) { c.WebSocket.TrustedProxies = []string{"proxy.local"} }},
		{"limits.max_clients", func(c *Config) { c.Limits.MaxClients = 0 }},
		{"limits.max_rooms", func(c *Config) { c.Limits.MaxRooms = 0 }},
		{"limits.max_room_members", func(c *Config) { c.Limits.MaxRoomMembers = -1 }},
		{"limits.max_joined_rooms", func(c *Config) { c.Limits.MaxJoinedRooms = 0 }},
		{"limits.monitor", func(c *Config) { c.Limits.Monitor = 0 }},
		{"limits.whowas", func(c *Config) { c.Limits.Whowas = -1 }},
		{"limits.sendq_bytes", func(c *Config) { c.Limits.SendQBytes = 4095 }},
		{"shutdown_timeout", func(c *Config) { c.ShutdownTimeout = 0 }},
		{"limits.registration_timeout", func(c *Config) { c.Limits.RegistrationTimeout = 0 }},
		{"limits.ping_interval", func(c *Config) { c.Limits.PingInterval = -time.Second }},
		{"limits.ping_timeout", func(c *Config) { c.Limits.PingTimeout = 0 }},
		{"rooms.idle_ttl", func(c *Config) { c.Rooms.IdleTTL = 0 }},
		{"limits.flood_max_lag", func(c *Config) { c.Limits.FloodMaxLag = 0 }},
		{"limits.flood_rate", func(c *Config) { c.Limits.FloodRate = 0 }},
		{"limits.flood_burst", func(c *Config) { c.Limits.FloodBurst = 0 }},
		{"history.size", func(c *Config) { c.History.Size = -1; c.History.Replay = 0 }},
		{"history.replay", func(c *Config) { c.History.Replay = -1 }},
		{"history.replay", func(c *Config) { c.History.Replay = c.History.Size + 1 }},
		{"accounts.store", func(c *Config) { c.Accounts.Store = "sql" }},
		{"data_dir", func(c *Config) { c.DataDir = "" }},
		{"limits.max_conns_per_ip", func(c *Config) { c.Limits.MaxConnsPerIP = 0 }},
		{"limits.conn_rate_per_ip", func(c *Config) { c.Limits.ConnRatePerIP = -1 }},
		{"limits.conn_rate_window", func(c *Config) { c.Limits.ConnRateWindow = 0 }},
		{"limits.exempt", func(c *Config) { c.Limits.Exempt = []string{"10.0.0/8"} }},
		{"limits.exempt", func(c *Config) { c.Limits.Exempt = []string{"10.0.0.0/8", "localhost"} }},
		{"limits.exempt", func(c *Config) { c.Limits.Exempt = []string{"10.0.0.0/33"} }},
		{"limits.exempt", func(c *Config) { c.Limits.Exempt = []string{"fe80::1%eth0"} }},
		{"history.max_query", func(c *Config) { c.History.MaxQuery = 0 }},
		{"accounts.min_password_length", func(c *Config) { c.Accounts.MinPasswordLength = 0 }},
		{"accounts.min_password_length", func(c *Config) { c.Accounts.MinPasswordLength = 300 }},
		{"accounts.hash_memory_kib", func(c *Config) { c.Accounts.HashMemoryKiB = 4 }},
		{"accounts.hash_iterations", func(c *Config) { c.Accounts.HashIterations = 0 }},
		{"accounts.hash_parallelism", func(c *Config) { c.Accounts.HashParallelism = 0 }},
		{"accounts.hash_workers", func(c *Config) { c.Accounts.HashWorkers = -1 }},
		{"accounts.hash_wait", func(c *Config) { c.Accounts.HashWait = 0 }},
		{"accounts.throttle_delay", func(c *Config) { c.Accounts.ThrottleDelay = 0 }},
		{"accounts.token_ttl", func(c *Config) { c.Accounts.TokenTTL = 0 }},
		{"limits.exempt", func(c *Config) { c.Limits.Exempt = []string{"::ffff:10.0.0.0/104"} }},
		{"cloak.secret", func(c *Config) { c.Cloak.Secret = "short" }},
		{"cloak.suffix", func(c *Config) { c.Cloak.Suffix = "" }},
		{"cloak.suffix", func(c *Config) { c.Cloak.Suffix = "ip..example" }},
		{"cloak.suffix", func(c *Config) { c.Cloak.Suffix = "bad host" }},
		{"cloak.suffix", func(c *Config) { c.Cloak.Suffix = "-ip" }},
		{"cloak.ipv4_prefix", func(c *Config) { c.Cloak.IPv4Prefix = 33 }},
		{"cloak.ipv6_prefix", func(c *Config) { c.Cloak.IPv6Prefix = 8 }},
	} {
		t.Run(tc.key, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			wantErr(t, c.Validate(), "config: "+tc.key+": ")
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	c := Default()
	c.Listen = Listen{TCP: "", TLS: "[::]:6697", TLSCert: "c.pem", TLSKey: "k.pem"}
	c.Metrics.Listen = ""
	c.Accounts.Store = "memory"
	c.DataDir = "" // not needed without a file store
	c.History.Size, c.History.Replay, c.History.MaxQuery = 0, 0, 1
	c.History.Store = "memory"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestUnreloadable(t *testing.T) {
	old := Default()
	c := Default()
	c.MOTD = "changed"
	c.Limits.MaxRooms = 1
	if got := c.Unreloadable(&old); len(got) != 0 {
		t.Errorf("reloadable changes reported as unreloadable: %v", got)
	}
	c.Listen.TCP = "127.0.0.1:7000"
	if got := c.Unreloadable(&old); !slices.Equal(got, []string{"listen.tcp"}) {
		t.Errorf("Unreloadable = %v, want [listen.tcp]", got)
	}
	c.DataDir = "data" // the same directory as ./data
	c.History.Size = 5
	c.Log.Format = "json"
	if got := c.Unreloadable(&old); !slices.Equal(got, []string{"listen.tcp", "log.format", "history.size"}) {
		t.Errorf("Unreloadable = %v", got)
	}
	c.KeepRestartOnly(&old)
	if c.Listen.TCP != old.Listen.TCP || c.History.Size != old.History.Size || c.Log.Format != old.Log.Format || c.DataDir != old.DataDir {
		t.Errorf("KeepRestartOnly left %+v", c)
	}
	if c.MOTD != "changed" || c.Limits.MaxRooms != 1 {
		t.Errorf("KeepRestartOnly undid live keys: motd %q max_rooms %d", c.MOTD, c.Limits.MaxRooms)
	}
	if got := c.Unreloadable(&old); len(got) != 0 {
		t.Errorf("after KeepRestartOnly: %v", got)
	}
}

// A daemon for browsers only is a valid setup.
func TestWebSocketOnly(t *testing.T) {
	c := Default()
	c.Listen.TCP = ""
	c.Listen.WebSocket = "127.0.0.1:8080"
	c.WebSocket.AllowedOrigins = []string{"*.example.com", "https://gamja.example.org", "*"}
	c.WebSocket.Hostnames = []string{"chat.example.com", "chat.example.com:8443", "127.0.0.1", "[::1]:8080", "::1"}
	c.WebSocket.TrustedProxies = []string{"10.0.0.0/8", "::1"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestRestartKeysExist(t *testing.T) {
	for _, key := range restartKeys {
		if !slices.Contains(Keys(), key) {
			t.Errorf("restart-only key %q is not a config key", key)
		}
	}
}

func TestValue(t *testing.T) {
	c := Default()
	c.Limits.Exempt = []string{"10.0.0.0/8", "::1"}
	for key, want := range map[string]string{
		"listen.tcp":              "127.0.0.1:6667",
		"limits.max_conns_per_ip": "16",
		"limits.conn_rate_window": "10s",
		"limits.exempt":           "10.0.0.0/8,::1",
		"metrics.pprof":           "false",
		"nope":                    "",
	} {
		if got := c.Value(key); got != want {
			t.Errorf("Value(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestExemptPrefixes(t *testing.T) {
	l := Limits{Exempt: []string{"10.1.2.3/8", "192.0.2.7", " 2001:db8::/32 ", "::1"}}
	got, err := l.ExemptPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), // host bits cleared
		netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("::1/128"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("ExemptPrefixes = %v, want %v", got, want)
	}
	c := Default()
	c.Limits.Exempt = []string{"10.0.0.0/8", "nope"}
	wantErr(t, c.Validate(), "limits.exempt", `"nope"`)
}

func TestChanged(t *testing.T) {
	old := Default()
	c := Default()
	if got := c.Changed(&old); len(got) != 0 {
		t.Errorf("Changed on equal configs = %v", got)
	}
	c.MOTD = "new"
	c.Limits.Exempt = []string{"10.0.0.0/8"}
	if got := c.Changed(&old); !slices.Equal(got, []string{"motd", "limits.exempt"}) {
		t.Errorf("Changed = %v, want [motd limits.exempt]", got)
	}
}
