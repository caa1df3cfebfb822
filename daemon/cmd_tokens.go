package daemon

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/protocol"
)

// Login tokens (accounts/tokens.go): after a password login a client asks
// for one with TOKEN NEW, keeps it, and logs in with it later, by TOKEN
// LOGIN or SASL LIVECHAT-TOKEN (sasl.go), instead of with the password. The
// web page does this to stay logged in across reloads and tabs.
//
// Tokens are secrets: they are sent to the client once, in the TOKEN NEW
// reply, and never logged.

// saslTokenMech is the SASL mechanism for login tokens: the response is
// base64 of "<account> NUL <token>".
const saslTokenMech = "LIVECHAT-TOKEN"

const tokenUsage = "TOKEN NEW [label] | LIST | REVOKE <id>|ALL | LOGIN <account> <token>"

func init() {
	register(&command{name: "TOKEN", run: handleTOKEN, minParams: 1, help: tokenUsage + " - login tokens that keep you logged in without your password"})
}

func handleTOKEN(s *Session, m *protocol.Message, _ []byte) error {
	switch sub := strings.ToUpper(m.Params[0]); sub {
	case "LOGIN":
		if len(m.Params) < 3 {
			return failErr("TOKEN", "NEED_MORE_PARAMS", "LOGIN", "Usage: TOKEN LOGIN <account> <token>")
		}
		if acct := s.Account(); acct != "" {
			return failErr("TOKEN", "ALREADY_AUTHENTICATED", acct, "You are already logged in as "+acct)
		}
		name, err := s.tokenLogin(m.Params[1], m.Params[2])
		if err != nil {
			return failErr("TOKEN", tokenLoginCode(err), m.Params[1], tokenLoginMessage(err))
		}
		s.loggedIn(name)
		s.adoptAccountNickIfRegistered(name)
		return nil
	case "NEW", "LIST", "REVOKE":
		acct := s.Account()
		if acct == "" {
			return failErr("TOKEN", "NOT_LOGGED_IN", sub, "Log in with your password first; login tokens belong to an account")
		}
		ctx, cancel := context.WithTimeout(context.Background(), accountTimeout)
		defer cancel()
		switch sub {
		case "NEW":
			return s.tokenNew(ctx, acct, strings.Join(m.Params[1:], " "))
		case "LIST":
			return s.tokenList(ctx, acct)
		default:
			if len(m.Params) < 2 {
				return failErr("TOKEN", "NEED_MORE_PARAMS", "REVOKE", "Usage: TOKEN REVOKE <id>|ALL (TOKEN LIST shows the ids)")
			}
			return s.tokenRevoke(ctx, acct, m.Params[1])
		}
	default:
		return failErr("TOKEN", "UNKNOWN_COMMAND", m.Params[0], "Usage: "+tokenUsage)
	}
}

func (s *Session) tokenNew(ctx context.Context, acct, label string) error {
	tok, info, err := s.srv.accounts.IssueToken(ctx, acct, label)
	if err != nil {
		return s.tokenStoreFailure("NEW", err)
	}
	s.log().Info().Str("account", acct).Str("token_id", info.ID).Msg("login token issued")
	s.reply(protocol.Message{Source: s.srv.Config().ServerName, Command: "TOKEN", Params: []string{
		"NEW", info.ID, tok, tokenTime(info.Expires),
		"Your login token; it is shown only this once, so keep it secret. It lasts " + lifetime(info.Expires) + " after its last use; TOKEN REVOKE " + info.ID + " ends it",
	}})
	return nil
}

func (s *Session) tokenList(ctx context.Context, acct string) error {
	list, err := s.srv.accounts.Tokens(ctx, acct)
	if err != nil {
		return s.tokenStoreFailure("LIST", err)
	}
	server := s.srv.Config().ServerName
	for _, t := range list {
		label := t.Label
		if label == "" {
			label = "(no label)"
		}
		s.reply(protocol.Message{Source: server, Command: "TOKEN", Params: []string{"LIST", t.ID, tokenTime(t.Created), tokenTime(t.LastUsed), tokenTime(t.Expires), label}})
	}
	s.reply(protocol.Message{Source: server, Command: "TOKEN", Params: []string{"END", strconv.Itoa(len(list)) + " login tokens (id, created, last used, expires, label)"}})
	return nil
}

func (s *Session) tokenRevoke(ctx context.Context, acct, which string) error {
	id := which
	if strings.EqualFold(which, "ALL") {
		id, which = "", "ALL"
	}
	n, err := s.srv.accounts.RevokeToken(ctx, acct, id)
	if errors.Is(err, accounts.ErrNotFound) {
		return failErr("TOKEN", "NO_SUCH_TOKEN", which, "You have no login token "+which+" (TOKEN LIST shows them)")
	}
	if err != nil {
		return s.tokenStoreFailure("REVOKE", err)
	}
	s.log().Info().Str("account", acct).Str("token_id", which).Int("count", n).Msg("login tokens revoked")
	s.reply(protocol.Message{Source: s.srv.Config().ServerName, Command: "TOKEN", Params: []string{"REVOKED", which, "Revoked " + strconv.Itoa(n) + " login tokens"}})
	return nil
}

func (s *Session) tokenStoreFailure(sub string, err error) error {
	if errors.Is(err, accounts.ErrNoTokens) {
		return failErr("TOKEN", "UNAVAILABLE", sub, "This server keeps no login tokens")
	}
	if errors.Is(err, accounts.ErrNotFound) {
		return failErr("TOKEN", "NOT_LOGGED_IN", sub, "Your account no longer exists")
	}
	s.log().Error().Err(err).Str("sub", sub).Msg("login token store failed")
	return failErr("TOKEN", "TEMPORARILY_UNAVAILABLE", sub, "Could not reach the account store; try again later")
}

// tokenLogin checks a login token, counting and logging the attempt (never
// the token) like login does for passwords.
func (s *Session) tokenLogin(name, token string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), accountTimeout)
	defer cancel()
	acct, err := s.srv.accounts.TokenLogin(ctx, name, token, s.source())
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, accounts.ErrBadToken):
		result = "bad_token"
	case errors.Is(err, accounts.ErrThrottled):
		result = "throttled"
	default:
		result = "error"
		s.log().Error().Err(err).Str("account", name).Msg("token login failed")
	}
	s.srv.metrics.logins.WithLabelValues(result).Inc()
	s.log().Info().Str("account", name).Str("method", "token").Str("result", result).Msg("login")
	return acct.Name, err
}

func tokenLoginCode(err error) string {
	switch {
	case errors.Is(err, accounts.ErrThrottled):
		return "RATE_LIMITED"
	case errors.Is(err, accounts.ErrBadToken):
		return "INVALID_TOKEN"
	default:
		return "TEMPORARILY_UNAVAILABLE"
	}
}

func tokenLoginMessage(err error) string {
	if errors.Is(err, accounts.ErrBadToken) {
		return "That login token is unknown, revoked or expired; log in with your password"
	}
	if errors.Is(err, accounts.ErrNoTokens) {
		return "This server keeps no login tokens; log in with your password"
	}
	return loginMessage(err)
}

// tokenTime formats a token's times as server-time does.
func tokenTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// lifetime says how long a token lives, in days when it is days.
func lifetime(expires time.Time) string {
	d := time.Until(expires).Round(time.Hour)
	if d >= 48*time.Hour {
		return strconv.Itoa(int(d/(24*time.Hour))) + " days"
	}
	return d.String()
}

// logoutEverywhere revokes every login token of account and closes its
// other connections, so that a lost or shared device is out at once. Those
// connections are closed rather than logged out in place: that runs on
// their own goroutines, and a page that reconnects finds its token revoked
// and asks for the password.
func (s *Session) logoutEverywhere(account string) (tokens, conns int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), accountTimeout)
	defer cancel()
	tokens, err = s.srv.accounts.RevokeToken(ctx, account, "")
	if err != nil && !errors.Is(err, accounts.ErrNoTokens) {
		return 0, 0, err
	}
	var others []*Session
	for _, t := range s.srv.accountSessions(account) {
		if t != s {
			others = append(others, t)
		}
	}
	for _, t := range others {
		t.closeWith("Logged out everywhere from another connection")
	}
	s.log().Info().Str("account", account).Int("tokens", tokens).Int("connections", len(others)).Msg("logged out everywhere")
	return tokens, len(others), nil
}
