package daemon

import (
	"context"
	"strings"

	"github.com/livechat/livechat/protocol"
)

// maxOperFailures is how many wrong OPER passwords a connection may send
// before it is dropped: each one costs a password hash.
const maxOperFailures = 3

func init() {
	register(&command{name: "OPER", run: handleOPER, minParams: 2})
}

// handleOPER makes the session a server operator when name and password
// match an entry of the operators config key.
func handleOPER(s *Session, m *protocol.Message, _ []byte) error {
	name, password := m.Params[0], m.Params[1]
	hash := ""
	for _, entry := range s.srv.Config().Operators {
		if n, h, ok := strings.Cut(entry, ":"); ok && n == name {
			hash = h
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), accountTimeout)
	defer cancel()
	ok, err := s.srv.accounts.VerifyOperator(ctx, password, hash, s.source())
	if err != nil {
		return numErr(protocol.ERR_PASSWDMISMATCH, loginMessage(err))
	}
	if !ok {
		s.more().operFailures++
		s.log().Warn().Str("operator", name).Int("failures", s.more().operFailures).Msg("OPER refused")
		if s.more().operFailures >= maxOperFailures {
			s.closeWith("Too many failed OPER attempts")
		}
		return numErr(protocol.ERR_PASSWDMISMATCH, "Password incorrect")
	}
	s.oper.Store(true)
	s.log().Info().Str("operator", name).Msg("OPER")
	s.numeric(protocol.RPL_YOUREOPER, "You are now an IRC operator")
	s.Reply((&protocol.Message{Source: s.Nick(), Command: "MODE", Params: []string{s.Nick(), "+o"}}).AppendTo(nil))
	return nil
}
