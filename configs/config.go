// Package configs defines livechatd's configuration: the Config struct, its
// built-in defaults, loading from a YAML file, LIVECHAT_* environment
// variables and command-line flags (with viper, kept inside this package),
// and validation that names the failing key.
//
// A Config is an immutable snapshot: callers load one, validate it, and
// swap it in whole; nothing reads viper after Load returns.
package configs

import "time"

// Config is the whole daemon configuration. Field tags name the YAML key;
// the environment variable is LIVECHAT_ + the upper-cased dotted key with
// dots replaced by underscores (listen.tcp -> LIVECHAT_LISTEN_TCP).
type Config struct {
	// ServerName is the source of server-originated lines and numerics.
	ServerName string `mapstructure:"server_name"`
	// Network is advertised as NETWORK= in ISUPPORT.
	Network string `mapstructure:"network"`
	// MOTD is the message of the day, one line per line; empty sends 422.
	MOTD string `mapstructure:"motd"`
	// ServerPassword, when set, must be given with PASS before
	// registration completes (a private server).
	ServerPassword string `mapstructure:"server_password"`
	// DataDir holds durable state (accounts).
	DataDir string `mapstructure:"data_dir"`
	// ShutdownTimeout bounds the drain on SIGINT/SIGTERM.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`

	Listen    Listen    `mapstructure:"listen"`
	WebSocket WebSocket `mapstructure:"websocket"`
	Metrics   Metrics   `mapstructure:"metrics"`
	Log       Log       `mapstructure:"log"`
	Limits    Limits    `mapstructure:"limits"`
	History   History   `mapstructure:"history"`
	Cluster   Cluster   `mapstructure:"cluster"`
	Rooms     Rooms     `mapstructure:"rooms"`
	Accounts  Accounts  `mapstructure:"accounts"`
	Cloak     Cloak     `mapstructure:"cloak"`

	// Operators may use OPER: "name:argon2id-hash" entries (see
	// livechatd accounts hash).
	Operators []string `mapstructure:"operators"`
}

// Listen holds the client-facing listener addresses.
type Listen struct {
	TCP     string `mapstructure:"tcp"`      // "" disables plain TCP
	TLS     string `mapstructure:"tls"`      // "" disables TLS
	TLSCert string `mapstructure:"tls_cert"` // PEM certificate chain, required with tls
	TLSKey  string `mapstructure:"tls_key"`  // PEM private key, required with tls
	// WebSocket serves browsers: the IRC protocol over WebSocket and the
	// chat page at "/". "" disables it.
	WebSocket string `mapstructure:"websocket"`
	// WebSocketTLS is the same over TLS (wss://, https://), with the TLS
	// listener's certificate. "" disables it.
	WebSocketTLS string `mapstructure:"websocket_tls"`
	// STSDuration, when above 0, advertises IRCv3 STS: clients on plain
	// TCP are told to reconnect with TLS on STSPort, and to keep to TLS
	// for this long. Off by default: a client that was told cannot reach
	// the server at all while the certificate is one it does not trust.
	STSDuration time.Duration `mapstructure:"sts_duration"`
	// STSPort is the TLS port clients are sent to; 0 is listen.tls's port
	// (set it when a proxy or NAT shows another).
	STSPort int `mapstructure:"sts_port"`
}

// WebSocket configures who may use the WebSocket listeners.
type WebSocket struct {
	// AllowedOrigins are the web origins whose pages may connect, besides
	// the listener's own host (the built-in page): host patterns
	// ("chat.example.com", "*.example.com"), origins with a scheme
	// ("https://kiwiirc.example.com"), or "*" for any page at all.
	AllowedOrigins []string `mapstructure:"allowed_origins"`
	// Hostnames are the host names the built-in page is served under
	// ("chat.example.com", or "chat.example.com:8443" for that port
	// only). Loopback addresses and localhost on the listener's port are
	// always allowed; the request's Host header is not believed.
	Hostnames []string `mapstructure:"hostnames"`
	// TrustedProxies are CIDRs of reverse proxies whose X-Forwarded-For
	// header names the real client, for the per-address limits and logs.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
}

// Metrics configures the operator HTTP listener (/metrics, /healthz, /readyz).
type Metrics struct {
	Listen string `mapstructure:"listen"` // "" disables it
	PProf  bool   `mapstructure:"pprof"`  // serve /debug/pprof on the same listener
}

// Log configures zerolog output.
type Log struct {
	Level  string `mapstructure:"level"`  // trace, debug, info, warn, error
	Format string `mapstructure:"format"` // auto (console on a terminal, else JSON), console, json
}

// Limits bound what one client or the whole server may use.
type Limits struct {
	MaxClients          int           `mapstructure:"max_clients"`          // concurrent connections, whole server
	MaxRooms            int           `mapstructure:"max_rooms"`            // rooms existing at once
	MaxRoomMembers      int           `mapstructure:"max_room_members"`     // members of one room
	MaxJoinedRooms      int           `mapstructure:"max_joined_rooms"`     // rooms one connection may be in
	SendQBytes          int           `mapstructure:"sendq_bytes"`          // queued output before a slow consumer is dropped
	RegistrationTimeout time.Duration `mapstructure:"registration_timeout"` // NICK/USER must finish within this
	PingInterval        time.Duration `mapstructure:"ping_interval"`        // silence before the server PINGs
	PingTimeout         time.Duration `mapstructure:"ping_timeout"`         // silence after the PING before disconnect
	FloodBurst          int           `mapstructure:"flood_burst"`          // lines a client may send at once
	FloodRate           float64       `mapstructure:"flood_rate"`           // lines per second refilled
	FloodMaxLag         time.Duration `mapstructure:"flood_max_lag"`        // fake lag beyond which the client is dropped
	MultilineMaxBytes   int           `mapstructure:"multiline_max_bytes"`  // text of one draft/multiline message
	MultilineMaxLines   int           `mapstructure:"multiline_max_lines"`  // lines of one draft/multiline message

	// Per-address limits, checked at accept. An "address" is one IPv4
	// address or one IPv6 /64, the block a single host usually gets.
	MaxConnsPerIP  int           `mapstructure:"max_conns_per_ip"` // concurrent connections from one address
	ConnRatePerIP  int           `mapstructure:"conn_rate_per_ip"` // new connections from one address per conn_rate_window (token bucket)
	ConnRateWindow time.Duration `mapstructure:"conn_rate_window"` // the window conn_rate_per_ip refills over
	Exempt         []string      `mapstructure:"exempt"`           // CIDRs or single addresses free of both per-address limits

	Monitor int `mapstructure:"monitor"` // nicks one connection may MONITOR (ISUPPORT MONITOR=)
	Whowas  int `mapstructure:"whowas"`  // entries in the WHOWAS ring of recent nicks; 0 keeps none
	// DevicesPerAccount bounds the connections one user shares (multiclient);
	// one beyond it keeps a nick of its own.
	DevicesPerAccount int `mapstructure:"devices_per_account"`
}

// History configures what rooms and private conversations remember: a
// recent ring in memory per room, and the store behind it.
type History struct {
	Size     int `mapstructure:"size"`      // events kept in memory per room
	Replay   int `mapstructure:"replay"`    // of those, messages replayed to a joiner
	MaxQuery int `mapstructure:"max_query"` // most messages one CHATHISTORY answers

	Store        string        `mapstructure:"store"`         // file (durable, under data_dir) or memory
	Sync         string        `mapstructure:"sync"`          // interval (group commit) or always (durable before delivery)
	SyncInterval time.Duration `mapstructure:"sync_interval"` // how often a group is committed; kill -9 loses about this (and the commit under way)
	MaxAge       time.Duration `mapstructure:"max_age"`       // older events are deleted; 0 keeps them
	MaxMessages  int           `mapstructure:"max_messages"`  // events kept per room or conversation; 0: no bound
	MaxMegabytes int           `mapstructure:"max_megabytes"` // the store's size, oldest events deleted beyond it; 0: no bound
}

// Rooms configures room lifetime.
type Rooms struct {
	IdleTTL time.Duration `mapstructure:"idle_ttl"` // an empty room with history lives this long
}

// Accounts configures the account store.
type Accounts struct {
	Store             string        `mapstructure:"store"`                   // file (durable, under data_dir) or memory
	RegisterEarly     bool          `mapstructure:"register_before_connect"` // REGISTER before connection registration completes
	MinPasswordLength int           `mapstructure:"min_password_length"`     // in characters
	HashMemoryKiB     int           `mapstructure:"hash_memory_kib"`         // argon2id memory per hash
	HashIterations    int           `mapstructure:"hash_iterations"`         // argon2id passes (t)
	HashParallelism   int           `mapstructure:"hash_parallelism"`        // argon2id lanes (p)
	HashWorkers       int           `mapstructure:"hash_workers"`            // hashes at once; 0 = half the CPUs (at least 1)
	HashWait          time.Duration `mapstructure:"hash_wait"`               // wait for a free worker before "try again"
	HashQueuePerIP    int           `mapstructure:"hash_queue_per_ip"`       // hashes one address may have running and queued; 0 = no bound
	RegisterPerIP     int           `mapstructure:"register_per_ip"`         // accounts one address may create per register_window; 0 = no quota
	RegisterWindow    time.Duration `mapstructure:"register_window"`         // the window register_per_ip refills over
	RegisterPerConn   int           `mapstructure:"register_per_connection"` // accounts one connection may create; 0 = no quota
	ThrottleFree      int           `mapstructure:"throttle_free"`           // failed logins from one address before its delays start
	ThrottleAccount   int           `mapstructure:"throttle_account_free"`   // failed logins for one account, all addresses together, before its delays start
	ThrottleTrust     time.Duration `mapstructure:"throttle_trust"`          // an address that logged in to an account skips that account's delays this long
	ThrottleDelay     time.Duration `mapstructure:"throttle_delay"`          // first delay, doubled per further failure
	ThrottleMaxDelay  time.Duration `mapstructure:"throttle_max_delay"`      // cap of the delay
	TokenTTL          time.Duration `mapstructure:"token_ttl"`               // a login token lives this long after its last use
	SCRAMIterations   int           `mapstructure:"scram_iterations"`        // PBKDF2 iterations of new SCRAM-SHA-256 keys
	Multiclient       bool          `mapstructure:"multiclient"`             // connections logged in to one account share its nick and rooms; the default for accounts that did not choose (NickServ SET MULTICLIENT)
}

// Cloak hides clients' addresses from each other: everyone sees
// <keyed hash>.<suffix> as a client's host, and only server operators and
// the client itself see the address (WHOIS 338/378). Changes apply to
// connections made after a reload.
type Cloak struct {
	Enabled bool `mapstructure:"enabled"`
	// Secret keys the hash; "" uses data_dir/cloak.key, created on first
	// start (or a random key per process with accounts.store memory).
	Secret string `mapstructure:"secret"`
	// Suffix follows the hash: a host name such as "ip.example.org".
	Suffix string `mapstructure:"suffix"`
	// Addresses sharing their first IPv4Prefix / IPv6Prefix bits share a
	// cloak: 32 is one per IPv4 address, 64 one per IPv6 /64 (what one
	// host usually gets, so a ban is not escaped by changing address).
	IPv4Prefix int `mapstructure:"ipv4_prefix"`
	IPv6Prefix int `mapstructure:"ipv6_prefix"`
}

// Cluster joins several livechatd nodes into one chat over NATS JetStream
// (docs/CLUSTER.md). Empty NATSURLs: a single node, nothing else changes.
type Cluster struct {
	NATSURLs string `mapstructure:"nats_urls"` // comma-separated nats:// or tls:// URLs
	NodeName string `mapstructure:"node_name"` // unique in the cluster; the host name if empty
	// Credentials is a NATS .creds file (JWT and nkey); empty: none.
	Credentials string `mapstructure:"credentials"`
	// TLSCA, TLSCert, TLSKey configure TLS to NATS: a CA to trust, and a
	// client certificate if the NATS server asks for one.
	TLSCA    string        `mapstructure:"tls_ca"`
	TLSCert  string        `mapstructure:"tls_cert"`
	TLSKey   string        `mapstructure:"tls_key"`
	LeaseTTL time.Duration `mapstructure:"lease_ttl"` // a dead node's users QUIT within this
	Replicas int           `mapstructure:"replicas"`  // JetStream replicas of streams and buckets: 1, or 3 on a 3-node NATS cluster
}

// Enabled reports whether the daemon runs as a cluster node.
func (c Cluster) Enabled() bool { return c.NATSURLs != "" }
