package daemon

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/livechat/livechat/daemon/cluster"

	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/protocol"
)

// NickServ and ChanServ are aliases onto the commands livechat already
// has, for the clients and bots that log in with /msg NickServ IDENTIFY
// and for people used to services: each service command builds the line
// of the command it stands for and runs its handler, so the throttles,
// quotas and checks are those of LOGIN, REGISTER, ROOM, OP, ... Replies
// the handler sends itself (900, ROOM's notices, MODE) arrive as usual;
// the errors it returns arrive as NOTICEs from the service. Nobody can
// hold these names (protocol.IsServiceName).

func init() {
	register(&command{name: "NICKSERV", run: serviceCommand("NickServ"), help: "NICKSERV <command> - or /msg NickServ: IDENTIFY, REGISTER, GHOST, RECOVER, INFO, SET PASSWORD, DROP (HELP lists them)"})
	register(&command{name: "NS", run: serviceCommand("NickServ")})
	register(&command{name: "CHANSERV", run: serviceCommand("ChanServ"), help: "CHANSERV <command> - or /msg ChanServ: REGISTER, DROP, OP, DEOP, INFO (HELP lists them)"})
	register(&command{name: "CS", run: serviceCommand("ChanServ")})
}

type service struct {
	name     string
	commands map[string]serviceCmd
}

type serviceCmd struct {
	min   int // words after the command
	usage string
	run   func(s *Session, svc *service, args []string) error
}

var nickServ, chanServ *service

func init() {
	nickServ = &service{name: "NickServ", commands: map[string]serviceCmd{
		"IDENTIFY": {1, "IDENTIFY [account] <password> - log in (LOGIN)", nsIdentify},
		"LOGIN":    {1, "", nsIdentify},
		"REGISTER": {1, "REGISTER <password> [email] - register your nick as an account (REGISTER)", nsRegister},
		"GHOST":    {1, "GHOST <nick> - disconnect your other connection using <nick>", nsGhost(false)},
		"RECOVER":  {1, "RECOVER <nick> - take your account's nick back from whoever uses it", nsGhost(true)},
		"INFO":     {0, "INFO [account] - when an account was registered, and whether it is online", nsInfo},
		"SET":      {2, "SET PASSWORD <new password> - change your account's password; SET MULTICLIENT ON|OFF|DEFAULT - whether your connections share one nick and its rooms", nsSet},
		"DROP":     {0, "DROP <account> - delete your account and log out everywhere (name it to confirm)", nsDrop},
		"LOGOUT": {0, "LOGOUT - log out (LOGOUT)", func(s *Session, _ *service, _ []string) error {
			return handleLOGOUT(s, &protocol.Message{Command: "LOGOUT"}, nil)
		}},
	}}
	chanServ = &service{name: "ChanServ", commands: map[string]serviceCmd{
		"REGISTER": {1, "REGISTER <room> - own a room with your account (ROOM CLAIM)", csRoom("CLAIM")},
		"DROP":     {1, "DROP <room> - release a room you own (ROOM DROP)", csRoom("DROP")},
		"OP":       {1, "OP <room> [nick] - make yourself or someone a room operator (OP)", csRole("+o")},
		"DEOP":     {1, "DEOP <room> [nick] - take operator status away (DEOP)", csRole("-o")},
		"VOICE":    {1, "VOICE <room> [nick] - give voice (VOICE)", csRole("+v")},
		"DEVOICE":  {1, "DEVOICE <room> [nick] - take voice away (DEVOICE)", csRole("-v")},
		"INFO":     {1, "INFO <room> - who owns a room, since when, and its topic", csInfo},
	}}
}

// serviceFor returns the service a PRIVMSG target names, or nil.
func serviceFor(target string) *service {
	switch protocol.FoldNick(target) {
	case "nickserv":
		return nickServ
	case "chanserv":
		return chanServ
	}
	return nil
}

// serviceCommand serves NICKSERV/NS and CHANSERV/CS, the commands some
// clients send for /ns and /cs.
func serviceCommand(name string) handler {
	return func(s *Session, m *protocol.Message, _ []byte) error {
		serviceFor(name).serve(s, strings.Join(m.Params, " "))
		return nil
	}
}

// serve runs one line sent to the service.
func (svc *service) serve(s *Session, text string) {
	words := strings.Fields(text)
	if len(words) == 0 || strings.EqualFold(words[0], "HELP") {
		svc.help(s)
		return
	}
	name := strings.ToUpper(words[0])
	cmd, ok := svc.commands[name]
	if !ok {
		svc.notice(s, "Unknown command "+name+"; /msg "+svc.name+" HELP lists the commands")
		return
	}
	if len(words)-1 < cmd.min {
		svc.notice(s, "Not enough parameters: "+cmd.usageOr(name))
		return
	}
	if err := cmd.run(s, svc, words[1:]); err != nil {
		svc.fail(s, err)
	}
}

func (c serviceCmd) usageOr(name string) string {
	if c.usage == "" {
		return name
	}
	return c.usage
}

func (svc *service) help(s *Session) {
	lines := make([]string, 0, len(svc.commands))
	for _, c := range svc.commands {
		if c.usage != "" {
			lines = append(lines, c.usage)
		}
	}
	sort.Strings(lines)
	svc.notice(s, svc.name+" stands for livechat's own commands; /msg "+svc.name+" <command>:")
	for _, l := range lines {
		svc.notice(s, l)
	}
}

func (svc *service) notice(s *Session, text string) {
	s.reply(protocol.Message{Source: svc.name + "!" + svc.name + "@" + s.srv.Config().ServerName, Command: "NOTICE", Params: []string{s.Nick(), text}})
}

// fail tells the user what went wrong in the underlying command's words:
// the description its reply would have carried.
func (svc *service) fail(s *Session, err error) {
	var re *replyError
	if !errors.As(err, &re) || len(re.params) == 0 {
		s.sendError(err)
		return
	}
	svc.notice(s, re.params[len(re.params)-1])
}

func nsIdentify(s *Session, svc *service, args []string) error {
	account, password := s.Nick(), args[0]
	if len(args) > 1 {
		account, password = args[0], args[1]
	}
	if err := handleLOGIN(s, &protocol.Message{Command: "LOGIN", Params: []string{account, password}}, nil); err != nil {
		return err
	}
	svc.notice(s, "You are now identified for "+s.Account())
	return nil
}

func nsRegister(s *Session, svc *service, args []string) error {
	if err := handleREGISTER(s, &protocol.Message{Command: "REGISTER", Params: []string{s.Nick(), args[0]}}, nil); err != nil {
		return err
	}
	svc.notice(s, "Your account "+s.Account()+" is registered, and you are logged in to it")
	return nil
}

// nsGhost serves GHOST (disconnect your other connection holding nick) and
// RECOVER (take your account's nick back: whoever holds it becomes a
// guest). What a logged-in user could do by logging in again anyway.
func nsGhost(take bool) func(*Session, *service, []string) error {
	return func(s *Session, svc *service, args []string) error { return ghost(s, svc, args[0], take) }
}

func ghost(s *Session, svc *service, nick string, take bool) error {
	acct := s.Account()
	if acct == "" {
		return numErr(protocol.ERR_UNKNOWNERROR, "GHOST", "Log in first: /msg NickServ IDENTIFY <password>")
	}
	ours := protocol.FoldNick(nick) == protocol.FoldNick(acct)
	h := s.srv.nicks.get(nick)
	if h != nil && !h.registered.Load() {
		h = nil
	}
	if h == nil {
		if rh, ok := s.srv.remoteHolder(nick); ok {
			return ghostRemote(s, svc, rh, nick, acct, ours, take)
		}
	}
	if h == s {
		return numErr(protocol.ERR_UNKNOWNERROR, "GHOST", nick+" is you")
	}
	mine := h != nil && protocol.FoldNick(h.Account()) == protocol.FoldNick(acct)
	if h != nil && !mine && !ours {
		return numErr(protocol.ERR_UNKNOWNERROR, "GHOST", nick+" is neither your account's nick nor one of your connections")
	}
	switch {
	case h == nil && !ours:
		return numErr(protocol.ERR_NOSUCHNICK, nick, nick+" is not online")
	case h == nil:
	case mine && !take:
		h.closeWith("Disconnected by GHOST from " + s.Nick())
		svc.notice(s, nick+" is disconnected")
		return nil
	default:
		h.becomeGuest("Your nick was taken back by " + acct + " (RECOVER)")
	}
	return recovered(s, svc, nick, acct, ours)
}

// ghostRemote is ghost for a nick held on another node of the cluster.
func ghostRemote(s *Session, svc *service, h cluster.Holder, nick, acct string, ours, take bool) error {
	mine := protocol.FoldNick(h.Account) == protocol.FoldNick(acct)
	if !mine && !ours {
		return numErr(protocol.ERR_UNKNOWNERROR, "GHOST", nick+" is neither your account's nick nor one of your connections")
	}
	closeIt := mine && !take
	why := "Your nick was taken back by " + acct + " (RECOVER)"
	if closeIt {
		why = "Disconnected by GHOST from " + s.Nick()
	}
	if err := s.srv.evictRemote(h, why, closeIt); err != nil {
		return numErr(protocol.ERR_UNKNOWNERROR, "GHOST", "The server holding "+nick+" did not answer; try again")
	}
	if closeIt {
		svc.notice(s, nick+" is disconnected")
		return nil
	}
	return recovered(s, svc, nick, acct, ours)
}

// recovered ends GHOST and RECOVER once nick's holder is gone or renamed:
// the account's own nick comes back to s.
func recovered(s *Session, svc *service, nick, acct string, ours bool) error {
	if !ours {
		svc.notice(s, nick+" is free")
		return nil
	}
	s.adoptAccountNick(acct)
	if protocol.FoldNick(s.Nick()) == protocol.FoldNick(acct) {
		svc.notice(s, "You are "+s.Nick()+" again")
	}
	return nil
}

func nsInfo(s *Session, svc *service, args []string) error {
	name := s.Nick()
	if len(args) > 0 {
		name = args[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), accountTimeout)
	defer cancel()
	a, err := s.srv.accounts.Lookup(ctx, name)
	switch {
	case errors.Is(err, accounts.ErrNotFound):
		return numErr(protocol.ERR_UNKNOWNERROR, "INFO", name+" is not a registered account")
	case err != nil:
		return numErr(protocol.ERR_UNKNOWNERROR, "INFO", "Could not look the account up; try again later")
	}
	svc.notice(s, "Account "+a.Name+", registered "+a.Created.UTC().Format(time.RFC1123))
	if h := s.srv.nicks.get(a.Name); h != nil && protocol.FoldNick(h.Account()) == protocol.FoldNick(a.Name) {
		svc.notice(s, a.Name+" is online")
	}
	return nil
}

func nsSet(s *Session, svc *service, args []string) error {
	what := strings.ToUpper(args[0])
	if what != "PASSWORD" && what != "MULTICLIENT" {
		return numErr(protocol.ERR_UNKNOWNERROR, "SET", "Only SET PASSWORD <new password> and SET MULTICLIENT ON|OFF|DEFAULT are known")
	}
	acct := s.Account()
	if acct == "" {
		return numErr(protocol.ERR_UNKNOWNERROR, "SET", "Log in first: /msg NickServ IDENTIFY <password>")
	}
	ctx, cancel := context.WithTimeout(context.Background(), accountTimeout)
	defer cancel()
	if what == "MULTICLIENT" {
		return nsSetMulticlient(ctx, s, svc, acct, args[1])
	}
	if err := s.srv.accounts.ChangePassword(ctx, acct, args[1], s.source()); err != nil {
		_, reply := registerFailure(acct, err, s.srv.accountCfg.MinPasswordLen)
		return reply
	}
	s.log().Info().Str("account", acct).Msg("password changed")
	svc.notice(s, "The password of "+acct+" is changed")
	return nil
}

// nsSetMulticlient records whether the account's later connections join
// its connected one as devices (see twinFor). Connections already joined
// stay so until they disconnect.
func nsSetMulticlient(ctx context.Context, s *Session, svc *service, acct, value string) error {
	value = strings.ToLower(value)
	switch value {
	case "on", "off":
	case "default":
		value = ""
	default:
		return numErr(protocol.ERR_UNKNOWNERROR, "SET", "SET MULTICLIENT takes ON, OFF or DEFAULT")
	}
	if err := s.srv.accounts.SetMulticlient(ctx, acct, value); err != nil {
		s.log().Error().Err(err).Str("account", acct).Msg("set multiclient failed")
		return numErr(protocol.ERR_UNKNOWNERROR, "SET", "Could not save the setting; try again later")
	}
	state := "off"
	if s.srv.multiclientFor(acct) {
		state = "on"
	}
	svc.notice(s, "Multiclient for "+acct+" is now "+state+": "+multiclientMeaning(state == "on"))
	return nil
}

func multiclientMeaning(on bool) string {
	if on {
		return "a connection that logs in to it joins your connected one, with the same nick and rooms"
	}
	return "a connection that logs in to it keeps a nick of its own"
}

// nsDrop deletes the session's account once the user names it: one stray
// line from a session left open should not delete an account.
func nsDrop(s *Session, svc *service, args []string) error {
	acct := s.Account()
	if acct == "" {
		return numErr(protocol.ERR_UNKNOWNERROR, "DROP", "Log in first: /msg NickServ IDENTIFY <password>")
	}
	if len(args) == 0 || protocol.FoldNick(args[0]) != protocol.FoldNick(acct) {
		return numErr(protocol.ERR_UNKNOWNERROR, "DROP", "This deletes the account "+acct+" for good and logs it out everywhere; to confirm: /msg NickServ DROP "+acct)
	}
	if _, _, err := s.logoutEverywhere(acct); err != nil {
		s.log().Error().Err(err).Str("account", acct).Msg("drop: logout everywhere failed")
		return numErr(protocol.ERR_UNKNOWNERROR, "DROP", "Could not drop the account; try again later")
	}
	ctx, cancel := context.WithTimeout(context.Background(), accountTimeout)
	defer cancel()
	if err := s.srv.accounts.Drop(ctx, acct); err != nil {
		s.log().Error().Err(err).Str("account", acct).Msg("drop failed")
		return numErr(protocol.ERR_UNKNOWNERROR, "DROP", "Could not drop the account; try again later")
	}
	s.log().Info().Str("account", acct).Msg("account dropped")
	svc.notice(s, "The account "+acct+" is deleted")
	return handleLOGOUT(s, &protocol.Message{Command: "LOGOUT"}, nil)
}

// csRoom maps REGISTER/DROP onto ROOM CLAIM/DROP.
func csRoom(sub string) func(*Session, *service, []string) error {
	return func(s *Session, _ *service, args []string) error {
		return handleROOM(s, &protocol.Message{Command: "ROOM", Params: []string{sub, args[0]}}, nil)
	}
}

// csRole maps OP/DEOP/VOICE/DEVOICE <room> [nick] onto the commands of the
// same name; the nick defaults to the user's own.
func csRole(change string) func(*Session, *service, []string) error {
	run := roleCommand(change)
	return func(s *Session, _ *service, args []string) error {
		nick := s.Nick()
		if len(args) > 1 {
			nick = args[1]
		}
		return run(s, &protocol.Message{Params: []string{args[0], nick}}, nil)
	}
}

func csInfo(s *Session, svc *service, args []string) error {
	r, err := s.existingRoom(args[0])
	if err != nil {
		return err
	}
	info := r.Info()
	saved, ok, err := s.srv.roomStore.Load(protocol.FoldRoom(info.Name))
	switch {
	case err != nil:
		return numErr(protocol.ERR_UNKNOWNERROR, "INFO", "Could not look the room up; try again later")
	case ok && saved.Owner != "":
		svc.notice(s, info.Name+" is owned by "+saved.Owner+"; created "+info.Created.UTC().Format(time.RFC1123))
	default:
		svc.notice(s, info.Name+" is not owned by anyone (/msg ChanServ REGISTER "+info.Name+" as its operator); created "+info.Created.UTC().Format(time.RFC1123))
	}
	if info.Topic != "" && s.seesInside(info.Name, info.Secret) {
		svc.notice(s, "Topic: "+info.Topic)
	}
	return nil
}
