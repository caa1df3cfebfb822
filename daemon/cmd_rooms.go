package daemon

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

func init() {
	register(&command{name: "JOIN", run: handleJOIN, minParams: 1, help: "JOIN <room>[,<room>...] - join rooms (created on demand; the # is optional)"})
	register(&command{name: "PART", run: handlePART, minParams: 1, help: "PART <room> [reason] - leave a room"})
	register(&command{name: "TOPIC", run: handleTOPIC, minParams: 1, help: "TOPIC <room> [text] - show or set a room's topic"})
	register(&command{name: "NAMES", run: handleNAMES, help: "NAMES <room> - who is in a room"})
	register(&command{name: "LIST", run: handleLIST, help: "LIST - the rooms, their sizes and topics"})
}

// rooms returns the session's rooms. The caller holds s.mu.
func (s *Session) rooms() []*rooms.Room {
	out := make([]*rooms.Room, 0, len(s.joined))
	for _, e := range s.joined {
		out = append(out, e.room)
	}
	return out
}

// member describes the session to a room.
func (s *Session) member() rooms.Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return rooms.Member{Client: s, Nick: s.nick, User: s.user, Host: s.host, IP: s.ip, Realname: s.realname, Account: s.account, Origin: s.identityOf(s.account)}
}

// joinedRoom returns the room the session is in, by any spelling, or nil.
func (s *Session) joinedRoom(name string) *rooms.Room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.joined.get(protocol.FoldRoom(name))
}

// seesInside reports whether the session may see who is in a room and its
// topic: a secret (+s) room shows them only to its members and to server
// operators. LIST, NAMES, WHO, TOPIC and WHOIS all ask here.
func (s *Session) seesInside(name string, secret bool) bool {
	return !secret || s.oper.Load() || s.joinedRoom(name) != nil
}

// The '#' rule, one for every command (docs/PROTOCOL.md, Names): a name
// with '#' is a room. A person in a terminal (a connection that never
// sent CAP or USER) may leave the '#' out: where only a room can stand
// (roomName) a bare name is that room; where a room or a nick can
// (roomTarget) it is a room the person is in, else someone online by
// that nick, else the room. IRC clients write the '#' themselves (they
// add it to what their user types), so from them a bare name is a nick,
// or, where only a room can stand, an error that says so: that is what
// IRC clients and their tests expect (JOIN #valid,inv@lid).

// roomName validates a typed room name where only a room can stand.
func (s *Session) roomName(typed string) (string, error) {
	if s.strict && !protocol.IsRoomName(typed) {
		return "", numErr(protocol.ERR_NOSUCHCHANNEL, typed, "No such room: room names start with # (#"+typed+")")
	}
	name, err := protocol.RoomName(typed)
	if err != nil {
		return "", numErr(protocol.ERR_NOSUCHCHANNEL, typed, "Invalid room name: use up to "+strconv.Itoa(protocol.RoomLen)+" characters without spaces, commas or control characters")
	}
	return name, nil
}

// roomTarget decides whether a target that may be a room or a nick (MSG,
// PRIVMSG, WHO, MODE, ...) is a room, and returns the room's name.
func (s *Session) roomTarget(target string) (string, bool) {
	if protocol.IsRoomName(target) {
		return target, true
	}
	if s.strict {
		return "", false
	}
	name, err := protocol.RoomName(target)
	if err != nil {
		return "", false
	}
	// A room one is in wins over a nick: nobody can catch what a person
	// says in their room by taking the room's name as a nick.
	if s.joinedRoom(name) != nil || s.srv.nicks.get(target) == nil {
		return name, true
	}
	return "", false
}

// roomMask adds the '#' to a LIST name a person typed without it, unless
// it starts with a wildcard ("*an1" already matches "#chan1").
func (s *Session) roomMask(mask string) string {
	if s.strict || mask == "" || mask[0] == '#' || mask[0] == '*' || mask[0] == '?' {
		return mask
	}
	return "#" + mask
}

func handleJOIN(s *Session, m *protocol.Message, _ []byte) error {
	if m.Params[0] == "0" {
		s.partAll()
		return nil
	}
	keys := strings.Split(m.Param(1), ",")
	for i, typed := range strings.Split(m.Params[0], ",") {
		if typed == "" {
			continue
		}
		key := ""
		if i < len(keys) {
			key = keys[i]
		}
		if err := s.join(typed, key); err != nil {
			s.sendError(err)
		}
		if !s.pace() { // each JOIN brings a member list
			break
		}
	}
	return nil
}

func (s *Session) join(typed, key string) error {
	name, err := s.roomName(typed)
	if err != nil {
		return err
	}
	err = s.joinRoom(name, key, true)
	var fwd *rooms.ForwardError
	if !errors.As(err, &fwd) {
		return err
	}
	// One hop only: the target's own forward is not followed, so rooms
	// cannot bounce a joiner around.
	s.numeric(protocol.ERR_LINKCHANNEL, name, fwd.Target, "Forwarding to another room: "+joinRefusal(fwd.Err))
	return s.joinRoom(fwd.Target, "", false)
}

// joinRoom joins the room called name (a valid display name). With follow,
// a refusal with a forward (+f) is returned as the room's
// *rooms.ForwardError for join to follow.
func (s *Session) joinRoom(name, key string, follow bool) error {
	folded := protocol.FoldRoom(name)
	limit := s.srv.Config().Limits.MaxJoinedRooms
	s.mu.Lock()
	already := s.joined.get(folded) != nil
	count := len(s.joined)
	s.mu.Unlock()
	if already {
		return nil
	}
	if count >= limit {
		s.srv.metrics.limitsHit.WithLabelValues("joined_rooms").Inc()
		return numErr(protocol.ERR_TOOMANYCHANNELS, name, "You have joined too many rooms (limit "+strconv.Itoa(limit)+")")
	}
	// Under identMu, an eviction renaming the session (another session's
	// login) waits until the room is in s.joined, so the rename reaches it;
	// otherwise the room could keep the old nick for good.
	marker := s.joinMarkerLine(name) // a store read: before identMu
	var devices []rooms.Client
	for _, t := range s.twins() {
		devices = append(devices, t)
	}
	s.identMu.Lock()
	m := s.member()
	m.AfterJoin = marker
	m.Devices = devices
	r, err := s.srv.rooms.Join(m, name, key)
	if err == nil {
		s.mu.Lock()
		s.joined.put(folded, r)
		s.mu.Unlock()
	}
	s.identMu.Unlock()
	switch {
	case err == nil:
		s.twinsFollowJoin(r.Name())
	case follow && errors.As(err, new(*rooms.ForwardError)):
		return err
	case errors.Is(err, rooms.ErrTooManyRooms):
		s.srv.metrics.limitsHit.WithLabelValues("rooms").Inc()
		return numErr(protocol.ERR_NOSUCHCHANNEL, name, "Cannot create the room: the server has too many rooms")
	case errors.Is(err, rooms.ErrRoomFull):
		s.srv.metrics.limitsHit.WithLabelValues("room_members").Inc()
		return numErr(protocol.ERR_CHANNELISFULL, name, "Cannot join the room: it is full (+l)")
	case errors.Is(err, rooms.ErrBanned):
		return numErr(protocol.ERR_BANNEDFROMCHAN, name, "Cannot join the room: you are banned (+b)")
	case errors.Is(err, rooms.ErrRegOnly):
		return numErr(protocol.ERR_NEEDREGGEDNICK, name, "Cannot join the room: "+joinRefusal(err))
	case errors.Is(err, rooms.ErrInviteOnly):
		return numErr(protocol.ERR_INVITEONLYCHAN, name, "Cannot join the room: it is invite-only (+i); ask an operator to INVITE you")
	case errors.Is(err, rooms.ErrBadKey):
		return numErr(protocol.ERR_BADCHANNELKEY, name, "Cannot join the room: wrong key (+k); JOIN "+name+" <key>")
	case errors.Is(err, rooms.ErrAlreadyMember):
		return nil
	case errors.Is(err, rooms.ErrUnavailable):
		return failErr("JOIN", "TEMPORARILY_UNAVAILABLE", name, "The server running this room cannot be reached; try again in a few seconds")
	default:
		return numErr(protocol.ERR_UNKNOWNERROR, "JOIN", "Could not join "+name+": internal error")
	}
	if away := s.away.Load(); away != nil {
		// away-notify: members learn a joiner is away right after the JOIN.
		notify(dedupe([]*rooms.Room{r}, func(r *rooms.Room) []rooms.Client { return r.Update(s, rooms.MemberUpdate{}) }), s.event("AWAY", *away), wantsCap(capAwayNotify))
	}
	return nil
}

// joinRefusal says in words why a join of a room with a forward (+f) was
// refused.
func joinRefusal(err error) string {
	switch {
	case errors.Is(err, rooms.ErrRegOnly):
		return "only logged-in users may join it (+R); REGISTER or LOGIN first"
	case errors.Is(err, rooms.ErrInviteOnly):
		return "it is invite-only (+i)"
	case errors.Is(err, rooms.ErrRoomFull):
		return "it is full (+l)"
	}
	return "you may not join it"
}

func handlePART(s *Session, m *protocol.Message, _ []byte) error {
	reason := m.Param(1)
	if protocol.CheckText(reason) != nil {
		reason = ""
	}
	for _, typed := range strings.Split(m.Params[0], ",") {
		if err := s.part(typed, reason); err != nil {
			s.sendError(err)
		}
	}
	return nil
}

func (s *Session) part(typed, reason string) error {
	name, err := s.roomName(typed)
	if err != nil {
		return err
	}
	folded := protocol.FoldRoom(name)
	s.mu.Lock()
	r := s.joined.remove(folded, nil)
	s.mu.Unlock()
	if r == nil {
		if s.srv.rooms.Get(name) == nil {
			return numErr(protocol.ERR_NOSUCHCHANNEL, name, "No such room")
		}
		return numErr(protocol.ERR_NOTONCHANNEL, name, "You're not in that room")
	}
	r.Part(s, s.fit(reason, "PART", r.Name()))
	return nil
}

// partAll leaves every room (JOIN 0).
func (s *Session) partAll() {
	s.mu.Lock()
	joined := s.rooms()
	s.joined = nil
	s.mu.Unlock()
	for _, r := range joined {
		r.Part(s, "")
	}
}

func handleTOPIC(s *Session, m *protocol.Message, _ []byte) error {
	name, err := s.roomName(m.Params[0])
	if err != nil {
		return err
	}
	r := s.srv.rooms.Get(name)
	if r == nil {
		return numErr(protocol.ERR_NOSUCHCHANNEL, name, "No such room")
	}
	if len(m.Params) == 1 && !s.seesInside(r.Name(), r.Secret()) {
		// As Ergo and ircd-micro: the room exists (JOIN would say so
		// anyway), but its topic is for members.
		return numErr(protocol.ERR_NOTONCHANNEL, name, "You're not on that room")
	}
	var text *string
	if len(m.Params) > 1 {
		t := m.Params[1]
		if err := textError("TOPIC", name, t); err != nil {
			return err
		}
		t = s.fit(protocol.TruncateText(t, protocol.TopicLen), "TOPIC", r.Name())
		text = &t
	}
	if r.Topic(s, s.Nick(), text) != nil {
		return numErr(protocol.ERR_NOSUCHCHANNEL, name, "No such room")
	}
	return nil
}

func handleNAMES(s *Session, m *protocol.Message, _ []byte) error {
	if len(m.Params) == 0 {
		s.numeric(protocol.RPL_ENDOFNAMES, "*", "End of /NAMES list")
		return nil
	}
	for _, typed := range strings.Split(m.Params[0], ",") {
		name, err := s.roomName(typed)
		if err != nil {
			s.numeric(protocol.RPL_ENDOFNAMES, typed, "End of /NAMES list")
			continue
		}
		if r := s.srv.rooms.Get(name); r == nil || !s.seesInside(r.Name(), r.Secret()) || r.Names(s, s.Nick()) != nil {
			s.numeric(protocol.RPL_ENDOFNAMES, name, "End of /NAMES list")
		}
		if !s.pace() {
			break
		}
	}
	return nil
}

func handleLIST(s *Session, m *protocol.Message, _ []byte) error {
	var conds []listCond
	for _, word := range strings.Split(m.Param(0), ",") {
		if c, ok := parseListCond(word); ok {
			c.mask = s.roomMask(c.mask)
			conds = append(conds, c)
		}
	}
	now := time.Now()
	s.numeric(protocol.RPL_LISTSTART, "Room", "Users  Name")
	if s.srv.cluster != nil {
		for _, info := range s.srv.clusterDirectory() {
			if s.seesInside(info.Name, info.Secret) && listMatches(conds, info, now) {
				s.numeric(protocol.RPL_LIST, info.Name, strconv.Itoa(info.Members), info.Topic)
				if !s.pace() {
					return nil
				}
			}
		}
		s.numeric(protocol.RPL_LISTEND, "End of /LIST")
		return nil
	}
	for _, r := range s.srv.rooms.ByName() {
		if r.Gone() {
			continue
		}
		info := r.Info()
		if !s.seesInside(info.Name, info.Secret) {
			continue
		}
		if listMatches(conds, info, now) {
			s.numeric(protocol.RPL_LIST, info.Name, strconv.Itoa(info.Members), info.Topic)
			if !s.pace() { // the list may be far longer than the send queue
				return nil
			}
		}
	}
	s.numeric(protocol.RPL_LISTEND, "End of /LIST")
	return nil
}

// listCond is one LIST condition (ISUPPORT ELIST=CMNTU): a name or mask,
// a negated mask, or a bound on users, creation time or topic time.
type listCond struct {
	kind byte // 'M' mask, 'N' not mask, 'U' users, 'C' created, 'T' topic
	mask string
	more bool // > rather than <
	n    int  // users, or minutes ago
}

func parseListCond(word string) (listCond, bool) {
	word = strings.TrimSpace(word)
	if word == "" {
		return listCond{}, false
	}
	kind := byte('U')
	if len(word) > 1 && (word[0] == 'C' || word[0] == 'T') && (word[1] == '<' || word[1] == '>') {
		kind, word = word[0], word[1:]
	}
	if word[0] == '<' || word[0] == '>' {
		n, err := strconv.Atoi(word[1:])
		return listCond{kind: kind, more: word[0] == '>', n: n}, err == nil
	}
	if mask, ok := strings.CutPrefix(word, "!"); ok {
		return listCond{kind: 'N', mask: mask}, true
	}
	return listCond{kind: 'M', mask: word}, true
}

// listMatches reports whether a room passes every condition; name and
// mask conditions match if any of them does.
func listMatches(conds []listCond, info rooms.Info, now time.Time) bool {
	masks, maskHit := 0, false
	for _, c := range conds {
		switch c.kind {
		case 'M':
			masks++
			maskHit = maskHit || protocol.MatchMask(c.mask, info.Name)
		case 'N':
			if protocol.MatchMask(c.mask, info.Name) {
				return false
			}
		case 'U':
			if c.more && info.Members <= c.n || !c.more && info.Members >= c.n {
				return false
			}
		case 'C', 'T':
			at := info.Created
			if c.kind == 'T' {
				if info.TopicAt.IsZero() {
					return false
				}
				at = info.TopicAt
			}
			// C>n: older than n minutes; C<n: newer than n minutes.
			age := now.Sub(at)
			limit := time.Duration(c.n) * time.Minute
			if c.more && age <= limit || !c.more && age >= limit {
				return false
			}
		}
	}
	return masks == 0 || maskHit
}
