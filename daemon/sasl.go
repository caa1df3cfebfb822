package daemon

import (
	"bytes"
	"encoding/base64"
	"strings"

	"github.com/livechat/livechat/protocol"
)

const (
	// saslChunk is the size of a full AUTHENTICATE chunk; a shorter one
	// (or "+") ends the response.
	saslChunk = 400
	// saslMax bounds a whole response: PLAIN needs two names and a
	// password, LIVECHAT-TOKEN a name and a token, well under this.
	saslMax = 4 * saslChunk
)

func init() {
	register(&command{name: "AUTHENTICATE", run: handleAUTHENTICATE, minParams: 1, preReg: true})
}

// saslMechs is what RPL_SASLMECHS and the sasl capability list.
const saslMechs = "PLAIN," + saslTokenMech

// handleAUTHENTICATE implements SASL PLAIN and LIVECHAT-TOKEN (IRCv3
// sasl-3.1), before or after connection registration.
func handleAUTHENTICATE(s *Session, m *protocol.Message, _ []byte) error {
	arg := m.Params[0]
	if arg == "*" {
		s.saslReset()
		return numErr(protocol.ERR_SASLABORTED, "SASL authentication aborted")
	}
	if s.saslMech == "" {
		if s.Account() != "" {
			return numErr(protocol.ERR_SASLALREADY, "You have already authenticated")
		}
		switch {
		case strings.EqualFold(arg, "PLAIN"):
			s.saslMech = "PLAIN"
		case strings.EqualFold(arg, saslTokenMech):
			s.saslMech = saslTokenMech
		default:
			s.numeric(protocol.RPL_SASLMECHS, saslMechs, "are available SASL mechanisms")
			return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: unknown mechanism")
		}
		s.reply(protocol.Message{Command: "AUTHENTICATE", Params: []string{"+"}})
		return nil
	}
	if len(arg) > saslChunk {
		s.saslReset()
		return numErr(protocol.ERR_SASLTOOLONG, "SASL message too long")
	}
	if len(s.saslBuf)+len(arg) > saslMax {
		s.saslReset()
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: response too long")
	}
	if arg != "+" {
		s.saslBuf = append(s.saslBuf, arg...)
	}
	if len(arg) == saslChunk {
		return nil // more to come
	}
	response, mech := s.saslBuf, s.saslMech
	s.saslReset()
	if mech == saslTokenMech {
		return s.saslToken(response)
	}
	return s.saslPlain(response)
}

func (s *Session) saslReset() {
	s.saslMech, s.saslBuf = "", nil
}

// saslPlain checks a PLAIN response: authzid NUL authcid NUL password.
func (s *Session) saslPlain(encoded []byte) error {
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(encoded)))
	n, err := base64.StdEncoding.Decode(raw, encoded)
	if err != nil {
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: invalid base64")
	}
	parts := bytes.Split(raw[:n], []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: malformed PLAIN response")
	}
	authz, authc, password := string(parts[0]), string(parts[1]), string(parts[2])
	if authz != "" && protocol.FoldNick(authz) != protocol.FoldNick(authc) {
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: cannot act as another account")
	}
	name, err := s.login(authc, password)
	if err != nil {
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: "+loginMessage(err))
	}
	s.loggedIn(name)
	s.numeric(protocol.RPL_SASLSUCCESS, "SASL authentication successful")
	s.adoptAccountNickIfRegistered(name)
	return nil
}

// saslToken checks a LIVECHAT-TOKEN response: account NUL token, where
// token came from TOKEN NEW. No password hash runs.
func (s *Session) saslToken(encoded []byte) error {
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(encoded)))
	n, err := base64.StdEncoding.Decode(raw, encoded)
	if err != nil {
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: invalid base64")
	}
	parts := bytes.Split(raw[:n], []byte{0})
	if len(parts) != 2 || len(parts[0]) == 0 {
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: malformed "+saslTokenMech+" response (want account NUL token)")
	}
	name, err := s.tokenLogin(string(parts[0]), string(parts[1]))
	if err != nil {
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: "+tokenLoginMessage(err))
	}
	s.loggedIn(name)
	s.numeric(protocol.RPL_SASLSUCCESS, "SASL authentication successful")
	s.adoptAccountNickIfRegistered(name)
	return nil
}
