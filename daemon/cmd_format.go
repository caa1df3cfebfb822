package daemon

import (
	"strings"
	"time"

	"github.com/livechat/livechat/protocol"
)

func init() {
	register(&command{name: "FORMAT", run: handleFORMAT, help: "FORMAT text|irc - plain chat lines ([#lobby] <alice> hi), or IRC protocol lines"})
}

// handleFORMAT switches how the connection's output is shown. It changes
// nothing in the rooms: the session's writer renders the same lines (see
// render.go). Without an argument it says which format is on.
func handleFORMAT(s *Session, m *protocol.Message, _ []byte) error {
	switch strings.ToLower(m.Param(0)) {
	case "text":
		s.setMode(modeText, true)
		s.pushReadDeadline(time.Now()) // a person reading: no PINGs (see pings)
		s.notice("Format: text. Chat shows as plain lines; FORMAT irc brings back IRC lines.")
	case "irc":
		s.setMode(modeText, false)
		s.pushReadDeadline(time.Now())
		s.notice("Format: irc. Everything shows as IRC protocol lines; FORMAT text for plain chat lines.")
	case "":
		f := "irc"
		if s.mode.Load()&modeText != 0 {
			f = "text"
		}
		s.notice("Format: " + f + ". FORMAT text shows the chat as plain lines, FORMAT irc as IRC protocol lines.")
	default:
		return failErr("FORMAT", "INVALID_PARAMS", m.Params[0], "Unknown format "+m.Params[0]+": use FORMAT text or FORMAT irc")
	}
	return nil
}
