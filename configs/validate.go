package configs

import (
	"errors"
	"fmt"
	"math"
	"net"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Validate checks every field. All problems are reported at once, so an
// operator fixes the file in one go, on one line such as
// `config: limits.max_rooms: must be at least 1 (got 0)`; several are
// joined with "; ".
func (c *Config) Validate() error {
	var p problems

	p.word("server_name", c.ServerName)
	p.word("network", c.Network)
	if c.Accounts.Store == "file" && c.DataDir == "" {
		p.add("data_dir", `must not be empty when accounts.store is "file"`)
	}
	if c.History.Store == "file" && c.DataDir == "" {
		p.add("data_dir", `must not be empty when history.store is "file"`)
	}
	p.positive("shutdown_timeout", c.ShutdownTimeout)

	p.addr("listen.tcp", c.Listen.TCP)
	p.addr("listen.tls", c.Listen.TLS)
	p.addr("listen.websocket", c.Listen.WebSocket)
	p.addr("listen.websocket_tls", c.Listen.WebSocketTLS)
	p.addr("metrics.listen", c.Metrics.Listen)
	if c.Listen.TCP == "" && c.Listen.TLS == "" && c.Listen.WebSocket == "" && c.Listen.WebSocketTLS == "" {
		p.add("listen.tcp", "at least one of listen.tcp, listen.tls, listen.websocket and listen.websocket_tls must be set")
	}
	for _, key := range []string{"listen.tls", "listen.websocket_tls"} {
		if c.Value(key) == "" {
			continue
		}
		if c.Listen.TLSCert == "" {
			p.add("listen.tls_cert", "required when "+key+" is set")
		}
		if c.Listen.TLSKey == "" {
			p.add("listen.tls_key", "required when "+key+" is set")
		}
		break
	}
	if c.Listen.STSDuration < 0 {
		p.add("listen.sts_duration", "must not be negative (0 turns STS off)")
	}
	if c.Listen.STSPort < 0 || c.Listen.STSPort > 65535 {
		p.add("listen.sts_port", fmt.Sprintf("must be a port number, or 0 for listen.tls's port (got %d)", c.Listen.STSPort))
	}
	if c.Listen.STSDuration > 0 && c.Listen.STSPort == 0 && c.Listen.TLS == "" {
		p.add("listen.sts_duration", "needs listen.tls (or listen.sts_port): STS sends clients to the TLS port")
	}
	// Two listeners on one address fail at bind time with a less helpful
	// error; port 0 picks a fresh port each time, so it cannot clash.
	listeners := []string{"listen.tcp", "listen.tls", "listen.websocket", "listen.websocket_tls", "metrics.listen"}
	for i, a := range listeners {
		for _, b := range listeners[:i] {
			p.distinct(a, c.Value(a), b, c.Value(b))
		}
	}
	for _, o := range c.WebSocket.AllowedOrigins {
		if _, err := path.Match(strings.ToLower(o), ""); err != nil || o == "" {
			p.add("websocket.allowed_origins", fmt.Sprintf("%q is not a host or origin pattern such as \"chat.example.com\", \"*.example.com\", \"https://example.com\" or \"*\"", o))
		}
	}
	for _, h := range c.WebSocket.Hostnames {
		if !validHostname(h) {
			p.add("websocket.hostnames", fmt.Sprintf("%q is not a host name such as \"chat.example.com\" or \"chat.example.com:8443\" (no scheme, no wildcard)", h))
		}
	}
	if _, err := c.WebSocket.TrustedProxyPrefixes(); err != nil {
		p.add("websocket.trusted_proxies", err.Error())
	}

	p.oneOf("log.level", c.Log.Level, "trace", "debug", "info", "warn", "error")
	p.oneOf("log.format", c.Log.Format, "auto", "console", "json")

	l := c.Limits
	p.atLeast("limits.max_clients", l.MaxClients, 1)
	p.atLeast("limits.max_rooms", l.MaxRooms, 1)
	p.atLeast("limits.max_room_members", l.MaxRoomMembers, 1)
	p.atLeast("limits.max_joined_rooms", l.MaxJoinedRooms, 1)
	// Below a few KiB a single burst of long lines would drop a healthy client.
	p.atLeast("limits.sendq_bytes", l.SendQBytes, 4096)
	p.positive("limits.registration_timeout", l.RegistrationTimeout)
	p.positive("limits.ping_interval", l.PingInterval)
	p.positive("limits.ping_timeout", l.PingTimeout)
	p.atLeast("limits.flood_burst", l.FloodBurst, 1)
	if !(l.FloodRate > 0) || math.IsInf(l.FloodRate, 0) {
		p.add("limits.flood_rate", fmt.Sprintf("must be a number greater than 0 (got %v)", l.FloodRate))
	}
	p.positive("limits.flood_max_lag", l.FloodMaxLag)
	p.atLeast("limits.multiline_max_bytes", l.MultilineMaxBytes, 512)
	p.atLeast("limits.multiline_max_lines", l.MultilineMaxLines, 2)
	p.atLeast("limits.max_conns_per_ip", l.MaxConnsPerIP, 1)
	p.atLeast("limits.conn_rate_per_ip", l.ConnRatePerIP, 1)
	p.positive("limits.conn_rate_window", l.ConnRateWindow)
	if _, err := l.ExemptPrefixes(); err != nil {
		p.add("limits.exempt", err.Error())
	}
	p.atLeast("limits.monitor", l.Monitor, 1)
	p.atLeast("limits.whowas", l.Whowas, 0)
	p.atLeast("limits.devices_per_account", l.DevicesPerAccount, 1)

	p.atLeast("history.size", c.History.Size, 0)
	p.atLeast("history.replay", c.History.Replay, 0)
	if c.History.Replay > c.History.Size && c.History.Size >= 0 {
		p.add("history.replay", fmt.Sprintf("must be at most history.size (%d) (got %d)", c.History.Size, c.History.Replay))
	}

	p.atLeast("history.max_query", c.History.MaxQuery, 1)
	h := c.History
	p.oneOf("history.store", h.Store, "file", "memory")
	p.oneOf("history.sync", h.Sync, "interval", "always")
	p.positive("history.sync_interval", h.SyncInterval)
	if h.SyncInterval > 10*time.Second {
		p.add("history.sync_interval", fmt.Sprintf("must be at most 10s: kill -9 loses what arrived in the last interval (got %s)", h.SyncInterval))
	}
	if h.MaxAge < 0 {
		p.add("history.max_age", fmt.Sprintf("must be 0 (keep) or positive (got %s)", h.MaxAge))
	}
	p.atLeast("history.max_messages", h.MaxMessages, 0)
	p.atLeast("history.max_megabytes", h.MaxMegabytes, 0)
	if cl := c.Cluster; cl.Enabled() {
		if cl.LeaseTTL < time.Second || cl.LeaseTTL%time.Second != 0 {
			p.add("cluster.lease_ttl", fmt.Sprintf("must be whole seconds, at least 1s (got %s)", cl.LeaseTTL))
		}
		if cl.Replicas != 1 && cl.Replicas != 3 && cl.Replicas != 5 {
			p.add("cluster.replicas", fmt.Sprintf("must be 1, 3 or 5 (got %d)", cl.Replicas))
		}
		if (cl.TLSCert == "") != (cl.TLSKey == "") {
			p.add("cluster.tls_cert", "tls_cert and tls_key go together")
		}
	}
	for _, op := range c.Operators {
		name, hash, ok := strings.Cut(op, ":")
		if !ok || name == "" || strings.ContainsAny(name, " ,") || !strings.HasPrefix(hash, "$argon2id$") {
			// Only the name: a wrong entry is often a password pasted in
			// place of its hash, and this error goes to the log.
			p.add("operators", fmt.Sprintf("entries are name:$argon2id$... (from livechatd accounts hash); the entry for %q is not (its value is not shown)", truncateForError(name)))
		}
	}

	p.positive("rooms.idle_ttl", c.Rooms.IdleTTL)
	p.oneOf("accounts.store", c.Accounts.Store, "file", "memory")
	a := c.Accounts
	p.atLeast("accounts.min_password_length", a.MinPasswordLength, 1)
	if a.MinPasswordLength > 256 {
		p.add("accounts.min_password_length", fmt.Sprintf("must be at most 256 (got %d)", a.MinPasswordLength))
	}
	p.atLeast("accounts.hash_iterations", a.HashIterations, 1)
	p.atLeast("accounts.hash_parallelism", a.HashParallelism, 1)
	if a.HashParallelism > 255 {
		p.add("accounts.hash_parallelism", fmt.Sprintf("must be at most 255 (got %d)", a.HashParallelism))
	}
	if a.HashMemoryKiB < 8*max(a.HashParallelism, 1) {
		p.add("accounts.hash_memory_kib", fmt.Sprintf("must be at least 8 per lane (%d) (got %d)", 8*max(a.HashParallelism, 1), a.HashMemoryKiB))
	}
	p.atLeast("accounts.hash_workers", a.HashWorkers, 0)
	p.positive("accounts.hash_wait", a.HashWait)
	p.atLeast("accounts.hash_queue_per_ip", a.HashQueuePerIP, 0)
	p.atLeast("accounts.register_per_ip", a.RegisterPerIP, 0)
	p.positive("accounts.register_window", a.RegisterWindow)
	p.atLeast("accounts.register_per_connection", a.RegisterPerConn, 0)
	p.atLeast("accounts.throttle_free", a.ThrottleFree, 0)
	p.atLeast("accounts.throttle_account_free", a.ThrottleAccount, 0)
	p.positive("accounts.token_ttl", a.TokenTTL)
	p.atLeast("accounts.scram_iterations", a.SCRAMIterations, 4096) // RFC 7677's floor
	p.positive("accounts.throttle_trust", a.ThrottleTrust)
	p.positive("accounts.throttle_delay", a.ThrottleDelay)
	p.positive("accounts.throttle_max_delay", a.ThrottleMaxDelay)

	cl := c.Cloak
	if cl.Secret != "" && len(cl.Secret) < 16 {
		p.add("cloak.secret", fmt.Sprintf("must be at least 16 characters, or empty to use data_dir/cloak.key (got %d)", len(cl.Secret)))
	}
	if !validHostSuffix(cl.Suffix) {
		p.add("cloak.suffix", fmt.Sprintf("must be a host name: labels of letters, digits and '-' joined by dots, like \"ip.example.org\" (got %q)", truncateForError(cl.Suffix)))
	}
	if cl.IPv4Prefix < 8 || cl.IPv4Prefix > 32 {
		p.add("cloak.ipv4_prefix", fmt.Sprintf("must be 8 to 32 bits (got %d)", cl.IPv4Prefix))
	}
	if cl.IPv6Prefix < 16 || cl.IPv6Prefix > 128 {
		p.add("cloak.ipv6_prefix", fmt.Sprintf("must be 16 to 128 bits (got %d)", cl.IPv6Prefix))
	}

	return p.err()
}

// restartKeys are the keys that only take effect on restart: listeners
// are bound, the account store opened, the log writer chosen, the operator
// mux built and rooms created once, at start.
var restartKeys = []string{
	"server_name", // rooms stamp it on the lines they send
	"data_dir",
	"listen.tcp",
	"listen.tls",
	"listen.websocket",
	"listen.websocket_tls",
	"metrics.listen",
	"metrics.pprof",
	"log.format",
	"history.size",
	"history.replay",
	"history.store",
	"history.sync",
	"history.sync_interval",
	"history.max_age",
	"history.max_messages",
	"history.max_megabytes",
	"accounts.min_password_length",
	"accounts.hash_memory_kib",
	"accounts.hash_iterations",
	"accounts.hash_parallelism",
	"accounts.hash_workers",
	"accounts.hash_wait",
	"accounts.hash_queue_per_ip",
	"accounts.register_per_ip",
	"accounts.register_window",
	"accounts.throttle_free",
	"accounts.throttle_account_free",
	"accounts.throttle_trust",
	"accounts.throttle_delay",
	"accounts.throttle_max_delay",
	"rooms.idle_ttl",
	"accounts.store",
	"cluster.nats_urls",
	"cluster.node_name",
	"cluster.credentials",
	"cluster.tls_ca",
	"cluster.tls_cert",
	"cluster.tls_key",
	"cluster.lease_ttl",
	"cluster.replicas",
}

// Unreloadable lists the keys whose values differ between old and c but
// only take effect on restart, so a SIGHUP reload can report them; it then
// keeps the old values with KeepRestartOnly.
func (c *Config) Unreloadable(old *Config) []string {
	if old == nil {
		return nil
	}
	var keys []string
	for _, key := range restartKeys {
		was, now := old.Value(key), c.Value(key)
		if key == "data_dir" {
			// "./data" and "data" are the same directory; don't cry wolf.
			was, now = filepath.Clean(was), filepath.Clean(now)
		}
		if was != now {
			keys = append(keys, key)
		}
	}
	return keys
}

// KeepRestartOnly copies every restart-only key from old into c, so a
// reloaded config describes what is actually running.
func (c *Config) KeepRestartOnly(old *Config) {
	for _, key := range restartKeys {
		dst, _ := lookupKey(c, key)
		src, _ := lookupKey(old, key)
		dst.Set(src)
	}
}

// Value returns key's value as text ("" for an unknown key), for logs.
func (c *Config) Value(key string) string {
	f, ok := lookupKey(c, key)
	if !ok {
		return ""
	}
	if f.Type() == stringsType {
		return strings.Join(f.Interface().([]string), ",")
	}
	return fmt.Sprint(f.Interface())
}

// Changed lists the keys whose values differ between old and c, in
// struct order, so a reload can log what it changed.
func (c *Config) Changed(old *Config) []string {
	if old == nil {
		return Keys()
	}
	var keys []string
	walk(reflect.ValueOf(c).Elem(), "", func(key string, f reflect.Value) {
		was, _ := lookupKey(old, key)
		if !reflect.DeepEqual(was.Interface(), f.Interface()) {
			keys = append(keys, key)
		}
	})
	return keys
}

// problems collects "key: message" entries for Validate.
type problems []string

func (p *problems) add(key, msg string) { *p = append(*p, key+": "+msg) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return errors.New("config: " + strings.Join(p, "; "))
}

// word checks a name that goes into protocol lines, where a space would
// split it into two parameters.
func (p *problems) word(key, s string) {
	switch {
	case s == "":
		p.add(key, "must not be empty")
	case strings.ContainsFunc(s, unicode.IsSpace):
		p.add(key, fmt.Sprintf("must not contain spaces (got %q)", s))
	}
}

func (p *problems) oneOf(key, s string, allowed ...string) {
	if !slices.Contains(allowed, s) {
		p.add(key, fmt.Sprintf("must be one of %s (got %q)", strings.Join(allowed, ", "), s))
	}
}

func (p *problems) atLeast(key string, n, least int) {
	if n < least {
		p.add(key, fmt.Sprintf("must be at least %d (got %d)", least, n))
	}
}

func (p *problems) positive(key string, d time.Duration) {
	if d <= 0 {
		p.add(key, fmt.Sprintf("must be greater than 0, like \"30s\" (got %s)", d))
	}
}

// addr checks a listen address; "" means disabled. The port must be
// numeric so a typo is caught here rather than by a service-name lookup.
func (p *problems) addr(key, s string) {
	if s == "" {
		return
	}
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		n, perr := strconv.Atoi(port)
		if perr == nil && n >= 0 && n <= 65535 {
			return
		}
	}
	p.add(key, fmt.Sprintf("must be host:port with a port 0-65535, like \"127.0.0.1:6667\" or \":6667\" (got %q)", s))
}

func (p *problems) distinct(key, s, otherKey, other string) {
	if s == "" || s != other {
		return
	}
	if _, port, err := net.SplitHostPort(s); err == nil && port == "0" {
		return
	}
	p.add(key, fmt.Sprintf("must differ from %s (both %q)", otherKey, s))
}

// validHostSuffix reports whether s can end a host in a nick!user@host
// prefix: DNS labels of ASCII letters, digits and inner hyphens.
func validHostSuffix(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// truncateForError keeps an invalid value short in the one-line error; it
// may hold a password hash.
func truncateForError(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}

// validHostname reports whether h is a host name or address, with or
// without a port: what a page's origin may name, without scheme or path.
func validHostname(h string) bool {
	host := h
	if hh, port, err := net.SplitHostPort(h); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return false
		}
		host = hh
	}
	if net.ParseIP(strings.Trim(host, "[]")) != nil {
		return true
	}
	if host == "" {
		return false
	}
	for _, c := range host {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
