package daemon

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/protocol"
)

// TLS client certificates as logins (accounts/certfp.go): a logged-in
// user adds the fingerprint of the certificate their client presents with
// CERTFP ADD, and later connections with it log in by SASL EXTERNAL
// (sasl.go), with no password anywhere.

const certfpUsage = "CERTFP ADD [fingerprint] | DEL <fingerprint> | LIST"

func init() {
	register(&command{name: "CERTFP", run: handleCERTFP, help: certfpUsage + " - TLS client certificates that log you in (SASL EXTERNAL); ADD alone adds this connection's"})
}

func handleCERTFP(s *Session, m *protocol.Message, _ []byte) error {
	sub := "LIST"
	if len(m.Params) > 0 {
		sub = strings.ToUpper(m.Params[0])
	}
	switch sub {
	case "ADD", "DEL", "LIST":
	default:
		return failErr("CERTFP", "UNKNOWN_COMMAND", sub, "Usage: "+certfpUsage)
	}
	acct := s.Account()
	if acct == "" {
		return failErr("CERTFP", "NOT_LOGGED_IN", sub, "Log in first; certificate fingerprints belong to an account")
	}
	ctx, cancel := context.WithTimeout(context.Background(), accountTimeout)
	defer cancel()
	server := s.srv.Config().ServerName
	switch sub {
	case "LIST":
		list, err := s.srv.accounts.CertFPs(ctx, acct)
		if err != nil {
			return s.certFPFailure(sub, "*", err)
		}
		mine := s.certFP()
		for _, fp := range list {
			text := "registered"
			if fp == mine {
				text = "registered; this connection's"
			}
			s.reply(protocol.Message{Source: server, Command: "CERTFP", Params: []string{"LIST", fp, text}})
		}
		s.reply(protocol.Message{Source: server, Command: "CERTFP", Params: []string{"END", strconv.Itoa(len(list)) + " certificate fingerprints (at most " + strconv.Itoa(accounts.MaxCertFPs) + ")"}})
		return nil
	case "ADD":
		fp := s.certFP()
		if len(m.Params) > 1 {
			fp = m.Params[1]
		} else if fp == "" {
			return failErr("CERTFP", "NO_CERTIFICATE", "ADD", "This connection presented no TLS client certificate; connect to the TLS port with one, or give its SHA-256 fingerprint")
		}
		if err := s.srv.accounts.AddCertFP(ctx, acct, fp); err != nil {
			return s.certFPFailure(sub, fp, err)
		}
		fp, _ = accounts.NormalizeCertFP(fp)
		s.log().Info().Str("account", acct).Str("certfp", fp).Msg("certificate fingerprint added")
		s.reply(protocol.Message{Source: server, Command: "CERTFP", Params: []string{"ADDED", fp, "Connections with this certificate can now log in to " + acct + " with SASL EXTERNAL"}})
		return nil
	default: // DEL
		if len(m.Params) < 2 {
			return failErr("CERTFP", "NEED_MORE_PARAMS", "DEL", "Usage: CERTFP DEL <fingerprint> (CERTFP LIST shows them)")
		}
		fp := m.Params[1]
		if err := s.srv.accounts.DeleteCertFP(ctx, acct, fp); err != nil {
			return s.certFPFailure(sub, fp, err)
		}
		fp, _ = accounts.NormalizeCertFP(fp)
		s.log().Info().Str("account", acct).Str("certfp", fp).Msg("certificate fingerprint deleted")
		s.reply(protocol.Message{Source: server, Command: "CERTFP", Params: []string{"DELETED", fp, "That certificate no longer logs in to " + acct}})
		return nil
	}
}

func (s *Session) certFPFailure(sub, fp string, err error) error {
	switch {
	case errors.Is(err, accounts.ErrBadCertFP):
		return failErr("CERTFP", "INVALID_FINGERPRINT", fp, "A fingerprint is the certificate's SHA-256 as 64 hex digits (colons allowed)")
	case errors.Is(err, accounts.ErrCertFPTaken):
		return failErr("CERTFP", "FINGERPRINT_TAKEN", fp, "That certificate is registered to another account")
	case errors.Is(err, accounts.ErrCertFPLimit):
		return failErr("CERTFP", "LIMIT_REACHED", fp, "You have "+strconv.Itoa(accounts.MaxCertFPs)+" certificate fingerprints, the most an account may; CERTFP DEL one first")
	case errors.Is(err, accounts.ErrNoCertFPs):
		return failErr("CERTFP", "UNAVAILABLE", sub, "This server keeps no certificate fingerprints")
	case errors.Is(err, accounts.ErrNotFound) && sub == "DEL":
		return failErr("CERTFP", "NO_SUCH_FINGERPRINT", fp, "You have no such certificate fingerprint (CERTFP LIST shows them)")
	case errors.Is(err, accounts.ErrNotFound):
		return failErr("CERTFP", "NOT_LOGGED_IN", sub, "Your account no longer exists")
	}
	s.log().Error().Err(err).Str("sub", sub).Msg("certificate fingerprint store failed")
	return failErr("CERTFP", "TEMPORARILY_UNAVAILABLE", sub, "Could not reach the account store; try again later")
}
