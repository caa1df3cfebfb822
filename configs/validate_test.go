package configs

import (
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
		{"listen.tcp", func(c *Config) { c.Listen.TCP = "" }},
		{"listen.tls_cert", func(c *Config) { c.Listen.TLS = ":6697"; c.Listen.TLSKey = "k" }},
		{"listen.tls_key", func(c *Config) { c.Listen.TLS = ":6697"; c.Listen.TLSCert = "c" }},
		{"limits.max_clients", func(c *Config) { c.Limits.MaxClients = 0 }},
		{"limits.max_rooms", func(c *Config) { c.Limits.MaxRooms = 0 }},
		{"limits.max_room_members", func(c *Config) { c.Limits.MaxRoomMembers = -1 }},
		{"limits.max_joined_rooms", func(c *Config) { c.Limits.MaxJoinedRooms = 0 }},
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
	c.History = History{Size: 0, Replay: 0}
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
}
