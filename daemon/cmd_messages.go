package daemon

import (
	"errors"
	"strings"

	"github.com/livechat/livechat/protocol"
)

// maxTargets bounds the comma-separated targets of one PRIVMSG.
const maxTargets = 4

func init() {
	register(&command{name: "PRIVMSG", run: handlePRIVMSG})
	register(&command{name: "NOTICE", run: handlePRIVMSG})
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
	targets := strings.Split(m.Params[0], ",")
	if len(targets) > maxTargets {
		return loud(quiet, numErr(protocol.ERR_TOOMANYTARGETS, m.Params[0], "Too many targets (at most 4)"))
	}
	for _, target := range targets {
		if err := s.deliver(m.Command, target, m.Params[1], false); err != nil && !quiet {
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

// handleMSG is the netcat form: MSG <target> <text...>, the text being the
// rest of the line as typed, and the target a room with or without '#'.
func handleMSG(s *Session, m *protocol.Message, raw []byte) error {
	text := restOfLine(raw, 1)
	if text == "" {
		return numErr(protocol.ERR_NOTEXTTOSEND, "No text to send: MSG <room|nick> <text>")
	}
	return s.deliver("PRIVMSG", m.Params[0], text, true)
}

// deliver sends one message to a room or a nick. friendly (MSG) lets a
// room be named without '#': a room the sender is in wins over a nick.
func (s *Session) deliver(command, target, text string, friendly bool) error {
	if err := textError(command, target, text); err != nil {
		return err
	}
	toRoom := protocol.IsRoomName(target)
	if !toRoom && friendly {
		if name, err := protocol.RoomName(target); err == nil && (s.joinedRoom(name) != nil || s.srv.nicks.get(target) == nil) {
			toRoom = true
		}
	}
	if toRoom {
		return s.sayInRoom(command, target, text)
	}
	t := s.srv.nicks.get(target)
	if t == nil || !t.registered.Load() {
		return numErr(protocol.ERR_NOSUCHNICK, target, "No such nick or room")
	}
	t.Send((&protocol.Message{Source: s.prefix(), Command: command, Params: []string{t.Nick(), text}}).AppendTo(nil))
	if away := t.away.Load(); away != nil && command == "PRIVMSG" {
		s.numeric(protocol.RPL_AWAY, t.Nick(), *away)
	}
	return nil
}

func (s *Session) sayInRoom(command, target, text string) error {
	name, err := roomName(target)
	if err != nil {
		return err
	}
	r := s.joinedRoom(name)
	if r == nil {
		if s.srv.rooms.Get(name) == nil {
			return numErr(protocol.ERR_NOSUCHCHANNEL, name, "No such room (JOIN "+name+" to create it)")
		}
		return numErr(protocol.ERR_CANNOTSENDTOCHAN, name, "Cannot send to room: you are not in it (JOIN "+name+" first)")
	}
	if r.Say(s, command, text) != nil {
		return numErr(protocol.ERR_NOSUCHCHANNEL, name, "No such room")
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
