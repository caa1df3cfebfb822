// Package bans keeps the server-wide bans operators set: KLINEs (a
// nick!user@host mask, matched against the cloaked and the real address,
// or an account as $a:name) and DLINEs (an address or a range of them),
// each with a reason and an optional expiry. Set is what the daemon
// matches against; a Store keeps them across restarts (File in data_dir
// on a single node, the LIVECHAT_BANS KV bucket in a cluster, see
// daemon/jsstore).
package bans

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/livechat/livechat/protocol"
)

// The kinds of ban.
const (
	KLine = "K" // by mask or account, checked when a connection registers
	DLine = "D" // by address, checked when a connection is accepted
)

// Ban is one server ban.
type Ban struct {
	Kind    string // KLine or DLine
	Mask    string // as NormalizeK or NormalizeD left it
	Reason  string
	SetBy   string
	SetAt   time.Time
	Expires time.Time `json:",omitempty"` // zero: never
}

// Key names the ban in a Set and a Store: its kind and its mask, folded.
func (b Ban) Key() string { return Key(b.Kind, b.Mask) }

// Key is Ban.Key for a kind and a normalized mask.
func Key(kind, mask string) string { return kind + " " + strings.ToLower(mask) }

// Expired reports whether the ban has lapsed at now.
func (b Ban) Expired(now time.Time) bool { return !b.Expires.IsZero() && !now.Before(b.Expires) }

// ErrBadMask is a mask NormalizeK or NormalizeD cannot use.
var ErrBadMask = errors.New("bans: bad mask")

// NormalizeK completes a KLINE mask as room bans are completed: "bob" ->
// "bob!*@*", "*@host" or "user@host" -> "*!user@host"; "$a:account"
// stays. A mask matching everyone is refused: it would ban the server.
func NormalizeK(mask string) (string, error) {
	if strings.ContainsAny(mask, " ,\x00\r\n") || mask == "" {
		return "", ErrBadMask
	}
	if acct, ok := strings.CutPrefix(mask, "$a:"); ok {
		if acct == "" || strings.Trim(acct, "*?") == "" {
			return "", ErrBadMask
		}
		return mask, nil
	}
	mask = protocol.CompleteMask(mask)
	if strings.Trim(mask, "*?!@") == "" {
		return "", ErrBadMask
	}
	return mask, nil
}

// NormalizeD parses a DLINE target: an address (a single-address range)
// or a CIDR range, returned in canonical form. Ranges wider than /8 for
// IPv4 or /16 for IPv6 are refused: they would ban half the world.
func NormalizeD(target string) (string, error) {
	p, err := parseRange(target)
	if err != nil {
		return "", ErrBadMask
	}
	if p.Addr().Is4() && p.Bits() < 8 || !p.Addr().Is4() && p.Bits() < 16 {
		return "", ErrBadMask
	}
	return p.String(), nil
}

func parseRange(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked()
		if !p.IsValid() {
			return netip.Prefix{}, ErrBadMask
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// unmapBits is what an IPv4-mapped prefix loses when unmapped.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// Who is a connection as bans see it.
type Who struct {
	Nick, User, Host, IP, Account string // Host: what others see (a cloak); IP: the real address
}

// Set is the bans in force, indexed for matching. Safe for concurrent use.
type Set struct {
	mu     sync.RWMutex
	bans   map[string]Ban
	ranges map[string]netip.Prefix // the DLINEs' parsed masks, by key
}

// NewSet returns a Set holding bs.
func NewSet(bs []Ban) *Set {
	s := &Set{bans: make(map[string]Ban), ranges: make(map[string]netip.Prefix)}
	for _, b := range bs {
		s.Put(b)
	}
	return s
}

// Put adds b, or replaces the ban with its key.
func (s *Set) Put(b Ban) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bans[b.Key()] = b
	if b.Kind == DLine {
		if p, err := parseRange(b.Mask); err == nil {
			s.ranges[b.Key()] = p
		}
	}
}

// Delete removes the ban with key, reporting whether there was one.
func (s *Set) Delete(key string) (Ban, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bans[key]
	delete(s.bans, key)
	delete(s.ranges, key)
	return b, ok
}

// Get returns the ban with key.
func (s *Set) Get(key string) (Ban, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.bans[key]
	return b, ok
}

// List returns the bans of kind in force at now, oldest first, and the
// keys of those that have expired, for the caller to forget.
func (s *Set) List(kind string, now time.Time) (live []Ban, expired []string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k, b := range s.bans {
		switch {
		case b.Expired(now):
			expired = append(expired, k)
		case b.Kind == kind:
			live = append(live, b)
		}
	}
	slices.SortFunc(live, func(a, b Ban) int { return a.SetAt.Compare(b.SetAt) })
	return live, expired
}

// Addr returns the DLINE in force at now that covers ip.
func (s *Set) Addr(ip netip.Addr, now time.Time) (Ban, bool) {
	if !ip.IsValid() {
		return Ban{}, false
	}
	ip = ip.Unmap()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k, p := range s.ranges {
		if b := s.bans[k]; p.Contains(ip) && !b.Expired(now) {
			return b, true
		}
	}
	return Ban{}, false
}

// Match returns the ban in force at now that covers w: a DLINE of its
// address or a KLINE of its masks or account.
func (s *Set) Match(w Who, now time.Time) (Ban, bool) {
	if ip, err := netip.ParseAddr(w.IP); err == nil {
		if b, ok := s.Addr(ip, now); ok {
			return b, true
		}
	}
	shown := w.Nick + "!" + w.User + "@" + w.Host
	real := w.Nick + "!" + w.User + "@" + w.IP
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, b := range s.bans {
		if b.Kind != KLine || b.Expired(now) {
			continue
		}
		if acct, ok := strings.CutPrefix(b.Mask, "$a:"); ok {
			if w.Account != "" && protocol.MatchMask(acct, w.Account) {
				return b, true
			}
			continue
		}
		if protocol.MatchMask(b.Mask, shown) || w.IP != "" && protocol.MatchMask(b.Mask, real) {
			return b, true
		}
	}
	return Ban{}, false
}
