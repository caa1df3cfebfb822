package daemon

import (
	"errors"
	"slices"
	"strings"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// maxTargets bounds the comma-separated targets of one PRIVMSG.
const maxTargets = 4

func init() {
	register(&command{name: "PRIVMSG", run: handlePRIVMSG})
	register(&command{name: "NOTICE", run: handlePRIVMSG})
	register(&command{name: "TAGMSG", run: handleTAGMSG, minParams: 1})
	register(&command{name: "MSG", run: handleMSG, minParams: 1, help: "MSG <room|nick> <text...> - say something in a room or to someone"})
}

// handlePRIVMSG serves PRIVMSG and NOTICE. NOTICE never gets an error
// reply, as the protocol requires (it prevents reply loops between bots).
func handlePRIVMSG(s *Session, m *protocol.Message, _ []byte) error {
	quiet := m.Command == "NOTICE"
	if len(m.Params) == 0 || m.Params[0] == "" {
		return loud(quiet, numErr(protocol.ERR_NORECIPIENT, "No recipient given ("+m.Command+")"))
	}
	if len(m.Params) < 2 || m.Params[1] == "" {
		return loud(quiet, numErr(protocol.ERR_NOTEXTTOSEND, "No text to send"))
	}
	tags := clientTags(m)
	targets := strings.Split(m.Params[0], ",")
	if len(targets) > maxTargets {
		return loud(quiet, numErr(protocol.ERR_TOOMANYTARGETS, m.Params[0], "Too many targets (at most 4)"))
	}
	for _, target := range targets {
		sp := rooms.Speech{Command: m.Command, Text: m.Params[1], Tags: tags}
		if err := s.deliver(target, sp); err != nil && !quiet {
			s.sendError(err)
		}
	}
	return nil
}

func loud(quiet bool, err error) error {
	if quiet {
		return nil
	}
	return err
}

// handleTAGMSG relays a message made only of client tags (typing
// notifications, reactions) to clients that take message tags.
func handleTAGMSG(s *Session, m *protocol.Message, _ []byte) error {
	return s.deliver(m.Params[0], rooms.Speech{Command: "TAGMSG", Tags: clientTags(m)})
}

// clientTags picks the client-only tags (+name) to relay; their size is
// bounded when the line is read.
func clientTags(m *protocol.Message) []protocol.Tag {
	var out []protocol.Tag
	for _, t := range m.Tags {
		if strings.HasPrefix(t.Key, "+") {
			out = append(out, t)
		}
	}
	return out
}

// handleMSG is the netcat form: MSG <target> <text...>, the text being the
// rest of the line as typed, and the target as for PRIVMSG (see roomTarget).
func handleMSG(s *Session, m *protocol.Message, raw []byte) error {
	text := restOfLine(raw, 1)
	if text == "" {
		return numErr(protocol.ERR_NOTEXTTOSEND, "No text to send: MSG <room|nick> <text>")
	}
	return s.deliver(m.Params[0], rooms.Speech{Command: "PRIVMSG", Text: text})
}

// deliver sends one message to a room or a nick (see roomTarget).
func (s *Session) deliver(target string, sp rooms.Speech) error {
	if sp.Command != "TAGMSG" && sp.Lines == nil { // a multiline message's lines were checked one by one
		if err := textError(sp.Command, target, sp.Text); err != nil {
			return err
		}
	}
	if s.bot.Load() {
		// IRCv3 bot-mode: message-tags clients can tell a bot's lines.
		sp.Tags = append(slices.Clip(sp.Tags), protocol.Tag{Key: "bot"})
	}
	if len(target) > 1 && (target[0] == '@' || target[0] == '+') && protocol.IsRoomName(target[1:]) {
		// STATUSMSG: "@#room" reaches the room's operators, "+#room"
		// its voiced members and operators.
		sp.Status, target = target[0], target[1:]
	}
	toRoom := protocol.IsRoomName(target)
	if svc := serviceFor(target); svc != nil && !toRoom {
		if sp.Command == "PRIVMSG" { // a NOTICE is never answered
			svc.serve(s, sp.Text)
		}
		return nil
	}
	if !toRoom && s.srv.reservedNick(target) {
		// Nobody holds these names, so e.g. "IDENTIFY <password>" meant
		// for NickServ reaches no one; say so rather than fall through
		// to MSG's room lookup.
		return numErr(protocol.ERR_NOSUCHNICK, target, "No such nick: "+reservedReason(target)+"; your message was not delivered")
	}
	if name, ok := s.roomTarget(target); ok {
		return s.sayInRoom(name, sp)
	}
	return s.sayToNick(target, sp)
}

func (s *Session) sayInRoom(target string, sp rooms.Speech) error {
	name, err := s.roomName(target)
	if err != nil {
		return err
	}
	r := s.joinedRoom(name)
	// Wait for the room when the sender expects its echo, a labeled reply
	// or (not being a member) possibly an error, so replies come in order;
	// otherwise the reader moves on.
	wait := s.Features()&rooms.FeatEcho != 0 || s.hasCap(capLabeledResponse)
	if r == nil {
		if r = s.srv.rooms.Get(name); r == nil {
			return numErr(protocol.ERR_NOSUCHCHANNEL, name, "No such room (JOIN "+name+" to create it)")
		}
		sp.From, wait = s.member(), true
	}
	sp.Text, sp.Lines = s.speechText(sp, r.Name())
	if r.Say(s, sp, wait) != nil {
		return numErr(protocol.ERR_NOSUCHCHANNEL, name, "No such room")
	}
	return nil
}

func (s *Session) sayToNick(nick string, sp rooms.Speech) error {
	t := s.srv.nicks.get(nick)
	if (t == nil || !t.registered.Load()) && s.srv.cluster != nil {
		if sent, err := s.sayToRemoteNick(nick, sp); sent || err != nil {
			return err
		}
	}
	if t == nil || !t.registered.Load() {
		if s.strict {
			return numErr(protocol.ERR_NOSUCHNICK, nick, "No such nick or room (room names start with #)")
		}
		return numErr(protocol.ERR_NOSUCHNICK, nick, "No such nick or room")
	}
	params := []string{t.Nick()}
	var lines []rooms.Line
	if sp.Command != "TAGMSG" {
		var text string
		text, lines = s.speechText(sp, t.Nick())
		params = append(params, text)
	}
	e := s.event(sp.Command, params...)
	e.ID, e.Tags, e.Lines = s.srv.ids.Next(), sp.Tags, lines
	// Into history before anyone sees it: a reply must never be logged
	// ahead of what it answers, and sync: always means durable first.
	if sp.Command != "TAGMSG" || e.KeepsTagmsg() {
		if err := s.srv.privates.add(s, t, e); err != nil {
			s.srv.historyFailed(err)
		}
	}
	// The target on every device, and the sender's other devices, as
	// echo-message clients see their own messages.
	rs := rooms.NewRenderings(e)
	var one [4]*Session
	to := append(one[:0], t) // s too, when s writes to its own nick
	if t.group.Load() != nil {
		to = t.withTwins()
	}
	if g := s.group.Load(); g != nil && g != t.group.Load() {
		to = append(to, s.twins()...)
	}
	for _, d := range to {
		if sp.Command != "TAGMSG" || d.Features()&rooms.FeatTags != 0 {
			d.Send(rs.For(d.Features()))
		}
	}
	if f := s.Features(); f&rooms.FeatEcho != 0 && (sp.Command != "TAGMSG" || f&rooms.FeatTags != 0) {
		s.Reply(rs.For(f))
	}
	if away := t.away.Load(); away != nil && sp.Command == "PRIVMSG" {
		s.numeric(protocol.RPL_AWAY, t.Nick(), *away)
	}
	return nil
}

// textError checks user text: valid UTF-8 and no control characters
// other than IRC formatting.
func textError(command, target, text string) error {
	switch err := protocol.CheckText(text); {
	case err == nil:
		return nil
	case errors.Is(err, protocol.ErrInvalidUTF8):
		return failErr(command, "INVALID_UTF8", target, "Message rejected: it contained invalid UTF-8")
	default:
		return failErr(command, "INVALID_TEXT", target, "Message rejected: it contained control characters")
	}
}

// fit cuts text so that the line everyone gets, ":<our prefix> <command>
// <middle>... :<text>", fits in 512 bytes. It is done once, before the text
// reaches anyone, so the echo, the history and every member see the same
// words. Like most servers we cut silently: clients split long input
// themselves, and those that do not see the cut in their echo.
func (s *Session) fit(text, command string, middle ...string) string {
	return protocol.FitText(text, s.prefixLen(), command, middle...)
}

// fitKept is fit for text the session keeps and sends again later (an away
// message, a real name), possibly after a NICK or before USER: it leaves
// room for the longest nick and user name ("~" and userLen), and for the
// longer of the host and any host CHGHOST may give.
func (s *Session) fitKept(text, command string, middle ...string) string {
	return protocol.FitText(text, protocol.NickLen+1+1+userLen+1+max(len(s.Host()), maxHostLen), command, middle...)
}
