package daemon

import (
	"strings"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// maxHostLen bounds a host set with CHGHOST. Text a session keeps and
// sends again (away message, real name) is fitted for a host this long
// (see fitKept), so a later host change cannot push it past the line.
const maxHostLen = 63

func init() {
	register(&command{name: "CHGHOST", run: handleCHGHOST, minParams: 2}) // for operators, like OPER: not in HELP
}

// handleCHGHOST is the operator command CHGHOST <nick> <host> (as in
// UnrealIRCd and InspIRCd): it gives a connected user a displayed host, a
// vhost, for as long as the connection lasts. Peers that negotiated the
// chghost capability see the change; the user is told with 396.
func handleCHGHOST(s *Session, m *protocol.Message, _ []byte) error {
	if !s.oper.Load() {
		return numErr(protocol.ERR_NOPRIVILEGES, "Permission denied: CHGHOST is for server operators (OPER)")
	}
	nick, host := m.Params[0], m.Params[1]
	if !validHost(host) {
		return failErr("CHGHOST", "INVALID_HOST", host, "A host is letters, digits, '.', '-', ':' and '/', at most 63 characters, not starting with ':' or '-'")
	}
	t := s.srv.nicks.get(nick)
	if t == nil || !t.registered.Load() {
		return numErr(protocol.ERR_NOSUCHNICK, nick, "No such nick (CHGHOST reaches users on this server)")
	}
	t.setHost(host)
	s.notice("The host of " + t.Nick() + " is now " + host)
	return nil
}

// validHost accepts what may stand in the host part of nick!user@host.
func validHost(h string) bool {
	if h == "" || len(h) > maxHostLen || h[0] == ':' || h[0] == '-' {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-:/", c) >= 0) {
			return false
		}
	}
	return true
}

// Host returns the host others see. Safe from any goroutine.
func (s *Session) Host() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.host
}

// setHost changes the displayed host and tells those who share a room
// with the session and took chghost: `:nick!user@oldhost CHGHOST user
// newhost`. Clients without it see the new host on the next line from
// the user; a QUIT and JOIN to fake the change would show everyone a user
// leaving who did not. The session itself hears 396, and CHGHOST too if
// it took chghost. Safe from any goroutine: identMu orders it with NICK.
func (s *Session) setHost(host string) {
	s.identMu.Lock()
	defer s.identMu.Unlock()
	s.mu.Lock()
	if s.host == host {
		s.mu.Unlock()
		return
	}
	user := s.user
	s.mu.Unlock()
	e := s.event("CHGHOST", user, host) // from the old prefix
	s.mu.Lock()
	s.host = host
	s.mu.Unlock()
	notify(s.andWatchers(s.updateRooms(rooms.MemberUpdate{Host: &host})), e, wantsCap(capChghost)) // extended-monitor: watchers too
	if s.hasCap(capChghost) {
		s.Send(e.Render(s.Features()))
	}
	s.Send((&protocol.Message{Source: s.srv.Config().ServerName, Command: protocol.RPL_VISIBLEHOST, Params: []string{s.Nick(), host, "is now your displayed host"}}).AppendTo(nil))
}
