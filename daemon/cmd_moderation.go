package daemon

import (
	"strings"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

func init() {
	register(&command{name: "MODE", run: handleMODE, minParams: 1, help: "MODE <room> [+|-modes args] - show or change room modes (ops): i m n t k l b e o v, R (log in to join), M (log in to speak), C (no CTCP), f <room> (forward)"})
	register(&command{name: "KICK", run: handleKICK, minParams: 2, help: "KICK <room> <nick> [reason] - remove someone from a room (ops)"})
	register(&command{name: "INVITE", run: handleINVITE, minParams: 2, help: "INVITE <nick> <room> - invite someone (ops, when the room is +i)"})
	register(&command{name: "BAN", run: handleBAN, minParams: 2, help: "BAN <room> <nick|mask> - ban someone (ops); a nick bans their address and account"})
	register(&command{name: "UNBAN", run: handleUNBAN, minParams: 2, help: "UNBAN <room> <mask> - lift a ban (ops); MODE <room> b lists them"})
	register(&command{name: "OP", run: roleCommand("+o"), minParams: 2, help: "OP <room> <nick> - make someone a room operator (ops)"})
	register(&command{name: "DEOP", run: roleCommand("-o"), minParams: 2, help: "DEOP <room> <nick> - take operator status away (ops)"})
	register(&command{name: "VOICE", run: roleCommand("+v"), minParams: 2, help: "VOICE <room> <nick> - let someone speak in a moderated room (ops)"})
	register(&command{name: "DEVOICE", run: roleCommand("-v"), minParams: 2, help: "DEVOICE <room> <nick> - take voice away (ops)"})
	register(&command{name: "ROOM", run: handleROOM, minParams: 2, help: "ROOM CLAIM|DROP <room> - own a room with your account so it is kept, or release it"})
}

// existingRoom resolves a typed room name to a room that exists.
func (s *Session) existingRoom(typed string) (*rooms.Room, error) {
	name, err := s.roomName(typed)
	if err != nil {
		return nil, err
	}
	r := s.srv.rooms.Get(name)
	if r == nil {
		return nil, numErr(protocol.ERR_NOSUCHCHANNEL, name, "No such room")
	}
	return r, nil
}

func handleMODE(s *Session, m *protocol.Message, _ []byte) error {
	target, isRoom := s.roomTarget(m.Params[0])
	if !isRoom {
		return s.userMode(m.Params[0], m.Param(1))
	}
	r, err := s.existingRoom(target)
	if err != nil {
		return err
	}
	var changes []rooms.ModeChange
	if len(m.Params) > 1 {
		var unknown []byte
		changes, unknown = rooms.ParseModes(m.Params[1], m.Params[2:])
		for _, c := range unknown {
			s.numeric(protocol.ERR_UNKNOWNMODE, string(c), "is an unknown mode char to me")
		}
		changes = s.checkForwards(r.Name(), s.dropUnknownNicks(changes))
		if len(changes) == 0 {
			return nil
		}
		if !s.seesInside(r.Name(), r.Info().Secret) {
			changes = s.endHiddenLists(r.Name(), changes)
			if len(changes) == 0 {
				return nil
			}
		}
	}
	return s.roomMode(r, changes)
}

// endHiddenLists answers a ban or exception list query about a secret
// room the session is not in with the end numeric alone, as NAMES and WHO
// do: the masks and their setters would name its members. Other changes
// are returned for the room to refuse as usual.
func (s *Session) endHiddenLists(room string, changes []rooms.ModeChange) []rooms.ModeChange {
	kept := changes[:0]
	for _, ch := range changes {
		if ch.Arg == "" && (ch.Mode == 'b' || ch.Mode == 'e' || ch.Mode == 'I') {
			_, end, text := rooms.ListNumerics(ch.Mode)
			s.numeric(end, room, text)
			continue
		}
		kept = append(kept, ch)
	}
	return kept
}

// dropUnknownNicks answers 401 for +o/+v of a nick nobody has (the room
// answers 441 for one that is online but not in it).
func (s *Session) dropUnknownNicks(changes []rooms.ModeChange) []rooms.ModeChange {
	kept := changes[:0]
	for _, ch := range changes {
		if (ch.Mode == 'o' || ch.Mode == 'v') && s.srv.nicks.get(ch.Arg) == nil && !s.srv.nicks.elsewhere(ch.Arg) {
			s.numeric(protocol.ERR_NOSUCHNICK, ch.Arg, "No such nick")
			continue
		}
		kept = append(kept, ch)
	}
	return kept
}

// checkForwards keeps a +f only to a room the setter is an operator of
// (any room, for a server operator), so that nobody can send the people
// their room turns away into someone else's room.
func (s *Session) checkForwards(room string, changes []rooms.ModeChange) []rooms.ModeChange {
	kept := changes[:0]
	for _, ch := range changes {
		if ch.Mode == 'f' && ch.Add {
			name, err := s.roomName(ch.Arg)
			if err != nil {
				s.numeric(protocol.ERR_INVALIDMODEPARAM, room, "f", "*", "Invalid forward: a room name")
				continue
			}
			if s.srv.rooms.Get(name) == nil {
				s.numeric(protocol.ERR_INVALIDMODEPARAM, room, "f", name, "No such room: forward to a room that exists")
				continue
			}
			if t := s.joinedRoom(name); !s.oper.Load() && (t == nil || !strings.Contains(t.PrefixOf(s, false), "@")) {
				s.numeric(protocol.ERR_CHANOPRIVSNEEDED, name, "You must be an operator of "+name+" to forward to it")
				continue
			}
			ch.Arg = name
		}
		kept = append(kept, ch)
	}
	return kept
}

func (s *Session) roomMode(r *rooms.Room, changes []rooms.ModeChange) error {
	if r.Mode(s, s.Nick(), s.oper.Load(), changes) != nil {
		return numErr(protocol.ERR_NOSUCHCHANNEL, r.Name(), "No such room")
	}
	return nil
}

// userMode handles MODE <nick>: only your own, and only +i (invisible)
// and +B (bot, IRCv3 bot-mode); +o comes with OPER.
func (s *Session) userMode(target, change string) error {
	if protocol.FoldNick(target) != protocol.FoldNick(s.Nick()) {
		return numErr(protocol.ERR_USERSDONTMATCH, "Can't change or view modes for other users")
	}
	if change != "" {
		if strings.Trim(change, "+-iB") != "" {
			return numErr(protocol.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
		}
		// Only what changed is echoed, in one MODE: "+iB", "-i+B".
		var applied strings.Builder
		add, sign := true, byte(0)
		for i := 0; i < len(change); i++ {
			c := change[i]
			switch c {
			case '+', '-':
				add = c == '+'
				continue
			}
			flag := &s.invisible
			if c == 'B' {
				flag = &s.bot
			}
			if flag.Swap(add) == add {
				continue
			}
			want := byte('-')
			if add {
				want = '+'
			}
			if sign != want {
				sign = want
				applied.WriteByte(sign)
			}
			applied.WriteByte(c)
		}
		if applied.Len() > 0 {
			s.Reply((&protocol.Message{Source: s.Nick(), Command: "MODE", Params: []string{s.Nick(), applied.String()}}).AppendTo(nil))
		}
		return nil
	}
	modes := "+"
	if s.bot.Load() {
		modes += "B"
	}
	if s.invisible.Load() {
		modes += "i"
	}
	if s.oper.Load() {
		modes += "o"
	}
	s.numeric(protocol.RPL_UMODEIS, modes)
	return nil
}

// handleKICK serves KICK <room>[,<room>...] <nick>[,<nick>...]: one room
// with many nicks, or rooms and nicks in pairs.
func handleKICK(s *Session, m *protocol.Message, _ []byte) error {
	roomList, nicks := strings.Split(m.Params[0], ","), strings.Split(m.Params[1], ",")
	if len(roomList) != 1 && len(roomList) != len(nicks) {
		return needMoreParams("KICK")
	}
	reason := m.Param(2)
	if protocol.CheckText(reason) != nil {
		reason = ""
	}
	reason = protocol.TruncateText(reason, protocol.TopicLen)
	for i, nick := range nicks {
		typed := roomList[0]
		if len(roomList) > 1 {
			typed = roomList[i]
		}
		r, err := s.existingRoom(typed)
		if err != nil {
			s.sendError(err)
			continue
		}
		r.Kick(s, s.Nick(), nick, s.fit(reason, "KICK", r.Name(), nick))
	}
	return nil
}

func handleINVITE(s *Session, m *protocol.Message, _ []byte) error {
	nick := m.Params[0]
	r, err := s.existingRoom(m.Params[1])
	if err != nil {
		return err
	}
	t := s.srv.nicks.get(nick)
	if t == nil || !t.registered.Load() {
		if rc, rnick := s.srv.remoteClient(nick); rc != nil {
			r.Invite(s, s.Nick(), rc, rnick)
			return nil
		}
		return numErr(protocol.ERR_NOSUCHNICK, nick, "No such nick")
	}
	r.Invite(s, s.Nick(), t, t.Nick())
	return nil
}

// handleBAN bans a mask, or a connected user by nick: by their (cloaked)
// address, and by account too when they are logged in, so neither a new
// address nor logging out escapes it.
func handleBAN(s *Session, m *protocol.Message, _ []byte) error {
	r, err := s.existingRoom(m.Params[0])
	if err != nil {
		return err
	}
	mask := m.Params[1]
	changes := []rooms.ModeChange{{Add: true, Mode: 'b', Arg: mask}}
	if t := s.srv.nicks.get(mask); t != nil && !strings.ContainsAny(mask, "!@*?$") {
		changes[0].Arg = "*!*@" + t.Host()
		if account := t.Account(); account != "" {
			changes = append(changes, rooms.ModeChange{Add: true, Mode: 'b', Arg: "$a:" + account})
		}
	}
	return s.roomMode(r, changes)
}

func handleUNBAN(s *Session, m *protocol.Message, _ []byte) error {
	r, err := s.existingRoom(m.Params[0])
	if err != nil {
		return err
	}
	return s.roomMode(r, []rooms.ModeChange{{Add: false, Mode: 'b', Arg: m.Params[1]}})
}

// roleCommand maps OP/DEOP/VOICE/DEVOICE onto MODE.
func roleCommand(change string) handler {
	return func(s *Session, m *protocol.Message, _ []byte) error {
		r, err := s.existingRoom(m.Params[0])
		if err != nil {
			return err
		}
		return s.roomMode(r, []rooms.ModeChange{{Add: change[0] == '+', Mode: change[1], Arg: m.Params[1]}})
	}
}

func handleROOM(s *Session, m *protocol.Message, _ []byte) error {
	sub := strings.ToUpper(m.Params[0])
	if sub != "CLAIM" && sub != "DROP" {
		return numErr(protocol.ERR_UNKNOWNERROR, "ROOM", "Use ROOM CLAIM <room> or ROOM DROP <room>")
	}
	r, err := s.existingRoom(m.Params[1])
	if err != nil {
		return err
	}
	r.Claim(s, s.Nick(), s.Account(), sub == "DROP")
	return nil
}

// Removed is called by a room that kicked the session.
func (s *Session) Removed(r *rooms.Room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	folded := protocol.FoldRoom(r.Name())
	s.joined.remove(folded, r)
}
