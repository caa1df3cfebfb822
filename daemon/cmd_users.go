package daemon

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

func init() {
	register(&command{name: "PING", run: handlePING, preReg: true})
	register(&command{name: "PONG", run: handlePONG, preReg: true})
	register(&command{name: "QUIT", run: handleQUIT, preReg: true, help: "QUIT [reason] - leave the server"})
	register(&command{name: "WHOIS", run: handleWHOIS, minParams: 1, help: "WHOIS <nick> - who someone is"})
	register(&command{name: "AWAY", run: handleAWAY, preReg: true, help: "AWAY [message] - mark yourself away (no message: back)"})
	register(&command{name: "MOTD", run: handleMOTD, help: "MOTD - the message of the day"})
	register(&command{name: "HELP", run: handleHELP, help: "HELP - this list"})
	register(&command{name: "SETNAME", run: handleSETNAME, minParams: 1})
	register(&command{name: "USERHOST", run: handleUSERHOST, minParams: 1})
}

func handlePING(s *Session, m *protocol.Message, _ []byte) error {
	if len(m.Params) == 0 || m.Params[0] == "" {
		return numErr(protocol.ERR_NOORIGIN, "No origin specified")
	}
	server := s.srv.Config().ServerName
	s.reply(protocol.Message{Source: server, Command: "PONG", Params: []string{server, m.Params[0]}})
	return nil
}

// handlePONG has nothing to do: any line from the client already counts
// as a sign of life in the reader loop.
func handlePONG(*Session, *protocol.Message, []byte) error { return nil }

func handleQUIT(s *Session, m *protocol.Message, _ []byte) error {
	reason := "Quit"
	if msg := m.Param(0); msg != "" && protocol.CheckText(msg) == nil {
		reason = s.fit("Quit: "+protocol.TruncateText(msg, protocol.TopicLen), "QUIT")
	}
	// The reader loop ends on it, and the session's teardown sends ERROR.
	s.quit = reason
	return nil
}

func handleWHOIS(s *Session, m *protocol.Message, _ []byte) error {
	// WHOIS [server] nick: the nick is the last parameter.
	nick := m.Params[len(m.Params)-1]
	t := s.srv.nicks.get(nick)
	var w whoisInfo
	switch {
	case t != nil && t.registered.Load():
		w = t.whoisOf()
	case s.srv.cluster != nil && s.remoteWhois(nick, &w):
	default:
		s.numeric(protocol.ERR_NOSUCHNICK, nick, "No such nick")
		s.numeric(protocol.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
		return nil
	}
	self := t == s
	multi := s.hasCap(capMultiPrefix)
	names := make([]string, 0, len(w.Rooms))
	for _, r := range w.Rooms {
		if !self && !s.seesInside(r.Name, r.Secret) {
			continue
		}
		prefix := r.Prefix
		if !multi && len(prefix) > 1 {
			prefix = prefix[:1]
		}
		names = append(names, prefix+r.Name)
	}
	sort.Strings(names)
	cfg := s.srv.Config()
	nick = w.Nick
	s.numeric(protocol.RPL_WHOISUSER, nick, w.User, w.Host, "*", w.Realname)
	if len(names) > 0 {
		s.numeric(protocol.RPL_WHOISCHANNELS, nick, strings.Join(names, " "))
	}
	// Anonymous users are marked in the server line: 320 (WHOISSPECIAL)
	// is meant for what operators configure, and clients show 312 anyway.
	info := cfg.Network
	if w.Account == "" {
		info += " (anonymous: not logged in)"
	}
	s.numeric(protocol.RPL_WHOISSERVER, nick, w.Server, info)
	if w.Oper {
		s.numeric(protocol.RPL_WHOISOPERATOR, nick, "is an IRC operator")
	}
	if w.Bot {
		s.numeric(protocol.RPL_WHOISBOT, nick, "is a bot on "+cfg.Network)
	}
	if w.Away != nil {
		s.numeric(protocol.RPL_AWAY, nick, *w.Away)
	}
	if w.Account != "" {
		s.numeric(protocol.RPL_WHOISACCOUNT, nick, w.Account, "is logged in as")
	}
	if self || s.oper.Load() {
		// The cloak hides the address from everyone else.
		ip := hostIP(w.IP)
		s.numeric(protocol.RPL_WHOISACTUALLY, nick, w.User+"@"+ip, ip, "Actual user@host, Actual IP")
		s.numeric(protocol.RPL_WHOISHOST, nick, "is connecting from *@"+ip+" "+ip)
	}
	if w.Secure {
		s.numeric(protocol.RPL_WHOISSECURE, nick, "is using a secure connection")
	}
	if w.CertFP != "" && (self || s.oper.Load()) {
		s.numeric(protocol.RPL_WHOISCERTFP, nick, "has client certificate fingerprint "+w.CertFP)
	}
	s.numeric(protocol.RPL_WHOISIDLE, nick, strconv.FormatInt(w.Idle, 10), strconv.FormatInt(w.Signon, 10), "seconds idle, signon time")
	s.numeric(protocol.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
	return nil
}

// whoisInfo is what WHOIS shows of a user, gathered on the user's node; the
// asker's node decides what the asker may see of it.
type whoisInfo struct {
	Nick, User, Host, IP, Realname, Account, Server string
	CertFP                                          string  `json:",omitempty"`
	Away                                            *string `json:",omitempty"`
	Oper, Secure                                    bool
	Bot                                             bool `json:",omitempty"`
	Idle, Signon                                    int64
	Rooms                                           []whoisRoom
}

type whoisRoom struct {
	Name   string
	Secret bool
	Prefix string // every prefix the user has in the room
}

func (t *Session) whoisOf() whoisInfo {
	t.mu.Lock()
	w := whoisInfo{Nick: t.nick, User: t.user, Host: t.host, Realname: t.realname}
	joined := t.rooms()
	t.mu.Unlock()
	w.IP, w.Account, w.Server = t.ip, t.Account(), t.srv.Config().ServerName
	w.Away, w.Oper, w.Secure, w.CertFP = t.away.Load(), t.oper.Load(), t.secure(), t.certFP()
	w.Bot = t.bot.Load()
	w.Idle, w.Signon = int64(time.Since(t.lastActive()).Seconds()), time.Unix(0, t.connected).Unix()
	for _, r := range joined {
		w.Rooms = append(w.Rooms, whoisRoom{Name: r.Name(), Secret: r.Secret(), Prefix: r.PrefixOf(t, true)})
	}
	return w
}

// lastActive is when the session last sent a line. Safe from any goroutine.
func (s *Session) lastActive() time.Time {
	return time.Unix(0, s.activeAt.Load())
}

// handleUSERHOST answers with nick=+user@host (- when away) for up to five
// nicks; the host is the cloak, except for oneself and to operators.
func handleUSERHOST(s *Session, m *protocol.Message, _ []byte) error {
	var replies []string
	for _, nick := range m.Params[:min(len(m.Params), 5)] {
		t := s.srv.nicks.get(nick)
		if t == nil || !t.registered.Load() {
			continue
		}
		host := t.Host()
		if t == s || s.oper.Load() {
			host = hostIP(t.ip) // as in WHOIS 338: clients ask for their own address this way
		}
		t.mu.Lock()
		entry := t.nick + "=+" + t.user + "@" + host
		t.mu.Unlock()
		if t.Away() {
			entry = strings.Replace(entry, "=+", "=-", 1)
		}
		replies = append(replies, entry)
	}
	s.numeric(protocol.RPL_USERHOST, strings.Join(replies, " "))
	return nil
}

// awayStar is what "AWAY *" (draft/pre-away: away, no message given, as
// a client connecting in the background says) shows to others.
const awayStar = "Away"

func handleAWAY(s *Session, m *protocol.Message, _ []byte) error {
	if !s.registered.Load() && !s.hasCap(capPreAway) && !s.becomeGuestIfFresh() {
		// AWAY is a registration command only with draft/pre-away.
		return numErr(protocol.ERR_NOTREGISTERED, "You have not registered")
	}
	msg := m.Param(0)
	if msg == "*" {
		msg = awayStar
	}
	if !s.registered.Load() {
		// draft/pre-away: kept quietly; the welcome says nothing of it,
		// and rooms joined later learn it with the JOIN (away-notify).
		if err := textError("AWAY", "*", msg); err != nil {
			return err
		}
		if msg == "" {
			s.away.Store(nil)
		} else {
			msg = s.fitKept(protocol.TruncateText(msg, protocol.TopicLen), "AWAY")
			s.away.Store(&msg)
		}
		return nil
	}
	if msg == "" {
		s.setAway(nil)
		notify(s.andWatchers(s.updateRooms(rooms.MemberUpdate{})), s.event("AWAY"), wantsCap(capAwayNotify))
		s.numeric(protocol.RPL_UNAWAY, "You are no longer marked as being away")
		return nil
	}
	if err := textError("AWAY", "*", msg); err != nil {
		return err
	}
	msg = s.fitKept(protocol.TruncateText(msg, protocol.TopicLen), "AWAY")
	s.setAway(&msg)
	notify(s.andWatchers(s.updateRooms(rooms.MemberUpdate{})), s.event("AWAY", msg), wantsCap(capAwayNotify))
	s.numeric(protocol.RPL_NOWAWAY, "You have been marked as being away")
	return nil
}

// handleSETNAME changes the real name (IRCv3 setname); the session and
// peers that negotiated setname see it.
func handleSETNAME(s *Session, m *protocol.Message, _ []byte) error {
	name := m.Params[0]
	if err := textError("SETNAME", "*", name); err != nil {
		return failErr("SETNAME", "INVALID_REALNAME", "Real names may not contain control characters")
	}
	name = s.fitRealname(protocol.TruncateText(name, protocol.TopicLen))
	for _, t := range s.withTwins() { // one user on every device
		t.mu.Lock()
		t.realname = name
		t.mu.Unlock()
	}
	e := s.event("SETNAME", name)
	notify(s.andWatchers(s.addTwins(s.updateRooms(rooms.MemberUpdate{Realname: &name}))), e, wantsCap(capSetname))
	if s.hasCap(capSetname) {
		s.Reply(e.Render(s.Features()))
	}
	return nil
}

// longestJoin is the middle of the longest line a real name goes out in:
// extended-join's "JOIN <room> <account> :<real name>".
var longestJoin = []string{strings.Repeat("#", protocol.RoomLen), strings.Repeat("a", protocol.NickLen)}

// fitRealname fits a real name into every line it is sent in, whatever
// room the session joins later.
func (s *Session) fitRealname(name string) string {
	return s.fitKept(name, "JOIN", longestJoin...)
}

func handleMOTD(s *Session, _ *protocol.Message, _ []byte) error {
	s.sendMOTD()
	return nil
}

// helpOrder lists the commands HELP shows, most useful first.
var helpOrder = []string{
	"JOIN", "MSG", "PART", "NICK", "TOPIC", "NAMES", "LIST", "WHO", "WHOIS", "WHOWAS", "MONITOR", "AWAY",
	"REGISTER", "LOGIN", "LOGOUT", "TOKEN", "CERTFP",
	"OP", "DEOP", "VOICE", "DEVOICE", "KICK", "BAN", "UNBAN", "INVITE", "MODE", "ROOM",
	"FORMAT", "MOTD", "HELP", "QUIT",
	"NICKSERV", "CHANSERV",
	"KLINE", "UNKLINE", "DLINE", "UNDLINE", "STATS",
}

func handleHELP(s *Session, _ *protocol.Message, _ []byte) error {
	s.numeric(protocol.RPL_HELPSTART, "*", "livechat commands (an IRC client's usual commands work too):")
	for _, name := range helpOrder {
		s.numeric(protocol.RPL_HELPTXT, "*", commandTable[name].help)
	}
	s.numeric(protocol.RPL_ENDOFHELP, "*", "End of /HELP")
	return nil
}
