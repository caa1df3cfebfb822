package daemon

import (
	"bytes"
	"strings"
	"time"

	"github.com/livechat/livechat/protocol"
)

// Terminal rendering. Rooms and handlers produce protocol lines for
// everyone; a session whose mode is not zero has its lines rewritten by
// its own writer goroutine just before they are written, so the rendering
// costs the fan-out nothing and is done only for the people who asked
// for it (DESIGN: "a rendering of the same events, chosen per
// connection, never a second path through the rooms").
//
// modeTerminal rewrites only what is written for a person's eyes: HELP
// and the server's notices become plain sentences. Everything a script
// may act on stays a protocol line: broadcasts, replies, and errors
// (whose text says the usage and the limits, for everyone).
// modeText (FORMAT text) rewrites everything as plain lines, errors as
// "Error: ..." sentences.

// renderer rewrites one batch of lines; it is built per batch so that
// the nick and server name are read once.
type renderer struct {
	text   bool
	me     string // the session's nick, folded
	server string
}

func (s *Session) renderer(mode uint32) renderer {
	return renderer{text: mode&modeText != 0, me: protocol.FoldNick(s.Nick()), server: s.srv.Config().ServerName}
}

// appendLine appends line as the session should see it, or nothing when
// the line means nothing to a person (the end of a member list, BATCH).
func (r *renderer) appendLine(dst, line []byte) []byte {
	// A queued slice may hold several lines (a multiline message).
	if i := bytes.IndexByte(line, '\n'); i >= 0 && i+1 < len(line) {
		dst = r.appendLine(dst, line[:i+1])
		return r.appendLine(dst, line[i+1:])
	}
	m, err := protocol.Parse(line)
	if err != nil {
		return append(dst, line...)
	}
	out, keep := r.sentence(&m)
	if !keep {
		return append(dst, line...)
	}
	if out == "" {
		return dst
	}
	dst = append(dst, out...)
	return append(dst, '\r', '\n')
}

// sentence returns the text for m, keep=false to send m unchanged, or
// "" with keep=true to drop it.
func (r *renderer) sentence(m *protocol.Message) (out string, keep bool) {
	fromServer := m.Source == r.server || m.Source == ""
	if s, ok := r.personal(m, fromServer); ok {
		return s, true
	}
	if !r.text {
		return "", false
	}
	return r.chat(m, fromServer)
}

// personal renders what the server says to the person alone: HELP and
// notices in both modes, errors in FORMAT text.
func (r *renderer) personal(m *protocol.Message, fromServer bool) (string, bool) {
	if !fromServer {
		return "", false
	}
	switch c := m.Command; {
	case !r.text && (c == "FAIL" || c == "WARN" || isNumeric(c) && (c[0] == '4' || c[0] == '5')):
		return "", false
	case c == "FAIL" || c == "WARN":
		if len(m.Params) < 3 {
			return "", false
		}
		word := "Error: "
		if c == "WARN" {
			word = "Warning: "
		}
		return word + m.Params[len(m.Params)-1], true
	case c == "NOTICE":
		return m.Param(len(m.Params) - 1), true
	case c == protocol.RPL_HELPSTART || c == protocol.RPL_HELPTXT:
		return m.Param(len(m.Params) - 1), true
	case c == protocol.RPL_ENDOFHELP:
		return "", true
	case isNumeric(c) && (c[0] == '4' || c[0] == '5'):
		return "Error: " + errorSentence(m), true
	}
	return "", false
}

func isNumeric(c string) bool {
	return len(c) == 3 && c[0] >= '0' && c[0] <= '9' && c[1] >= '0' && c[1] <= '9' && c[2] >= '0' && c[2] <= '9'
}

// errorSentence words an error numeric: its subject, its text, and for a
// command missing parameters the command's usage from the HELP table.
func errorSentence(m *protocol.Message) string {
	if len(m.Params) < 2 {
		return m.Param(0)
	}
	text := m.Params[len(m.Params)-1]
	ctx := m.Params[1 : len(m.Params)-1] // after the target nick
	if len(ctx) == 0 || m.Command == protocol.ERR_NEEDMOREPARAMS {
		return text
	}
	return strings.Join(ctx, " ") + ": " + text
}

// usage returns a command's usage line from its HELP text ("JOIN <room>").
func usage(cmd string) string {
	c := commandTable[strings.ToUpper(cmd)]
	if c == nil || c.help == "" {
		return ""
	}
	u, _, _ := strings.Cut(c.help, " - ")
	return u
}

// chat renders everything else for FORMAT text.
func (r *renderer) chat(m *protocol.Message, fromServer bool) (string, bool) {
	nick, _, _ := strings.Cut(m.Source, "!")
	p := m.Params
	last := m.Param(len(p) - 1)
	switch m.Command {
	case "PRIVMSG", "NOTICE":
		if len(p) < 2 {
			break
		}
		where := "[" + p[0] + "] "
		if !protocol.IsRoomName(p[0]) {
			where = "[private] "
			// The nick is read when the batch is written: a line
			// queued just before a rename is judged by the new nick.
			if protocol.FoldNick(nick) == r.me && protocol.FoldNick(p[0]) != r.me {
				where = "[private to " + p[0] + "] "
			}
		}
		if action, ok := strings.CutPrefix(last, "\x01ACTION "); ok {
			return where + "* " + nick + " " + strings.TrimSuffix(action, "\x01"), true
		}
		if m.Command == "NOTICE" {
			return where + "-" + nick + "- " + last, true
		}
		return where + "<" + nick + "> " + last, true
	case "JOIN":
		return "* " + nick + " joined " + m.Param(0), true
	case "PART":
		return "* " + nick + " left " + m.Param(0) + reason(m.Param(1)), true
	case "QUIT":
		return "* " + nick + " quit" + reason(m.Param(0)), true
	case "NICK":
		return "* " + nick + " is now known as " + m.Param(0), true
	case "KICK":
		return "* " + nick + " removed " + m.Param(1) + " from " + m.Param(0) + reason(m.Param(2)), true
	case "TOPIC":
		if m.Param(1) == "" {
			return "* " + nick + " cleared the topic of " + m.Param(0), true
		}
		return "* " + nick + " set the topic of " + m.Param(0) + ": " + m.Param(1), true
	case "MODE":
		return "* " + nick + " set mode " + strings.Join(p[min(1, len(p)):], " ") + " on " + m.Param(0), true
	case "INVITE":
		return "* " + nick + " invited " + m.Param(0) + " to " + m.Param(1), true
	case "ERROR":
		return "Disconnected: " + m.Param(0), true
	case "BATCH", "TAGMSG":
		return "", true
	case "PONG":
		return "PONG " + last, true
	}
	if !fromServer || !isNumeric(m.Command) || len(p) < 2 {
		return "", false
	}
	ctx := p[1 : len(p)-1]
	switch m.Command {
	case protocol.RPL_NAMREPLY:
		return "In " + m.Param(2) + ": " + last, true
	case protocol.RPL_ENDOFNAMES, protocol.RPL_ENDOFWHO, protocol.RPL_LISTSTART, protocol.RPL_ENDOFBANLIST, protocol.RPL_ENDOFEXCEPTLIST:
		return "", true
	case protocol.RPL_TOPIC:
		return "Topic of " + m.Param(1) + ": " + last, true
	case protocol.RPL_NOTOPIC:
		return m.Param(1) + " has no topic", true
	case protocol.RPL_TOPICWHOTIME:
		return "Set by " + m.Param(2) + unixTime(m.Param(3)), true
	case protocol.RPL_LIST:
		topic := ""
		if last != "" {
			topic = ": " + last
		}
		return m.Param(1) + " (" + m.Param(2) + ")" + topic, true
	case protocol.RPL_LISTEND:
		return "End of the room list", true
	case protocol.RPL_WHOREPLY:
		// <room> <user> <host> <server> <nick> <flags> :0 <realname>
		_, realname, _ := strings.Cut(last, " ")
		return m.Param(5) + " (" + m.Param(2) + "@" + m.Param(3) + ") in " + m.Param(1) + ": " + realname, true
	}
	if len(ctx) == 0 {
		return last, true
	}
	return strings.Join(ctx, " ") + ": " + last, true
}

func reason(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

func unixTime(sec string) string {
	var n int64
	for _, c := range sec {
		if c < '0' || c > '9' {
			return ""
		}
		n = n*10 + int64(c-'0')
	}
	if sec == "" {
		return ""
	}
	return " on " + time.Unix(n, 0).UTC().Format("2006-01-02 15:04 UTC")
}
