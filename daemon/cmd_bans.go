package daemon

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/livechat/livechat/daemon/bans"
	"github.com/livechat/livechat/protocol"
)

// Server bans: KLINE (a nick!user@host mask, matched against the cloak
// and the real address, or $a:account) and DLINE (an address or a range),
// set and lifted by server operators, kept in a bans.Store and matched
// from a bans.Set. A DLINE refuses a connection at accept, before it says
// anything; a KLINE at registration and at login; setting either closes
// the connections it covers at once.

// Refusal reasons of livechat_connections_refused_total for bans.
const (
	refusedDLine = "dline"
	refusedKLine = "kline"
)

func init() {
	register(&command{name: "KLINE", run: banCommand(bans.KLine), help: "KLINE [duration] <nick|mask|$a:account> [reason] - ban from the server (opers); no arguments lists them"})
	register(&command{name: "UNKLINE", run: unbanCommand(bans.KLine), minParams: 1, help: "UNKLINE <mask> - lift a KLINE (opers)"})
	register(&command{name: "DLINE", run: banCommand(bans.DLine), help: "DLINE [duration] <nick|address|range> [reason] - refuse connections from an address (opers); no arguments lists them"})
	register(&command{name: "UNDLINE", run: unbanCommand(bans.DLine), minParams: 1, help: "UNDLINE <address|range> - lift a DLINE (opers)"})
	register(&command{name: "STATS", run: handleSTATS, minParams: 1, help: "STATS k|d - list KLINEs or DLINEs (opers)"})
}

// openBans loads the bans in force from store (the cluster's if there is
// one; memory if nil).
func (s *Server) openBans(store bans.Store) {
	if c := s.cluster; c != nil && c.Bans != nil {
		store = c.Bans
	}
	if store == nil {
		store = bans.NewMemory()
	}
	s.banStore = store
	list, err := store.Load()
	if err != nil {
		// Serving without the bans would let in everyone they keep out;
		// a node that cannot read them still serves, loudly.
		s.log.Error().Err(err).Msg("could not load the server bans; none are in force")
	}
	s.bans = bans.NewSet(list)
	if c := s.cluster; c != nil && c.Bans != nil {
		if err := c.Bans.Watch(s.banChanged); err != nil {
			s.log.Error().Err(err).Msg("bans set on other nodes will not apply here until a restart")
		}
	}
}

// banChanged applies a ban set (b) or lifted (b nil) on any node; this
// node's own arrive too, and are known already.
func (s *Server) banChanged(key string, b *bans.Ban) {
	if b == nil {
		s.bans.Delete(key)
		return
	}
	if old, ok := s.bans.Get(key); ok && old.SetAt.Equal(b.SetAt) {
		return
	}
	s.bans.Put(*b)
	s.enforceBan(*b)
}

func banMessage(b bans.Ban) string { return "Banned: " + b.Reason }

// dlined reports the DLINE covering a connection's address.
func (s *Server) dlined(remote net.Addr) (bans.Ban, bool) {
	ip, ok := clientIP(remote)
	if !ok {
		return bans.Ban{}, false
	}
	return s.bans.Addr(ip, time.Now())
}

// banWho describes the session to the bans.
func (s *Session) banWho() bans.Who {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bans.Who{Nick: s.nick, User: s.user, Host: s.host, IP: s.ip, Account: s.account}
}

// refuseIfBanned closes the session if a ban covers it, and says so.
func (s *Session) refuseIfBanned() bool {
	b, ok := s.srv.bans.Match(s.banWho(), time.Now())
	if !ok {
		return false
	}
	s.closeBanned(b)
	return true
}

func (s *Session) closeBanned(b bans.Ban) {
	reason := refusedKLine
	if b.Kind == bans.DLine {
		reason = refusedDLine
	}
	s.srv.metrics.refused.WithLabelValues(reason).Inc()
	s.log().Info().Str("ban", b.Kind+"LINE "+b.Mask).Msg("banned")
	s.numeric(protocol.ERR_YOUREBANNEDCREEP, "You are banned from this server: "+b.Reason)
	s.closeWith(banMessage(b))
}

// enforceBan closes every local connection b covers.
func (s *Server) enforceBan(b bans.Ban) int {
	one := bans.NewSet([]bans.Ban{b})
	n := 0
	now := time.Now()
	for _, t := range s.allSessions() {
		if _, ok := one.Match(t.banWho(), now); ok {
			t.closeBanned(b)
			n++
		}
	}
	return n
}

// operOnly answers 481 to a session that is not a server operator.
func (s *Session) operOnly() error {
	if !s.oper.Load() {
		return numErr(protocol.ERR_NOPRIVILEGES, "Permission denied: you are not a server operator (OPER)")
	}
	return nil
}

// banCommand serves KLINE and DLINE: `[duration] <target> [reason...]`,
// or no arguments to list.
func banCommand(kind string) handler {
	return func(s *Session, m *protocol.Message, _ []byte) error {
		if err := s.operOnly(); err != nil {
			return err
		}
		args := m.Params
		if len(args) == 0 {
			s.listBans(kind)
			return nil
		}
		dur, ok := parseBanDuration(args[0])
		if ok {
			args = args[1:]
		}
		if len(args) == 0 {
			return needMoreParams(kind + "LINE")
		}
		mask, err := s.banMask(kind, args[0])
		if err != nil {
			return err
		}
		reason := strings.Join(args[1:], " ")
		if protocol.CheckText(reason) != nil || reason == "" {
			reason = "No reason given"
		}
		now := time.Now().UTC()
		b := bans.Ban{Kind: kind, Mask: mask, Reason: protocol.TruncateText(reason, protocol.TopicLen), SetBy: s.Nick(), SetAt: now}
		if dur > 0 {
			b.Expires = now.Add(dur)
		}
		if _, self := bans.NewSet([]bans.Ban{b}).Match(s.banWho(), now); self {
			// An operator locking themselves out (a nick from the same
			// address, a range too wide) is a typo, not an intention.
			return numErr(protocol.ERR_UNKNOWNERROR, kind+"LINE", "Not set: "+kind+"LINE "+mask+" would cover your own connection")
		}
		// In the set before the store, so that the cluster's echo of the
		// put (banChanged) finds it known.
		old, had := s.srv.bans.Get(b.Key())
		s.srv.bans.Put(b)
		if err := s.srv.banStore.Put(b); err != nil {
			if had {
				s.srv.bans.Put(old)
			} else {
				s.srv.bans.Delete(b.Key())
			}
			s.log().Error().Err(err).Msg("could not save a ban")
			return numErr(protocol.ERR_UNKNOWNERROR, kind+"LINE", "Could not save the ban; it is not in force")
		}
		n := s.srv.enforceBan(b)
		s.log().Info().Str("ban", kind+"LINE "+mask).Str("reason", b.Reason).Dur("duration", dur).Int("closed", n).Msg("server ban set")
		s.notice(kind + "LINE " + mask + " " + banExpiry(b) + " (" + b.Reason + "); it closed " + strconv.Itoa(n) + " connections here")
		return nil
	}
}

// banMask turns what an operator typed into a ban's mask: a nick online
// here bans that connection's real address.
func (s *Session) banMask(kind, target string) (string, error) {
	if !strings.ContainsAny(target, "!@*?$:./") {
		if t := s.srv.nicks.get(target); t != nil {
			if kind == bans.KLine {
				return "*!*@" + t.ip, nil
			}
			target = t.ip
		}
	}
	var mask string
	var err error
	if kind == bans.KLine {
		mask, err = bans.NormalizeK(target)
	} else {
		mask, err = bans.NormalizeD(target)
	}
	if err != nil {
		what := "a nick online, nick!user@host or $a:account, not one that matches everyone"
		if kind == bans.DLine {
			what = "a nick online, an address or a range no wider than /8 (IPv4) or /16 (IPv6)"
		}
		return "", numErr(protocol.ERR_UNKNOWNERROR, kind+"LINE", "Cannot ban "+target+": give "+what)
	}
	return mask, nil
}

// unbanCommand serves UNKLINE and UNDLINE.
func unbanCommand(kind string) handler {
	return func(s *Session, m *protocol.Message, _ []byte) error {
		if err := s.operOnly(); err != nil {
			return err
		}
		mask, err := bans.NormalizeK(m.Params[0])
		if kind == bans.DLine {
			mask, err = bans.NormalizeD(m.Params[0])
		}
		key := bans.Key(kind, mask)
		if _, ok := s.srv.bans.Get(key); err != nil || !ok {
			return numErr(protocol.ERR_UNKNOWNERROR, "UN"+kind+"LINE", "No "+kind+"LINE on "+m.Params[0])
		}
		if err := s.srv.banStore.Delete(key); err != nil {
			s.log().Error().Err(err).Msg("could not delete a ban")
			return numErr(protocol.ERR_UNKNOWNERROR, "UN"+kind+"LINE", "Could not lift the ban; it is still in force")
		}
		s.srv.bans.Delete(key)
		s.log().Info().Str("ban", kind+"LINE "+mask).Msg("server ban lifted")
		s.notice(kind + "LINE " + mask + " lifted")
		return nil
	}
}

// listBans sends the bans of kind in force, and forgets expired ones.
func (s *Session) listBans(kind string) {
	live, expired := s.srv.bans.List(kind, time.Now())
	for _, key := range expired {
		if err := s.srv.banStore.Delete(key); err == nil {
			s.srv.bans.Delete(key)
		}
	}
	for _, b := range live {
		expires := "0"
		if !b.Expires.IsZero() {
			expires = strconv.FormatInt(b.Expires.Unix(), 10)
		}
		s.numeric(protocol.RPL_STATSKLINE, kind, b.Mask, strconv.FormatInt(b.SetAt.Unix(), 10), expires, b.SetBy, b.Reason)
	}
	s.numeric(protocol.RPL_ENDOFSTATS, strings.ToLower(kind), "End of /STATS report")
}

func handleSTATS(s *Session, m *protocol.Message, _ []byte) error {
	letter := m.Params[0]
	switch strings.ToUpper(letter) {
	case "K", "D":
		if err := s.operOnly(); err != nil {
			return err
		}
		s.listBans(strings.ToUpper(letter))
	default:
		s.numeric(protocol.RPL_ENDOFSTATS, letter, "End of /STATS report")
	}
	return nil
}

// parseBanDuration reads a ban's duration: a number of minutes (as
// other servers' KLINE takes) or a number with a unit, s, m, h, d or w.
func parseBanDuration(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	unit := time.Minute
	switch v[len(v)-1] {
	case 's':
		unit = time.Second
	case 'm':
	case 'h':
		unit = time.Hour
	case 'd':
		unit = 24 * time.Hour
	case 'w':
		unit = 7 * 24 * time.Hour
	default:
		unit = 0
	}
	num := v
	if unit != 0 {
		num = v[:len(v)-1]
	} else {
		unit = time.Minute
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > 1<<20 {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// banExpiry says how long a ban lasts.
func banExpiry(b bans.Ban) string {
	if b.Expires.IsZero() {
		return "for good"
	}
	return "until " + b.Expires.Format(time.RFC3339)
}
