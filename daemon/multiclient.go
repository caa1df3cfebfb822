package daemon

import (
	"context"
	"slices"
	"strconv"
	"sync"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// devices is one user on several connections (multiclient): sessions
// logged in to one account that share its nick and its rooms. Each keeps
// its own capabilities and send queue; rooms know them as one member
// (rooms.Member.Twin), the nick registry knows the first of them.
type devices struct {
	mu   sync.Mutex
	all  []*Session
	done bool // the last device left: nobody joins it any more
}

// twins returns the session's other devices, or nil.
func (s *Session) twins() []*Session {
	g := s.group.Load()
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*Session
	for _, t := range g.all {
		if t != s {
			out = append(out, t)
		}
	}
	return out
}

// liveTwins reports whether the session has other devices that are not
// closing.
func (s *Session) liveTwins() bool {
	for _, t := range s.twins() {
		if t.closeReason() == "" {
			return true
		}
	}
	return false
}

// withTwins returns the session and its other devices.
func (s *Session) withTwins() []*Session {
	return append([]*Session{s}, s.twins()...)
}

// addTwins adds the session's other devices to peers, once each: they hear
// of the user's changes even when they share no room with anyone.
func (s *Session) addTwins(peers []rooms.Client) []rooms.Client {
	for _, t := range s.twins() {
		if !slices.Contains(peers, rooms.Client(t)) {
			peers = append(peers, t)
		}
	}
	return peers
}

// twinFor returns a registered connection logged in to account that s,
// logging in to it, should join as one more device; nil when there is
// none, or multiclient is off for the server or the account, or the user
// has limits.devices_per_account devices already (s is told), or the
// server is clustered (devices on several nodes are not built yet).
func (s *Session) twinFor(account string) *Session {
	if s.srv.cluster != nil {
		return nil
	}
	for _, t := range s.srv.accountSessions(account) {
		if t != s && t.registered.Load() && t.closeReason() == "" {
			// The account's setting is a store read: only once there
			// is someone to join.
			if !s.srv.multiclientFor(account) {
				return nil
			}
			if n, limit := len(t.withTwins()), s.srv.Config().Limits.DevicesPerAccount; n >= limit {
				s.srv.metrics.limitsHit.WithLabelValues("devices").Inc()
				s.notice("Your account is connected on " + plural(n, "device") + " already (limit " + strconv.Itoa(limit) + "); this connection keeps a nick of its own")
				return nil
			}
			return t
		}
	}
	return nil
}

// asksForTwinNick reports whether nick, asked for by a connection that
// logged in by SASL before registering, is the nick of its account's
// connected user, whom it will join as a device.
func (s *Session) asksForTwinNick(nick string) bool {
	account := s.Account()
	if account == "" {
		return false
	}
	h := s.srv.nicks.get(nick)
	return h != nil && h != s && protocol.FoldNick(h.Account()) == protocol.FoldNick(account) && s.twinFor(account) != nil
}

// joinDevices makes s one more device of t's user: s gives up its own
// nick and takes t's, and t's away message. It reports false, changing
// nothing, when t has left meanwhile. The caller then shows s the welcome
// (if s is registering) and joins it to t's rooms (joinTwinRooms).
func (s *Session) joinDevices(t *Session) bool {
	g := t.group.Load()
	if g == nil {
		g = &devices{all: []*Session{t}}
		if !t.group.CompareAndSwap(nil, g) {
			g = t.group.Load() // made by another device, or t is leaving
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done || !slices.Contains(g.all, t) {
		return false
	}
	if len(g.all) >= s.srv.Config().Limits.DevicesPerAccount {
		return false // filled since twinFor looked
	}
	s.srv.nicks.release(s)
	g.all = append(g.all, s)
	s.group.Store(g)
	// Under g.mu, as renames set every device's nick (setNick): s gets
	// the name from before or after a rename racing this, never a stale one.
	s.mu.Lock()
	s.nick = t.Nick()
	s.mu.Unlock()
	s.away.Store(t.away.Load())
	s.srv.metrics.devicesAttached.Inc()
	return true
}

// setNick renames the user on every device.
func (s *Session) setNick(nick string) {
	set := func(t *Session) {
		t.mu.Lock()
		t.nick = nick
		t.mu.Unlock()
	}
	g := s.group.Load()
	if g == nil {
		set(s)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	set(s)
	for _, t := range g.all {
		set(t)
	}
}

// joinTwinRooms joins s to every room t is in, as t's other device.
func (s *Session) joinTwinRooms(t *Session) {
	t.mu.Lock()
	joined := t.rooms()
	t.mu.Unlock()
	for _, r := range joined {
		s.joinAsTwin(r.Name(), t)
	}
}

// joinAsTwin joins s to the room called name as another device of t,
// which is in it. Errors are the room's to report: it refuses nothing to
// a member's device, and a room t left meanwhile is no longer t's.
func (s *Session) joinAsTwin(name string, t *Session) {
	s.identMu.Lock()
	defer s.identMu.Unlock()
	if s.left {
		return // s is disconnecting: it would stay in the room for good
	}
	m := s.member()
	m.Twin = t
	m.AfterJoin = s.joinMarkerLine(name)
	r, err := s.srv.rooms.Join(m, name, "")
	if err != nil {
		return
	}
	s.mu.Lock()
	s.joined.put(protocol.FoldRoom(r.Name()), r)
	s.mu.Unlock()
}

// twinsFollowJoin joins s's other devices to the room s just joined.
func (s *Session) twinsFollowJoin(name string) {
	for _, t := range s.twins() {
		if t.joinedRoom(name) == nil {
			t.joinAsTwin(name, s)
		}
	}
}

// leaveDevices takes a disconnecting session out of its user's devices.
// It reports true when others remain: the user stays, under the same nick,
// which passes to another device if s held it.
func (s *Session) leaveDevices() bool {
	g := s.group.Load()
	if g == nil {
		// A connection joining s as a device from now on finds it gone.
		if s.group.CompareAndSwap(nil, &devices{done: true}) {
			return false
		}
		g = s.group.Load()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.all = slices.DeleteFunc(g.all, func(t *Session) bool { return t == s })
	if len(g.all) == 0 {
		g.done = true
		return false
	}
	// Under g.mu: a device leaving at the same time finds the nick
	// already handed over, and the last one releases it.
	s.srv.nicks.handOver(s, g.all[0])
	return true
}

// setAway marks the user away (msg nil: back) on every device: peers see
// one user, and WHO and WHOIS ask whichever device they know.
func (s *Session) setAway(msg *string) {
	for _, t := range s.withTwins() {
		t.away.Store(msg)
	}
}

// multiclientFor reports whether account's connections share its nick: the
// account's own choice, or the server's default (accounts.multiclient).
// An account that cannot be read gets the default.
func (srv *Server) multiclientFor(account string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), accountTimeout)
	defer cancel()
	a, err := srv.accounts.Lookup(ctx, account)
	if err == nil && a.Multiclient != "" {
		return a.Multiclient == "on"
	}
	return srv.Config().Accounts.Multiclient
}

// renameUser renames s's user in the nick registry, on the device that
// holds the nick: s itself unless s joined another device. Under the
// group's lock, as a leaving device hands the nick over (leaveDevices):
// the holder cannot go between being found and being renamed.
func (s *Session) renameUser(nick string) (release func(), ok bool) {
	holder := s
	if g := s.group.Load(); g != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, t := range g.all {
			if s.srv.nicks.holds(t) {
				holder = t
				break
			}
		}
	}
	return s.srv.nicks.rename(holder, nick)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// becomeDevice makes a registered session that just logged in one more
// device of t, the account's connected user: it leaves the rooms it was
// in under its own nick (its peers see it QUIT), gives that nick up,
// takes the user's, and joins the user's rooms.
func (s *Session) becomeDevice(t *Session) {
	oldPrefix, old := s.prefix(), s.Nick()
	s.leaveAll("Joined their other connection as " + t.Nick())
	s.identMu.Lock()
	joined := s.joinDevices(t)
	s.identMu.Unlock()
	if !joined {
		s.accountChanged(s.Account()) // as an ordinary login, in no room now
		s.adoptAccountNick(s.Account())
		return
	}
	s.reply(protocol.Message{Source: oldPrefix, Command: "NICK", Params: []string{s.Nick()}})
	s.srv.whowas.record(s, old)
	s.srv.monitorNotify(old, protocol.RPL_MONOFFLINE, old)
	s.joinTwinRooms(t)
	s.notice("You are connected on " + plural(len(s.twins()), "other device") + " as " + s.Nick() + "; you share its rooms (NickServ SET MULTICLIENT OFF to keep connections apart)")
}
