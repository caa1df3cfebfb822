package daemon

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/livechat/livechat/daemon/accounts"
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
const saslMechs = "PLAIN," + saslSCRAMMech + "," + saslExternalMech + "," + saslTokenMech

const (
	// saslSCRAMMech proves the password without sending it (RFC 7677);
	// accounts/scram.go keeps the keys.
	saslSCRAMMech = "SCRAM-SHA-256"
	// saslExternalMech logs in the account that registered the TLS
	// client certificate's fingerprint (CERTFP).
	saslExternalMech = "EXTERNAL"
)

// handleAUTHENTICATE implements SASL PLAIN, SCRAM-SHA-256, EXTERNAL and
// LIVECHAT-TOKEN (IRCv3 sasl-3.1), before or after connection
// registration.
func handleAUTHENTICATE(s *Session, m *protocol.Message, _ []byte) error {
	arg := m.Params[0]
	r := s.more()
	if arg == "*" {
		s.saslReset()
		return numErr(protocol.ERR_SASLABORTED, "SASL authentication aborted")
	}
	if r.saslMech == "" {
		if s.Account() != "" {
			return numErr(protocol.ERR_SASLALREADY, "You have already authenticated")
		}
		switch mech := strings.ToUpper(arg); mech {
		case "PLAIN", saslTokenMech, saslExternalMech:
			r.saslMech = mech
		case saslSCRAMMech:
			r.saslMech = mech
			r.saslSCRAM = s.srv.accounts.NewSCRAMLogin(s.source())
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
	if len(r.saslBuf)+len(arg) > saslMax {
		s.saslReset()
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: response too long")
	}
	if arg != "+" {
		r.saslBuf = append(r.saslBuf, arg...)
	}
	if len(arg) == saslChunk {
		return nil // more to come
	}
	response, mech := r.saslBuf, r.saslMech
	r.saslBuf = nil
	if mech == saslSCRAMMech {
		return s.saslSCRAMStep(response) // several round trips; it resets when done
	}
	s.saslReset()
	switch mech {
	case saslTokenMech:
		return s.saslToken(response)
	case saslExternalMech:
		return s.saslExternal(response)
	}
	return s.saslPlain(response)
}

func (s *Session) saslReset() {
	r := s.more()
	r.saslMech, r.saslBuf, r.saslSCRAM, r.saslDone = "", nil, nil, ""
}

// saslDecode decodes a whole response.
func saslDecode(encoded []byte) ([]byte, error) {
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(encoded)))
	n, err := base64.StdEncoding.Decode(raw, encoded)
	if err != nil {
		return nil, numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: invalid base64")
	}
	return raw[:n], nil
}

// saslSucceeded logs the session in to account after a SASL exchange.
func (s *Session) saslSucceeded(account string) {
	s.loggedIn(account)
	s.numeric(protocol.RPL_SASLSUCCESS, "SASL authentication successful")
	s.adoptAccountNickIfRegistered(account)
}

// saslPlain checks a PLAIN response: authzid NUL authcid NUL password.
func (s *Session) saslPlain(encoded []byte) error {
	raw, err := saslDecode(encoded)
	if err != nil {
		return err
	}
	parts := bytes.Split(raw, []byte{0})
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
	s.saslSucceeded(name)
	return nil
}

// saslSCRAMStep runs one round trip of SCRAM-SHA-256: client-first is
// answered with server-first, client-final with server-final, and the
// client's empty acknowledgement of that with 903. (IRC SASL has no
// "success with data", so server-final travels as a challenge.)
func (s *Session) saslSCRAMStep(encoded []byte) error {
	r := s.more()
	if r.saslDone != "" {
		account := r.saslDone
		s.saslReset()
		s.saslSucceeded(account)
		return nil
	}
	raw, err := saslDecode(encoded)
	if err != nil {
		s.saslReset()
		return err
	}
	l := r.saslSCRAM
	ctx, cancel := context.WithTimeout(context.Background(), accountTimeout)
	defer cancel()
	out, acct, err := l.Step(ctx, string(raw))
	if err == nil && acct.Name != "" {
		if authz := l.AuthzID(); authz != "" && protocol.FoldNick(authz) != protocol.FoldNick(acct.Name) {
			err = errSASLAuthz
		}
	}
	if err != nil || acct.Name != "" {
		// The exchange is over: count it as a login like PLAIN's.
		s.countLogin(saslSCRAMMech, l.Name(), err)
	}
	if err != nil {
		s.saslReset()
		if errors.Is(err, accounts.ErrNoSCRAM) {
			s.notice("Your account has no SCRAM-SHA-256 keys yet (it was registered before they were kept). Log in once with your password (SASL PLAIN, or LOGIN) and SCRAM works from then on")
		}
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: "+scramMessage(err))
	}
	if acct.Name != "" {
		r.saslDone = acct.Name
	}
	s.authenticateOut(out)
	return nil
}

var errSASLAuthz = errors.New("cannot act as another account")

func scramMessage(err error) string {
	switch {
	case errors.Is(err, accounts.ErrNoSCRAM):
		return "this account has no SCRAM-SHA-256 keys yet; log in once with PLAIN to add them"
	case errors.Is(err, accounts.ErrSCRAMProtocol):
		return "malformed SCRAM-SHA-256 message"
	case errors.Is(err, errSASLAuthz):
		return err.Error()
	}
	return loginMessage(err)
}

// authenticateOut sends a challenge, base64-encoded and cut into
// AUTHENTICATE chunks as sasl-3.1 says: a final chunk of exactly
// saslChunk bytes is followed by "+".
func (s *Session) authenticateOut(challenge string) {
	enc := base64.StdEncoding.EncodeToString([]byte(challenge))
	for len(enc) >= saslChunk {
		s.reply(protocol.Message{Command: "AUTHENTICATE", Params: []string{enc[:saslChunk]}})
		enc = enc[saslChunk:]
	}
	if enc == "" {
		enc = "+"
	}
	s.reply(protocol.Message{Command: "AUTHENTICATE", Params: []string{enc}})
}

// saslExternal logs in the account that registered the fingerprint of
// the TLS client certificate. The response is empty or the authorization
// identity, which must then be that account.
func (s *Session) saslExternal(encoded []byte) error {
	raw, err := saslDecode(encoded)
	if err != nil {
		return err
	}
	fp := s.certFP()
	if fp == "" {
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: no TLS client certificate (connect to the TLS port with one)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), accountTimeout)
	defer cancel()
	acct, err := s.srv.accounts.CertFPLogin(ctx, fp)
	if err == nil && len(raw) > 0 && protocol.FoldNick(string(raw)) != protocol.FoldNick(acct.Name) {
		err = errSASLAuthz
	}
	s.countLogin(saslExternalMech, cmp.Or(acct.Name, "certfp:"+fp), err)
	switch {
	case err == nil:
		s.saslSucceeded(acct.Name)
		return nil
	case errors.Is(err, accounts.ErrBadCredentials):
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: your certificate ("+fp+") is not registered to an account; log in another way and send CERTFP ADD")
	case errors.Is(err, errSASLAuthz):
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: cannot act as another account")
	}
	return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: "+loginMessage(err))
}

// saslToken checks a LIVECHAT-TOKEN response: account NUL token, where
// token came from TOKEN NEW. No password hash runs.
func (s *Session) saslToken(encoded []byte) error {
	raw, err := saslDecode(encoded)
	if err != nil {
		return err
	}
	parts := bytes.Split(raw, []byte{0})
	if len(parts) != 2 || len(parts[0]) == 0 {
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: malformed "+saslTokenMech+" response (want account NUL token)")
	}
	name, err := s.tokenLogin(string(parts[0]), string(parts[1]))
	if err != nil {
		return numErr(protocol.ERR_SASLFAIL, "SASL authentication failed: "+tokenLoginMessage(err))
	}
	s.saslSucceeded(name)
	return nil
}
