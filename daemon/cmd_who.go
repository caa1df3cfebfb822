package daemon

import (
	"strconv"
	"strings"
	"time"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// maxWhoReplies bounds a WHO by mask, so "WHO *" on a big server stays
// a reasonable reply.
const maxWhoReplies = 500

func init() {
	register(&command{name: "WHO", run: handleWHO, minParams: 1, help: "WHO <room|nick|mask> - list people: a room's members, or everyone matching"})
}

// handleWHO answers WHO with 352 lines, or with WHOX's 354 lines when the
// client asks for fields ("WHO #room %cnuf,42").
func handleWHO(s *Session, m *protocol.Message, _ []byte) error {
	mask := m.Params[0]
	fields, token, whox := parseWhox(m.Param(1))
	var entries []rooms.WhoEntry
	room := "*"
	name, isRoom := mask, protocol.IsRoomName(mask)
	if !isRoom && !strings.ContainsAny(mask, "*?") {
		name, isRoom = s.roomTarget(mask) // WHO lobby, from a person
	}
	if isRoom {
		if r := s.srv.rooms.Get(name); r != nil && s.seesInside(r.Name(), r.Secret()) {
			entries, _ = r.Who(s)
			room = r.Name()
		}
	} else {
		for _, t := range s.srv.matching(mask, maxWhoReplies) {
			// Invisible users (+i) are found by a mask only by those who
			// share a room with them; by exact nick, always.
			if t != s && t.invisible.Load() && strings.ContainsAny(mask, "*?") && !s.sharesRoomWith(t) {
				continue
			}
			t.mu.Lock()
			entries = append(entries, rooms.WhoEntry{Client: t, Nick: t.nick, User: t.user, Host: t.host, Realname: t.realname, Account: t.account})
			t.mu.Unlock()
		}
		var w whoisInfo
		if len(entries) == 0 && !strings.ContainsAny(mask, "*?") && s.srv.cluster != nil && s.remoteWhois(mask, &w) {
			// A user of another node, by exact nick (masks see this node's users only).
			entries = append(entries, rooms.WhoEntry{Client: remotePeer{w}, Nick: w.Nick, User: w.User, Host: w.Host, Realname: w.Realname, Account: w.Account})
		}
	}
	server := s.srv.Config().ServerName
	for _, e := range entries {
		if !s.pace() { // a big room's WHO may be longer than the send queue
			return nil
		}
		flags := "H"
		if e.Client.Away() {
			flags = "G"
		}
		switch t := e.Client.(type) {
		case *Session:
			if t.oper.Load() {
				flags += "*"
			}
			if t.bot.Load() {
				flags += "B"
			}
		case remotePeer:
			if t.w.Oper {
				flags += "*"
			}
			if t.w.Bot {
				flags += "B"
			}
		}
		flags += e.Prefix
		if !whox {
			s.numeric(protocol.RPL_WHOREPLY, room, e.User, e.Host, server, e.Nick, flags, "0 "+e.Realname)
			continue
		}
		s.numeric(protocol.RPL_WHOSPCRPL, whoxFields(fields, token, room, server, flags, e)...)
	}
	s.numeric(protocol.RPL_ENDOFWHO, mask, "End of /WHO list")
	return nil
}

// parseWhox reads "%fields[,token]".
func parseWhox(arg string) (fields, token string, ok bool) {
	spec, found := strings.CutPrefix(arg, "%")
	if !found {
		return "", "", false
	}
	fields, token, _ = strings.Cut(spec, ",")
	return fields, token, true
}

// whoxFields builds a 354 reply's parameters in WHOX's fixed field order.
func whoxFields(fields, token, room, server, flags string, e rooms.WhoEntry) []string {
	var out []string
	has := func(c byte) bool { return strings.IndexByte(fields, c) >= 0 }
	if has('t') {
		out = append(out, orZero(token))
	}
	if has('c') {
		out = append(out, room)
	}
	if has('u') {
		out = append(out, e.User)
	}
	if has('i') {
		out = append(out, "255.255.255.255") // addresses stay private
	}
	if has('h') {
		out = append(out, e.Host)
	}
	if has('s') {
		out = append(out, server)
	}
	if has('n') {
		out = append(out, e.Nick)
	}
	if has('f') {
		out = append(out, flags)
	}
	if has('d') {
		out = append(out, "0")
	}
	if has('l') {
		idle := "0"
		if t, ok := e.Client.(*Session); ok {
			idle = strconv.FormatInt(int64(time.Since(t.lastActive()).Seconds()), 10)
		}
		out = append(out, idle)
	}
	if has('a') {
		out = append(out, orZero(e.Account))
	}
	if has('o') {
		out = append(out, "n/a")
	}
	if has('r') {
		out = append(out, e.Realname)
	}
	return out
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// sharesRoomWith reports whether s and t are in a common room.
func (s *Session) sharesRoomWith(t *Session) bool {
	s.mu.Lock()
	mine := make(map[*rooms.Room]bool, len(s.joined))
	for _, e := range s.joined {
		mine[e.room] = true
	}
	s.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.joined {
		if mine[e.room] {
			return true
		}
	}
	return false
}

// matching returns up to limit registered sessions whose nick matches the
// mask ("*" and "0" match everyone).
func (srv *Server) matching(mask string, limit int) []*Session {
	if mask == "0" {
		mask = "*"
	}
	if !strings.ContainsAny(mask, "*?") {
		if t := srv.nicks.get(mask); t != nil && t.registered.Load() {
			return []*Session{t}
		}
		return nil
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var out []*Session
	for t := range srv.sessions {
		if len(out) == limit {
			break
		}
		if t.registered.Load() && protocol.MatchMask(mask, t.Nick()) {
			out = append(out, t)
		}
	}
	return out
}

// remotePeer is a user of another node as WHO shows it: from what that
// node said for WHOIS. Nothing is ever sent to it.
type remotePeer struct{ w whoisInfo }

func (remotePeer) Send([]byte) bool         { return false }
func (remotePeer) Queue([]byte) bool        { return false }
func (remotePeer) Flush()                   {}
func (remotePeer) Reply([]byte) bool        { return false }
func (remotePeer) Features() rooms.Features { return 0 }
func (p remotePeer) Away() bool             { return p.w.Away != nil }
func (remotePeer) Removed(*rooms.Room)      {}
