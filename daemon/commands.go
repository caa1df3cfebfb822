package daemon

import (
	"errors"
	"strings"
	"time"

	"github.com/livechat/livechat/protocol"
)

// handler runs one command. raw is the line as received, for commands
// whose text is the rest of the line (MSG). A returned *replyError is sent
// to the client; any other error is logged and answered with 400.
type handler func(s *Session, m *protocol.Message, raw []byte) error

type command struct {
	name      string
	run       handler
	minParams int
	// preReg commands are part of connection registration and run before
	// it completes; any other first command makes a netcat user a guest.
	preReg bool
	// help is the one-line HELP text; commands without it are not listed.
	help string
	idx  int // index of the command's metric counter
}

// commandTable is filled once in init and read-only afterwards.
var (
	commandTable = map[string]*command{}
	commandList  []*command // in registration order, for HELP and metrics
)

func register(c *command) {
	c.idx = len(commandList)
	commandList = append(commandList, c)
	commandTable[c.name] = c
}

// replyError is an error that knows its protocol reply.
type replyError struct {
	code   string   // numeric, or "FAIL"
	params []string // after the target nick (numerics) or the command (FAIL)
}

func (e *replyError) Error() string { return e.code + " " + strings.Join(e.params, " ") }

// numErr builds a numeric reply error; params follow the client's nick.
func numErr(code string, params ...string) error { return &replyError{code: code, params: params} }

// failErr builds a standard-replies FAIL: `FAIL <command> <code> [context...] :<description>`.
func failErr(command, code string, rest ...string) error {
	return &replyError{code: "FAIL", params: append([]string{command, code}, rest...)}
}

func failMessage(server, command, code, description string) protocol.Message {
	return protocol.Message{Source: server, Command: "FAIL", Params: []string{command, code, description}}
}

// needMoreParams says what is missing with the command's usage from the
// HELP table, so a person learns the form from the error itself.
func needMoreParams(cmd string) error {
	if u := usage(cmd); u != "" {
		return numErr(protocol.ERR_NEEDMOREPARAMS, cmd, "Not enough parameters: "+u)
	}
	return numErr(protocol.ERR_NEEDMOREPARAMS, cmd, "Not enough parameters")
}

// dispatch finds m's command and runs it with the common checks: commands
// needing registration, parameter counts, and the netcat guest path.
func (s *Session) dispatch(m *protocol.Message, raw []byte) {
	if s.registered.Load() && s.batchLine(m) {
		return
	}
	// A BATCH + line's label is for the message its batch makes (see
	// handleBATCH).
	if label, ok := m.Tag("label"); ok && s.hasCap(capLabeledResponse) && validLabel(label) && m.Command != "BATCH" {
		s.beginLabel(label)
		defer s.endLabel()
	}
	cmd := commandTable[m.Command]
	if cmd == nil {
		s.srv.metrics.unknownCommand.Inc()
		if !s.registered.Load() && !s.becomeGuestIfFresh() {
			s.numeric(protocol.ERR_NOTREGISTERED, "You have not registered")
			return
		}
		s.numeric(protocol.ERR_UNKNOWNCOMMAND, m.Command, "Unknown command (type HELP for the list)")
		return
	}
	s.srv.metrics.commands[cmd.idx].Inc()
	if !s.registered.Load() && !cmd.preReg && !s.becomeGuestIfFresh() {
		s.numeric(protocol.ERR_NOTREGISTERED, "You have not registered")
		return
	}
	if len(m.Params) < cmd.minParams {
		s.sendError(needMoreParams(m.Command))
		return
	}
	var err error
	if s.srv.metrics.timeCommand(cmd.idx) {
		start := time.Now()
		err = cmd.run(s, m, raw)
		s.srv.metrics.commandSeconds[cmd.idx].Observe(time.Since(start).Seconds())
	} else {
		err = cmd.run(s, m, raw)
	}
	if err != nil {
		s.sendError(err)
	}
}

func (s *Session) sendError(err error) {
	var re *replyError
	if errors.As(err, &re) {
		if re.code == "FAIL" {
			s.reply(protocol.Message{Source: s.srv.Config().ServerName, Command: "FAIL", Params: re.params})
			return
		}
		s.numeric(re.code, re.params...)
		return
	}
	s.log().Error().Err(err).Msg("command failed")
	s.numeric(protocol.ERR_UNKNOWNERROR, "*", "Internal error")
}

// restOfLine returns the text after the command and its first n
// parameters, exactly as typed: MSG's text needs no ':' and keeps spacing.
func restOfLine(raw []byte, n int) string {
	line := string(raw)
	if line != "" && line[0] == '@' { // tags
		line = afterToken(line)
	}
	if line != "" && line[0] == ':' { // source
		line = afterToken(line)
	}
	line = afterToken(line) // command
	for range n {
		line = afterToken(line)
	}
	return strings.TrimRight(line, "\r\n")
}

func afterToken(s string) string {
	s = strings.TrimLeft(s, " ")
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return strings.TrimLeft(s[i+1:], " ")
	}
	return ""
}
