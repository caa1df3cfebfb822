package daemon

import (
	"crypto/subtle"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

func init() {
	register(&command{name: "CAP", run: handleCAP, minParams: 1, preReg: true})
	register(&command{name: "NICK", run: handleNICK, preReg: true, help: "NICK <nick> - change your nick"})
	register(&command{name: "USER", run: handleUSER, minParams: 4, preReg: true})
	register(&command{name: "PASS", run: handlePASS, minParams: 1, preReg: true})
}

// handlePASS records the server password the client gave; it is checked
// when registration completes. Accounts use SASL, LOGIN or REGISTER.
func handlePASS(s *Session, m *protocol.Message, _ []byte) error {
	if s.registered.Load() {
		return numErr(protocol.ERR_ALREADYREGISTERED, "You may not reregister")
	}
	s.more().pass = m.Params[0]
	return nil
}

// passwordOK reports whether the client gave the server password, if the
// server has one. The comparison takes the same time for any wrong guess.
func (s *Session) passwordOK() bool {
	want := s.srv.Config().ServerPassword
	return want == "" || subtle.ConstantTimeCompare([]byte(s.more().pass), []byte(want)) == 1
}

func handleUSER(s *Session, m *protocol.Message, _ []byte) error {
	if s.registered.Load() {
		return numErr(protocol.ERR_ALREADYREGISTERED, "You may not reregister")
	}
	realname := m.Params[3]
	if m.Params[0] == "" || realname == "" {
		return needMoreParams("USER")
	}
	if protocol.CheckText(realname) != nil {
		realname = ""
	}
	realname = s.fitRealname(realname)
	s.strict = true
	s.mu.Lock()
	s.user = "~" + sanitizeUser(m.Params[0])
	s.realname = realname
	s.mu.Unlock()
	s.tryRegister()
	return nil
}

// sanitizeUser keeps the characters of a user name that are safe inside a
// nick!user@host prefix.
// userLen is the longest user name sanitizeUser returns, before the '~'.
const userLen = 16

func sanitizeUser(u string) string {
	var b strings.Builder
	for i := 0; i < len(u) && b.Len() < userLen; i++ {
		c := u[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.[]{}\\|^`", c) >= 0 {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "user"
	}
	return b.String()
}

func handleNICK(s *Session, m *protocol.Message, _ []byte) error {
	if len(m.Params) == 0 || m.Params[0] == "" {
		return numErr(protocol.ERR_NONICKNAMEGIVEN, "No nickname given")
	}
	nick := m.Params[0]
	if err := protocol.CheckNick(nick); err != nil {
		return numErr(protocol.ERR_ERRONEUSNICKNAME, nick, "Erroneous nickname: use letters, digits and -_[]{}\\|^` (not first: digits, -), at most "+strconv.Itoa(protocol.NickLen)+" characters")
	}
	if s.srv.reservedNick(nick) {
		return numErr(protocol.ERR_ERRONEUSNICKNAME, nick, reservedReason(nick))
	}
	old := s.Nick()
	if nick == old {
		return nil
	}
	if s.nickReserved(nick) {
		return numErr(protocol.ERR_NICKNAMEINUSE, nick, "Nickname is registered to an account; log in to use it (LOGIN <name> <password>)")
	}
	if r := s.bannedInARoom(); r != "" {
		return numErr(protocol.ERR_BANNICKCHANGE, r, "Cannot change nickname while banned in "+r)
	}
	if !s.registered.Load() && s.asksForTwinNick(nick) {
		// A device logged in by SASL asking for its user's nick: it
		// gets it when it registers (completeRegistration).
		s.mu.Lock()
		s.nick = nick
		s.mu.Unlock()
		s.tryRegister()
		return nil
	}
	s.identMu.Lock()
	release, ok := s.renameUser(nick)
	if !ok {
		s.identMu.Unlock()
		return numErr(protocol.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")
	}
	defer release()
	if !s.registered.Load() {
		s.mu.Lock()
		s.nick = nick
		s.mu.Unlock()
		s.identMu.Unlock()
		s.tryRegister()
		return nil
	}
	s.changeNick(nick)
	s.identMu.Unlock()
	return nil
}

// bannedInARoom returns a room the session is banned in, if any: a banned
// member may not shed a nick ban by renaming.
func (s *Session) bannedInARoom() string {
	s.mu.Lock()
	joined := s.rooms()
	s.mu.Unlock()
	for _, r := range joined {
		if r.BlocksNickChange(s) {
			return r.Name()
		}
	}
	return ""
}

// changeNick renames a registered session (the nick is already claimed)
// and tells it and every peer in its rooms, each once.
func (s *Session) changeNick(nick string) {
	e := s.event("NICK", nick)
	e.ID, e.Origin = s.srv.ids.Next(), s.identity()
	old := s.Nick()
	s.setNick(nick)
	// Peers first: once the client sees its own NICK, everyone who shares
	// a room with it has the change queued too.
	notify(s.addTwins(s.updateRooms(rooms.MemberUpdate{Nick: &nick, Event: e})), e, nil)
	s.Reply(e.Render(s.Features()))
	s.renamed(old)
}

// tryRegister completes registration once NICK and USER are in and CAP
// negotiation (if any) has ended.
func (s *Session) tryRegister() {
	s.mu.Lock()
	ready := s.nick != "*" && s.user != ""
	s.mu.Unlock()
	if ready && !s.capPending {
		s.completeRegistration()
	}
}

// becomeGuestIfFresh is the netcat path: a connection that sends a normal
// command before registering is registered on the spot, as a guest when it
// has no nick yet. It refuses (false) while an IRC client is negotiating
// capabilities, as those clients expect 451.
func (s *Session) becomeGuestIfFresh() bool {
	if s.capPending {
		return false
	}
	s.mu.Lock()
	if s.nick == "*" {
		s.mu.Unlock()
		nick, release := s.srv.nicks.claimGuest(s)
		release() // the session had no nick
		s.mu.Lock()
		s.nick = nick
		s.guest = true
	}
	if s.user == "" {
		s.user = "~" + sanitizeUser(s.nick)
	}
	s.mu.Unlock()
	s.completeRegistration()
	return true
}

func (s *Session) completeRegistration() {
	if !s.passwordOK() {
		s.numeric(protocol.ERR_PASSWDMISMATCH, "Password incorrect: this server needs PASS <password> first")
		s.closeWith("Bad password")
		return
	}
	if s.refuseIfBanned() {
		return
	}
	account := s.Account()
	keptNick := false
	var twin *Session
	if account != "" {
		twin = s.twinFor(account)
	}
	if twin != nil && !s.joinDevices(twin) { // another device of a connected user: its nick, its rooms
		twin = nil
	}
	if twin == nil && account != "" {
		// Logged in with SASL before registering: the account's name is
		// the nick, as for LOGIN.
		if release, ok := s.takeAccountNick(account); ok {
			s.mu.Lock()
			s.nick = account
			s.mu.Unlock()
			release() // nobody knew the old nick: it was never announced
		} else {
			keptNick = true
		}
	}
	if twin == nil && !s.srv.nicks.holds(s) {
		// It asked for its user's nick as a device (asksForTwinNick) and
		// the user left meanwhile without the nick becoming its own.
		nick, release := s.srv.nicks.claimGuest(s)
		release()
		s.mu.Lock()
		s.nick = nick
		s.mu.Unlock()
	}
	if !s.strict {
		s.setMode(modeTerminal, true) // before the welcome: it is worded for them
	}
	s.identMu.Lock()
	s.registered.Store(true)
	s.deadlineSet = 0 // the registration deadline is not an idle one
	s.pushReadDeadline(time.Now())
	s.welcome()
	s.identMu.Unlock()
	if twin != nil {
		s.joinTwinRooms(twin)
		s.notice("You are connected on " + plural(len(s.twins()), "other device") + " as " + s.Nick() + "; you share its rooms (NickServ SET MULTICLIENT OFF to keep connections apart)")
		s.log().Info().Str("nick", s.Nick()).Str("account", account).Msg("registered as another device")
		return
	}
	s.monitorOnline()
	if keptNick {
		s.notice(keepNickNotice(account, s.Nick()))
	}
	s.log().Info().Str("nick", s.Nick()).Bool("guest", s.guest).Msg("registered")
}

// welcome sends 001-005 and the MOTD to IRC clients. A person in a
// terminal gets the 001 (scripts wait for it and learn their nick from
// it) and two lines saying what to type; the rest is for IRC clients.
func (s *Session) welcome() {
	cfg := s.srv.Config()
	nick := s.Nick()
	s.numeric(protocol.RPL_WELCOME, "Welcome to the "+cfg.Network+" network, "+nick)
	if s.terminal() {
		s.notice("You are " + nick + ". Type JOIN <room> to join a room, MSG <room> <text> to talk, HELP for all commands.")
		s.notice("FORMAT text shows the chat as plain lines ([#lobby] <alice> hi); FORMAT irc brings back IRC lines.")
		return
	}
	t := s.srv.welcomeBurst(cfg)
	t.info.send(s, nick)
	if host := s.Host(); host != hostIP(s.ip) {
		s.numeric(protocol.RPL_VISIBLEHOST, host, "is now your displayed host")
	}
	t.motd.send(s, nick)
}

// welcomeTemplate is the part of the welcome that is the same for every
// client under one config (002-005, the MOTD), encoded once. Encoding it
// for each client, tokens, parameter slices and all, was ~5% of the
// daemon's CPU and most of its allocations in a connect storm.
type welcomeTemplate struct {
	srv        *Server
	cfg        *configs.Config
	info, motd numericLines
}

// welcomeCache holds the template last built. One entry: a process runs
// one Server with one config at a time (tests run several, and rebuild).
var welcomeCache atomic.Pointer[welcomeTemplate]

func (srv *Server) welcomeBurst(cfg *configs.Config) *welcomeTemplate {
	if t := welcomeCache.Load(); t != nil && t.srv == srv && t.cfg == cfg {
		return t
	}
	t := &welcomeTemplate{srv: srv, cfg: cfg}
	add := func(l *numericLines, code string, params ...string) {
		l.add(protocol.Message{Source: cfg.ServerName, Command: code, Params: append([]string{"*"}, params...)})
	}
	add(&t.info, protocol.RPL_YOURHOST, "Your host is "+cfg.ServerName+", running version "+Version)
	add(&t.info, protocol.RPL_CREATED, "This server was created "+srv.created.UTC().Format("Mon Jan 2 2006 at 15:04:05 UTC"))
	add(&t.info, protocol.RPL_MYINFO, cfg.ServerName, Version, "Bio", "CIMRbefiklmnotv")
	tokens := srv.isupport()
	for len(tokens) > 0 {
		n := min(len(tokens), 12)
		add(&t.info, protocol.RPL_ISUPPORT, append(tokens[:n:n], "are supported by this server")...)
		tokens = tokens[n:]
	}
	if strings.TrimSpace(cfg.MOTD) == "" {
		add(&t.motd, protocol.ERR_NOMOTD, "MOTD File is missing")
	} else {
		add(&t.motd, protocol.RPL_MOTDSTART, "- "+cfg.ServerName+" Message of the day - ")
		for _, line := range strings.Split(strings.TrimRight(cfg.MOTD, "\n"), "\n") {
			add(&t.motd, protocol.RPL_MOTD, "- "+line)
		}
		add(&t.motd, protocol.RPL_ENDOFMOTD, "End of /MOTD command.")
	}
	welcomeCache.Store(t)
	return t
}

// numericLines are numerics to a nick not known yet: each is encoded with
// the placeholder nick "*" and split around it.
type numericLines struct {
	msgs        []protocol.Message // with Params[0] the placeholder
	heads, tail [][]byte           // ":server CODE " and what follows the nick
	size        int                // of every head and tail
}

func (l *numericLines) add(m protocol.Message) {
	line := m.AppendTo(nil)
	head := len(":" + m.Source + " " + m.Command + " ")
	l.msgs = append(l.msgs, m)
	l.heads = append(l.heads, line[:head:head])
	l.tail = append(l.tail, line[head+1:])
	l.size += len(line) - 1
}

// send queues the lines to s, addressed to nick, as its replies.
func (l *numericLines) send(s *Session, nick string) {
	for _, line := range l.encode(nick) {
		s.Reply(line)
	}
}

// encode returns the lines addressed to nick, in one allocation. A line
// the nick would take over the length limit is encoded as usual instead,
// which cuts it where any reply is cut.
func (l *numericLines) encode(nick string) [][]byte {
	out := make([][]byte, len(l.heads))
	buf := make([]byte, 0, l.size+len(l.heads)*len(nick))
	for i, head := range l.heads {
		if len(head)+len(nick)+len(l.tail[i])-2 > protocol.MaxBodyLen {
			m := l.msgs[i]
			m.Params = append([]string{nick}, m.Params[1:]...)
			out[i] = m.AppendTo(nil)
			continue
		}
		start := len(buf)
		buf = append(append(append(buf, head...), nick...), l.tail[i]...)
		out[i] = buf[start:len(buf):len(buf)]
	}
	return out
}

// isupport lists the 005 tokens.
func (srv *Server) isupport() []string {
	cfg := srv.Config()
	return []string{
		"ACCOUNTEXTBAN=a",
		"AWAYLEN=" + strconv.Itoa(protocol.TopicLen),
		"BOT=B",
		"CASEMAPPING=ascii",
		"CHANLIMIT=#:" + strconv.Itoa(cfg.Limits.MaxJoinedRooms),
		"CHANMODES=" + rooms.ChanModes,
		"CHANNELLEN=" + strconv.Itoa(protocol.RoomLen),
		"CHANTYPES=#",
		"ELIST=CMNTU",
		"EXCEPTS=e",
		"EXTBAN=$,a",
		"INVEX=I",
		"CHATHISTORY=" + strconv.Itoa(cfg.History.MaxQuery),
		"MONITOR=" + strconv.Itoa(cfg.Limits.Monitor),
		"MSGREFTYPES=msgid,timestamp",
		"NETWORK=" + cfg.Network,
		"NICKLEN=" + strconv.Itoa(protocol.NickLen),
		"PREFIX=(ov)@+",
		"STATUSMSG=@+",
		"TARGMAX=JOIN:,KICK:,LIST:,NAMES:,NOTICE:" + strconv.Itoa(maxTargets) + ",PART:,PRIVMSG:" + strconv.Itoa(maxTargets) + ",TAGMSG:1,WHOIS:1",
		"TOPICLEN=" + strconv.Itoa(protocol.TopicLen),
		"UTF8ONLY",
		"WHOX",
	}
}

func (s *Session) sendMOTD() {
	s.srv.welcomeBurst(s.srv.Config()).motd.send(s, s.Nick())
}
