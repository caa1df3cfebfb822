package daemon

import (
	"bufio"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/configs"
)

// limiterRig is an ipLimiter on a test clock and a config the test swaps
// the way SIGHUP does.
type limiterRig struct {
	t   *testing.T
	l   *ipLimiter
	cfg atomic.Pointer[configs.Config]
	now time.Time
}

func newLimiterRig(t *testing.T, configure func(*configs.Limits)) *limiterRig {
	r := &limiterRig{t: t, now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	r.set(configure)
	r.l = newIPLimiter(r.cfg.Load)
	r.l.now = func() time.Time { return r.now }
	return r
}

// set installs a new config built from the defaults, as a reload would.
func (r *limiterRig) set(configure func(*configs.Limits)) {
	r.t.Helper()
	c := configs.Default()
	if configure != nil {
		configure(&c.Limits)
	}
	if err := c.Validate(); err != nil {
		r.t.Fatal(err)
	}
	r.cfg.Store(&c)
}

func (r *limiterRig) advance(d time.Duration) { r.now = r.now.Add(d) }

func tcpAddr(s string) net.Addr {
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(s), 40000))
}

// admit acquires for ip and fails the test if it is refused.
func (r *limiterRig) admit(ip string) netip.Addr {
	r.t.Helper()
	key, no := r.l.acquire(tcpAddr(ip))
	if no.reason != "" {
		r.t.Fatalf("%s refused (%s: %s), want admitted", ip, no.reason, no.message)
	}
	return key
}

// refused acquires for ip and fails the test unless it is refused for reason.
func (r *limiterRig) refused(ip, reason string) refusal {
	r.t.Helper()
	key, no := r.l.acquire(tcpAddr(ip))
	if no.reason != reason {
		r.t.Fatalf("%s: got refusal %+v (key %v), want reason %q", ip, no, key, reason)
	}
	return no
}

func TestIPLimitConcurrent(t *testing.T) {
	r := newLimiterRig(t, func(l *configs.Limits) { l.MaxConnsPerIP = 3 })
	var keys []netip.Addr
	for range 3 {
		keys = append(keys, r.admit("192.0.2.1"))
	}
	no := r.refused("192.0.2.1", refusedPerIP)
	if no.message != "Too many connections from your address" {
		t.Errorf("message %q", no.message)
	}
	r.admit("192.0.2.2") // another address is not affected
	r.l.release(keys[0])
	keys[0] = r.admit("192.0.2.1")
	r.refused("192.0.2.1", refusedPerIP)
}

func TestIPLimitRate(t *testing.T) {
	// 5 per 10s: a burst of 5, then one every 2s.
	r := newLimiterRig(t, func(l *configs.Limits) { l.ConnRatePerIP = 5; l.ConnRateWindow = 10 * time.Second })
	for range 5 {
		r.l.release(r.admit("192.0.2.1"))
	}
	no := r.refused("192.0.2.1", refusedPerIPRate)
	if no.message != "Connecting too fast, try again in 2s" {
		t.Errorf("message %q", no.message)
	}
	r.advance(1500 * time.Millisecond)
	if no := r.refused("192.0.2.1", refusedPerIPRate); no.message != "Connecting too fast, try again in 1s" {
		t.Errorf("message %q", no.message)
	}
	r.advance(500 * time.Millisecond)
	r.l.release(r.admit("192.0.2.1"))
	r.refused("192.0.2.1", refusedPerIPRate)
	// Refused attempts cost nothing: after a full window the burst is back.
	r.advance(10 * time.Second)
	for range 5 {
		r.l.release(r.admit("192.0.2.1"))
	}
	r.refused("192.0.2.1", refusedPerIPRate)
}

func TestIPLimitIPv6Per64(t *testing.T) {
	r := newLimiterRig(t, func(l *configs.Limits) { l.MaxConnsPerIP = 2 })
	r.admit("2001:db8:1:2::1")
	r.admit("2001:db8:1:2:ffff:ffff:ffff:ffff") // same /64
	r.refused("2001:db8:1:2::99", refusedPerIP)
	r.admit("2001:db8:1:3::1") // next /64
	// Zones do not make new addresses.
	r.admit("fe80::1%eth0")
	r.admit("fe80::2%eth1")
	r.refused("fe80::3", refusedPerIP)
}

func TestIPLimitMappedIPv4(t *testing.T) {
	r := newLimiterRig(t, func(l *configs.Limits) { l.MaxConnsPerIP = 1 })
	key := r.admit("::ffff:192.0.2.1")
	if key != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("key %v, want the plain IPv4 address", key)
	}
	r.refused("192.0.2.1", refusedPerIP)
}

func TestIPLimitExempt(t *testing.T) {
	r := newLimiterRig(t, func(l *configs.Limits) { l.MaxConnsPerIP = 1; l.Exempt = []string{"10.0.0.0/8", "2001:db8::/32"} })
	for range 50 {
		if key := r.admit("10.1.2.3"); key.IsValid() {
			t.Fatalf("exempt address counted under %v", key)
		}
		r.admit("2001:db8::7")
	}
	held := r.admit("192.0.2.1")
	r.refused("192.0.2.1", refusedPerIP)

	// A reload that exempts the address lifts the limit at once, and
	// releasing the connection admitted before it stays balanced.
	r.set(func(l *configs.Limits) { l.MaxConnsPerIP = 1; l.Exempt = []string{"192.0.2.0/24"} })
	r.admit("192.0.2.1")
	r.admit("10.1.2.3") // no longer exempt, first connection
	r.refused("10.1.2.3", refusedPerIP)
	r.l.release(held)
	r.set(func(l *configs.Limits) { l.MaxConnsPerIP = 1 })
	r.admit("192.0.2.1")
}

// Limits come from the config in force at each call: a SIGHUP that lowers
// them refuses new connections without dropping anyone.
func TestIPLimitLiveConfig(t *testing.T) {
	r := newLimiterRig(t, func(l *configs.Limits) { l.MaxConnsPerIP = 4 })
	keys := []netip.Addr{r.admit("192.0.2.1"), r.admit("192.0.2.1"), r.admit("192.0.2.1")}
	r.set(func(l *configs.Limits) { l.MaxConnsPerIP = 2 })
	r.refused("192.0.2.1", refusedPerIP)
	r.l.release(keys[0])
	r.refused("192.0.2.1", refusedPerIP) // 2 open, limit 2
	r.l.release(keys[1])
	r.admit("192.0.2.1")

	// Lowering the rate caps buckets filled under the old one: 26 tokens
	// left become 1.
	r.set(func(l *configs.Limits) { l.ConnRatePerIP = 1; l.ConnRateWindow = time.Minute })
	r.admit("192.0.2.1")
	if no := r.refused("192.0.2.1", refusedPerIPRate); no.message != "Connecting too fast, try again in 60s" {
		t.Errorf("message %q", no.message)
	}
}

// Memory is bounded: an address is forgotten when its last connection
// closes with a full bucket, or at the first sweep after it refills.
func TestIPLimitForgets(t *testing.T) {
	r := newLimiterRig(t, func(l *configs.Limits) { l.ConnRatePerIP = 10; l.ConnRateWindow = 10 * time.Second })
	a := r.admit("192.0.2.1")
	b := r.admit("192.0.2.2")
	r.advance(time.Second) // a's bucket refills by 1 = full again
	r.l.release(a)
	if n := r.l.tracked(); n != 1 {
		t.Fatalf("tracked %d after a full bucket's last release, want 1", n)
	}
	r.l.release(b)
	if n := r.l.tracked(); n != 0 {
		t.Fatalf("tracked %d, want 0", n)
	}

	// Addresses that spent tokens are remembered until they refill.
	for i := range 200 {
		ip := netip.AddrFrom4([4]byte{198, 51, byte(i / 256), byte(i)}).String()
		r.l.release(r.admit(ip))
		r.l.release(r.admit(ip))
	}
	if n := r.l.tracked(); n != 200 {
		t.Fatalf("tracked %d, want 200 idle addresses", n)
	}
	r.advance(10 * time.Second)
	r.l.release(r.admit("203.0.113.1")) // the next acquire after a window sweeps
	if n := r.l.tracked(); n != 1 {
		t.Fatalf("tracked %d after the sweep, want 1 (the newest)", n)
	}
	if r.l.idle != 1 {
		t.Fatalf("idle count %d, want 1", r.l.idle)
	}
}

func TestIPLimitIdleBound(t *testing.T) {
	r := newLimiterRig(t, nil)
	r.l.idle = maxIdleAddrs // as if the table were full of idle addresses
	r.l.release(r.admit("192.0.2.1"))
	if n := r.l.tracked(); n != 0 {
		t.Fatalf("tracked %d, want the address forgotten when the idle table is full", n)
	}
}

func TestIPLimitNonIP(t *testing.T) {
	r := newLimiterRig(t, func(l *configs.Limits) { l.MaxConnsPerIP = 1 })
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	for range 3 {
		key, no := r.l.acquire(a.RemoteAddr())
		if no.reason != "" || key.IsValid() {
			t.Fatalf("pipe: key %v refusal %+v, want not counted", key, no)
		}
		r.l.release(key)
	}
	if key, no := r.l.acquire(nil); no.reason != "" || key.IsValid() {
		t.Fatalf("nil addr: key %v refusal %+v", key, no)
	}
	r.l.release(netip.Addr{})
	r.l.release(netip.MustParseAddr("192.0.2.9")) // never acquired: ignored
}

// refuse delivers the ERROR line even when the client has already sent
// input, and does not block its caller.
func TestRefuseDeliversError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.Write([]byte("NICK early\r\nUSER early 0 * :early\r\n"))
	srvConn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	l := newIPLimiter(func() *configs.Config { c := configs.Default(); return &c })
	l.refuse(srvConn, "Too many connections from your address")
	client.SetReadDeadline(time.Now().Add(waitFor))
	line, err := bufio.NewReader(client).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ERROR :Too many connections from your address" {
		t.Fatalf("got %q, %v", line, err)
	}
}
