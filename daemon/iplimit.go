package daemon

import (
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/internal/refuse"
)

const (
	// maxIdleAddrs bounds the addresses remembered only for their rate
	// bucket (no connection open). Each costs about 100 bytes, so this is
	// a few MiB. Past it, an address that closes its last connection is
	// forgotten at once: the rate limit fails open for it rather than
	// memory growing with every address that ever connected.
	maxIdleAddrs = 1 << 16
	// maxRefusing bounds the refusals being delivered at once
	// (refuse.New).
	maxRefusing = 64
)

// Refusal reasons, the values of livechat_connections_refused_total's
// reason label.
const (
	refusedPerIP     = "per_ip"
	refusedPerIPRate = "per_ip_rate"
)

// ipLimiter enforces the per-address limits at accept:
// limits.max_conns_per_ip concurrent connections, and a token bucket of
// limits.conn_rate_per_ip new connections refilled evenly over
// limits.conn_rate_window. A token bucket rather than a sliding window
// because it needs two numbers per address instead of a timestamp per
// connection, and it still allows a client that reconnects a few times in
// a row (a flaky network, a bouncer restarting its networks).
//
// An address is an IPv4 address or an IPv6 /64: one host usually gets a
// whole /64, so limiting single IPv6 addresses would limit nothing.
// Addresses in limits.exempt are not counted at all.
//
// Limits are read from the server's current config on every call, so a
// SIGHUP applies at once; lowering a limit refuses new connections and
// drops nobody. Memory is bounded: an address is forgotten when its last
// connection closes and its bucket is full again, idle addresses are swept
// once per window, and at most maxIdleAddrs of them are kept.
//
// Safe for concurrent use.
type ipLimiter struct {
	config  func() *configs.Config
	now     func() time.Time // time.Now, or a test clock
	refuser *refuse.Refuser

	mu        sync.Mutex
	addrs     map[netip.Addr]*ipEntry
	idle      int // entries with no open connection, kept for their bucket
	lastSweep time.Time
	exemptSrc []string // the limits.exempt that exempt was parsed from
	exempt    []netip.Prefix
	http      map[netip.Addr]int // see holdHTTP
}

type ipEntry struct {
	conns  int       // open connections
	tokens float64   // connections that may still be opened now
	last   time.Time // when tokens was last brought up to date
}

// refusal says why acquire turned a connection away; the zero value means
// it did not.
type refusal struct {
	reason  string // metric label
	message string // text of the ERROR line
}

func newIPLimiter(config func() *configs.Config) *ipLimiter {
	return &ipLimiter{
		config:  config,
		now:     time.Now,
		refuser: refuse.New(maxRefusing),
		addrs:   make(map[netip.Addr]*ipEntry),
		http:    make(map[netip.Addr]int),
	}
}

// acquire counts a new connection from remote, or refuses it. The returned
// key goes to release when the connection ends; it is the zero Addr for a
// connection that was not counted (exempt, or not an IP connection), so
// release stays balanced even if limits.exempt changes in between.
func (l *ipLimiter) acquire(remote net.Addr) (netip.Addr, refusal) {
	ip, ok := clientIP(remote)
	if !ok {
		return netip.Addr{}, refusal{}
	}
	lim := &l.config().Limits
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isExempt(ip, lim.Exempt) {
		return netip.Addr{}, refusal{}
	}
	now := l.now()
	l.sweepIfDue(now, lim)
	key := limitKey(ip)
	e := l.addrs[key]
	if e == nil {
		// A new address always has a full bucket and no connections, and
		// every limit is at least 1, so it is admitted.
		l.addrs[key] = &ipEntry{conns: 1, tokens: float64(lim.ConnRatePerIP) - 1, last: now}
		return key, refusal{}
	}
	if e.conns >= lim.MaxConnsPerIP {
		return netip.Addr{}, refusal{refusedPerIP, "Too many connections from your address"}
	}
	rate := refillRate(lim)
	e.refill(now, lim.ConnRatePerIP, rate)
	if e.tokens < 1 {
		wait := math.Ceil((1 - e.tokens) / rate)
		return netip.Addr{}, refusal{refusedPerIPRate, "Connecting too fast, try again in " + strconv.Itoa(int(max(wait, 1))) + "s"}
	}
	e.tokens--
	if e.conns == 0 {
		l.idle--
	}
	e.conns++
	return key, refusal{}
}

// release uncounts a connection acquire admitted under key.
func (l *ipLimiter) release(key netip.Addr) {
	if !key.IsValid() {
		return
	}
	lim := &l.config().Limits
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.addrs[key]
	if e == nil || e.conns <= 0 {
		return // unbalanced release; nothing sensible to undo
	}
	e.conns--
	if e.conns > 0 {
		return
	}
	now := l.now()
	e.refill(now, lim.ConnRatePerIP, refillRate(lim))
	if e.full(lim) || l.idle >= maxIdleAddrs {
		delete(l.addrs, key)
		return
	}
	l.idle++
}

// holdHTTP counts a WebSocket listener's socket that is still speaking
// HTTP (a page load, an idle keep-alive, an upgrade in progress) against
// limits.max_conns_per_ip, or refuses it. These are counted apart from IRC
// connections, which acquire counts once upgraded, so a browser's chat
// connection is never counted twice; without the count one address could
// hold every file descriptor with sockets that never upgrade. The rate
// limit is left to the upgrade: a page load opens several sockets at once.
// release, called once, uncounts it; exempt addresses are not counted.
func (l *ipLimiter) holdHTTP(remote net.Addr) (release func(), ok bool) {
	ip, ok := clientIP(remote)
	if !ok {
		return func() {}, true
	}
	lim := &l.config().Limits
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isExempt(ip, lim.Exempt) {
		return func() {}, true
	}
	key := limitKey(ip)
	if l.http[key] >= lim.MaxConnsPerIP {
		return nil, false
	}
	l.http[key]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.http[key]--; l.http[key] <= 0 {
			delete(l.http, key)
		}
	}, true
}

// sweepIfDue forgets idle addresses whose bucket has refilled. It runs at
// most once per conn_rate_window, when a bucket can have refilled from
// empty, so its cost is spread over at least that much time.
func (l *ipLimiter) sweepIfDue(now time.Time, lim *configs.Limits) {
	if now.Sub(l.lastSweep) < lim.ConnRateWindow {
		return
	}
	l.lastSweep = now
	rate := refillRate(lim)
	for key, e := range l.addrs {
		if e.conns > 0 {
			continue
		}
		e.refill(now, lim.ConnRatePerIP, rate)
		if e.full(lim) {
			delete(l.addrs, key)
			l.idle--
		}
	}
}

// isExempt reports whether ip is in limits.exempt, parsing the list again
// only when a reload changed it.
func (l *ipLimiter) isExempt(ip netip.Addr, list []string) bool {
	if len(list) == 0 {
		return false
	}
	if !slices.Equal(list, l.exemptSrc) {
		// The config was validated, so this cannot fail; if it somehow
		// did, exempting nobody is the safe reading.
		l.exempt, _ = configs.Limits{Exempt: list}.ExemptPrefixes()
		l.exemptSrc = list
	}
	for _, p := range l.exempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// tracked returns how many address entries the limiter remembers, for the
// livechat_ip_limit_addresses gauge and tests.
func (l *ipLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.addrs) + len(l.http)
}

func (e *ipEntry) refill(now time.Time, capacity int, rate float64) {
	if d := now.Sub(e.last); d > 0 {
		e.tokens = min(e.tokens+d.Seconds()*rate, float64(capacity))
	}
	// A lowered conn_rate_per_ip applies to buckets filled under the old one.
	e.tokens = min(e.tokens, float64(capacity))
	e.last = now
}

func (e *ipEntry) full(lim *configs.Limits) bool {
	return e.tokens >= float64(lim.ConnRatePerIP)
}

// refillRate is tokens per second: the whole bucket over the window.
func refillRate(lim *configs.Limits) float64 {
	return float64(lim.ConnRatePerIP) / lim.ConnRateWindow.Seconds()
}

// clientIP returns the plain IP of a connection's remote end: IPv4-mapped
// IPv6 addresses (from a dual-stack listener) as IPv4, without an IPv6
// zone. ok is false for transports without an IP, which are not limited.
func clientIP(remote net.Addr) (netip.Addr, bool) {
	var ip netip.Addr
	switch a := remote.(type) {
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	case nil:
		return netip.Addr{}, false
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}, false
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	return ip, ip.IsValid()
}

// limitKey is the address a connection counts against: the IPv4 address,
// or the IPv6 /64 it is in.
func limitKey(ip netip.Addr) netip.Addr {
	if ip.Is4() {
		return ip
	}
	p, _ := ip.Prefix(64)
	return p.Addr()
}

// refuse sends conn `ERROR :message` and closes it in the background
// (refuse.Refuser.Refuse).
func (l *ipLimiter) refuse(conn net.Conn, message string) {
	l.refuser.Refuse(conn, []byte("ERROR :"+message+"\r\n"))
}
