package daemon

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// accountTimeout bounds one register or login, hashing wait included.
const accountTimeout = 15 * time.Second

func init() {
	register(&command{name: "REGISTER", run: handleREGISTER, minParams: 2, preReg: true, help: "REGISTER <name> <password> - create an account and log in to it"})
	register(&command{name: "LOGIN", run: handleLOGIN, minParams: 2, help: "LOGIN <name> <password> - log in; your nick becomes the account name"})
	register(&command{name: "LOGOUT", run: handleLOGOUT, help: "LOGOUT [ALL] - log out of your account; ALL also revokes your login tokens and closes your other connections"})
}

// Account returns the account the session is logged in to, or "".
// Safe from any goroutine.
func (s *Session) Account() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.account
}

// handleREGISTER serves both forms: `REGISTER <name> <password>` for
// people, and IRCv3 draft/account-registration's
// `REGISTER <account|*> <email|*> <password>`, usable before connection
// registration completes.
func handleREGISTER(s *Session, m *protocol.Message, _ []byte) error {
	name, password := m.Params[0], m.Params[len(m.Params)-1]
	if len(m.Params) == 2 && !s.registered.Load() && !s.becomeGuestIfFresh() {
		return numErr(protocol.ERR_NOTREGISTERED, "You have not registered")
	}
	if !s.registered.Load() && !s.srv.Config().Accounts.RegisterEarly {
		return failErr("REGISTER", "COMPLETE_CONNECTION_REQUIRED", "*", "Finish connecting (CAP END) before registering an account")
	}
	if name == "*" {
		name = s.Nick()
		if name == "*" {
			// Typically the nick it asked for is taken: that is a name
			// someone else holds, which REGISTER may not grab either.
			return failErr("REGISTER", "ACCOUNT_EXISTS", "*", "Your nick is not set (is it in use?); send NICK first, or name the account")
		}
	}
	if holder := s.srv.nicks.get(name); holder != nil && holder != s || holder == nil && s.srv.nicks.elsewhere(name) {
		// No land grabs: registering would rename whoever uses the nick.
		s.srv.metrics.registrations.WithLabelValues("exists").Inc()
		return failErr("REGISTER", "ACCOUNT_EXISTS", name, name+" is in use by someone connected; pick another name")
	}
	if acct := s.Account(); acct != "" {
		return failErr("REGISTER", "ALREADY_AUTHENTICATED", acct, "You are already logged in as "+acct)
	}
	if protocol.CheckNick(name) != nil || strings.HasPrefix(protocol.FoldNick(name), "guest-") {
		s.srv.metrics.registrations.WithLabelValues("bad_name").Inc()
		return failErr("REGISTER", "BAD_ACCOUNT_NAME", name, "Account names follow the nick rules (letters, digits, -_[]{}\\|^`, at most "+strconv.Itoa(protocol.NickLen)+") and may not start with guest-")
	}
	if s.srv.reservedNick(name) {
		s.srv.metrics.registrations.WithLabelValues("bad_name").Inc()
		return failErr("REGISTER", "BAD_ACCOUNT_NAME", name, reservedReason(name))
	}
	if limit := s.srv.Config().Accounts.RegisterPerConn; limit > 0 && s.more().made >= limit {
		s.srv.metrics.registrations.WithLabelValues("quota_connection").Inc()
		return failErr("REGISTER", "RATE_LIMITED", name, "This connection has created "+strconv.Itoa(s.more().made)+" accounts, the most one may")
	}
	ctx, cancel := context.WithTimeout(context.Background(), accountTimeout)
	defer cancel()
	acct, err := s.srv.accounts.Register(ctx, name, password, s.source())
	if err != nil {
		result, reply := registerFailure(name, err, s.srv.accountCfg.MinPasswordLen)
		s.srv.metrics.registrations.WithLabelValues(result).Inc()
		if result == "error" {
			s.log().Error().Err(err).Str("account", name).Msg("registration failed")
		}
		return reply
	}
	s.more().made++
	s.srv.metrics.registrations.WithLabelValues("ok").Inc()
	s.log().Info().Str("account", acct.Name).Msg("account registered")
	s.reply(protocol.Message{Source: s.srv.Config().ServerName, Command: "REGISTER", Params: []string{"SUCCESS", acct.Name, "Account created"}})
	s.loggedIn(acct.Name)
	s.adoptAccountNickIfRegistered(acct.Name)
	return nil
}

// registerFailure maps a registration error to its metric label and reply.
func registerFailure(name string, err error, minLen int) (string, error) {
	var quota *accounts.QuotaError
	switch {
	case errors.Is(err, accounts.ErrExists):
		return "exists", failErr("REGISTER", "ACCOUNT_EXISTS", name, "An account with that name already exists")
	case errors.Is(err, accounts.ErrInvalidName):
		return "bad_name", failErr("REGISTER", "BAD_ACCOUNT_NAME", name, "That account name is not allowed")
	case errors.Is(err, accounts.ErrWeakPassword):
		return "weak_password", failErr("REGISTER", "WEAK_PASSWORD", name, "Passwords need at least "+strconv.Itoa(minLen)+" characters")
	case errors.Is(err, accounts.ErrPasswordTooLong):
		return "weak_password", failErr("REGISTER", "WEAK_PASSWORD", name, "Passwords may be at most "+strconv.Itoa(accounts.MaxPasswordLen)+" bytes")
	case errors.As(err, &quota):
		return "quota_address", failErr("REGISTER", "RATE_LIMITED", name, "Too many accounts created from your address; try again in "+retrySecs(quota.RetryAfter))
	case errors.Is(err, accounts.ErrBusy):
		return "busy", failErr("REGISTER", "TEMPORARILY_UNAVAILABLE", name, "The server is busy; try again in a few seconds")
	default:
		return "error", failErr("REGISTER", "TEMPORARILY_UNAVAILABLE", name, "Could not create the account; try again later")
	}
}

func handleLOGIN(s *Session, m *protocol.Message, _ []byte) error {
	if acct := s.Account(); acct != "" {
		return failErr("LOGIN", "ALREADY_AUTHENTICATED", acct, "You are already logged in as "+acct)
	}
	name, err := s.login(m.Params[0], m.Params[1])
	if err != nil {
		return failErr("LOGIN", loginCode(err), m.Params[0], loginMessage(err))
	}
	s.loggedIn(name)
	s.adoptAccountNickIfRegistered(name)
	return nil
}

// login checks credentials, counting and logging the attempt.
func (s *Session) login(name, password string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), accountTimeout)
	defer cancel()
	acct, err := s.srv.accounts.Login(ctx, name, password, s.source())
	s.countLogin("password", name, err)
	return acct.Name, err
}

// countLogin counts and logs a login attempt by password, SCRAM or
// certificate (method), which err ended.
func (s *Session) countLogin(method, name string, err error) {
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, accounts.ErrBadCredentials):
		result = "bad_credentials"
		if errors.Is(err, accounts.ErrMalformedHash) {
			s.log().Error().Err(err).Str("account", name).Msg("stored password hash is unusable")
		}
	case errors.Is(err, accounts.ErrThrottled):
		result = "throttled"
	case errors.Is(err, accounts.ErrBusy):
		result = "busy"
	case errors.Is(err, accounts.ErrNoSCRAM):
		result = "no_scram_keys"
	case errors.Is(err, accounts.ErrSCRAMProtocol), errors.Is(err, errSASLAuthz):
		result = "malformed"
	default:
		result = "error"
		s.log().Error().Err(err).Str("account", name).Msg("login failed")
	}
	s.srv.metrics.logins.WithLabelValues(result).Inc()
	s.log().Info().Str("account", name).Str("method", method).Str("result", result).Msg("login")
}

func loginCode(err error) string {
	switch {
	case errors.Is(err, accounts.ErrThrottled):
		return "RATE_LIMITED"
	case errors.Is(err, accounts.ErrBadCredentials):
		return "INVALID_CREDENTIALS"
	default:
		return "TEMPORARILY_UNAVAILABLE"
	}
}

func loginMessage(err error) string {
	var th *accounts.ThrottledError
	switch {
	case errors.As(err, &th):
		return "Too many failed logins; try again in " + retrySecs(th.RetryAfter)
	case errors.Is(err, accounts.ErrBadCredentials):
		return "Wrong account name or password"
	case errors.Is(err, accounts.ErrBusy):
		return "The server is busy; try again in a few seconds"
	default:
		return "Could not log in; try again later"
	}
}

// retrySecs says d in whole seconds, rounded up: "0s" would be wrong.
func retrySecs(d time.Duration) string {
	return strconv.Itoa(int((d+time.Second-1)/time.Second)) + "s"
}

// source names the client's origin for login throttling, registration
// quotas and hashing turns: its IPv4 address, or its IPv6 /64 (one host
// usually gets a whole /64), as the per-address connection limits count.
func (s *Session) source() string {
	ip, err := netip.ParseAddr(s.ip)
	if err != nil {
		return s.ip
	}
	return limitKey(ip.Unmap()).String()
}

// loggedIn records the account and, once registered, makes the account's
// name the session's nick, taking it from a guest if need be. Before
// registration completes (SASL), completeRegistration does the same.
func (s *Session) loggedIn(account string) {
	s.setAccount(account)
	s.mu.Lock()
	s.guest = false
	s.mu.Unlock()
	server := s.srv.Config().ServerName
	s.reply(protocol.Message{Source: server, Command: protocol.RPL_LOGGEDIN, Params: []string{s.Nick(), s.prefix(), account, "You are now logged in as " + account}})
	if s.registered.Load() && s.refuseIfBanned() { // a KLINE on the account
		return
	}
	if s.registered.Load() {
		if t := s.twinFor(account); t != nil {
			s.becomeDevice(t)
			return
		}
		s.accountChanged(account)
	}
}

// adoptAccountNickIfRegistered makes the account's name the nick after a
// login; before registration completes, completeRegistration does it.
func (s *Session) adoptAccountNickIfRegistered(account string) {
	if s.registered.Load() {
		s.adoptAccountNick(account)
	}
}

// accountChanged tells the session's rooms and the peers that asked
// (account-notify) that it logged in ("*": out).
func (s *Session) accountChanged(account string) {
	name := account
	if name == "" {
		name = "*"
	}
	notify(s.andWatchers(s.updateRooms(rooms.MemberUpdate{Account: &account, Origin: s.identityOf(account)})), s.event("ACCOUNT", name), wantsCap(capAccountNotify))
}

// adoptAccountNick switches to the account's name as nick. A connection
// using it without being logged in to it is renamed to a guest nick; one
// logged in to the same account keeps it, and this one keeps its nick.
func (s *Session) adoptAccountNick(account string) {
	if s.Nick() == account || s.twins() != nil {
		return // a device has its user's nick
	}
	release, ok := s.takeAccountNick(account)
	if !ok {
		s.notice(keepNickNotice(account, s.Nick()))
		return
	}
	s.changeNick(account)
	release()
}

// takeAccountNick claims the account's name as the session's nick, renaming
// a holder who is not logged in to it. It reports false, and takes
// nothing, when another connection logged in to the same account holds
// it: both are the account's owner, and the first keeps it. The session's
// old nick stays reserved until release is called, once the rename has
// been announced (see nickRegistry.rename).
func (s *Session) takeAccountNick(account string) (release func(), ok bool) {
	if s.srv.reservedNick(account) {
		return nil, false // an account from before names were reserved keeps working, under another nick
	}
	if holder := s.srv.nicks.get(account); holder != nil && holder != s && protocol.FoldNick(holder.Account()) == protocol.FoldNick(account) {
		return nil, false
	}
	if h, ok := s.srv.remoteHolder(account); ok {
		if protocol.FoldNick(h.Account) == protocol.FoldNick(account) {
			return nil, false // another connection of the account, on another node: the first keeps it
		}
		// A guest or another account holds it on another node: that node
		// renames its session, as this one would (see becomeGuest).
		if err := s.srv.evictRemote(h, "The nick "+account+" belongs to an account that just logged in", false); err != nil {
			return nil, false
		}
	}
	evicted, release := s.srv.nicks.take(s, account)
	if evicted != nil {
		evicted.becomeGuest("The nick " + account + " belongs to an account that just logged in")
	}
	return release, true
}

func keepNickNotice(account, nick string) string {
	if protocol.IsServiceName(account) {
		return reservedReason(account) + "; you keep " + nick
	}
	return "Your other connection is using the nick " + account + "; you keep " + nick
}

// becomeGuest renames a session that lost its nick to a fresh guest nick.
// It may run on another session's goroutine.
func (s *Session) becomeGuest(why string) {
	s.identMu.Lock()
	defer s.identMu.Unlock()
	nick, release := s.srv.nicks.claimGuest(s)
	defer release() // after the rename is announced
	if !s.registered.Load() {
		s.reply(protocol.Message{Source: s.prefix(), Command: "NICK", Params: []string{nick}})
		s.mu.Lock()
		s.nick = nick
		s.mu.Unlock()
		return
	}
	s.changeNick(nick)
	s.notice(why + "; you are now " + nick)
}

func handleLOGOUT(s *Session, m *protocol.Message, _ []byte) error {
	all := len(m.Params) > 0 && strings.EqualFold(m.Params[0], "ALL")
	if all {
		acct := s.Account()
		if acct == "" {
			return failErr("LOGOUT", "NOT_LOGGED_IN", "*", "You are not logged in")
		}
		tokens, conns, err := s.logoutEverywhere(acct)
		if err != nil {
			s.log().Error().Err(err).Str("account", acct).Msg("logout everywhere failed")
			return failErr("LOGOUT", "TEMPORARILY_UNAVAILABLE", "ALL", "Could not revoke your login tokens; try again later (you are still logged in)")
		}
		s.notice("Revoked " + strconv.Itoa(tokens) + " login tokens and closed " + strconv.Itoa(conns) + " other connections")
	}
	if !all && s.liveTwins() { // after ALL (or DROP) they are on their way out
		return failErr("LOGOUT", "SHARED_NICK", "*", "Your other devices share this nick and its rooms: disconnect this one instead (QUIT), or LOGOUT ALL to log out everywhere")
	}
	account := s.setAccount("")
	if account == "" {
		return failErr("LOGOUT", "NOT_LOGGED_IN", "*", "You are not logged in")
	}
	s.numeric(protocol.RPL_LOGGEDOUT, s.prefix(), "You are now logged out")
	s.accountChanged("")
	if protocol.FoldNick(s.Nick()) == protocol.FoldNick(account) {
		s.becomeGuest("Your nick belongs to the account " + account)
	}
	return nil
}

// nickReserved reports whether nick belongs to an account the session is
// not logged in to.
func (s *Session) nickReserved(nick string) bool {
	if protocol.FoldNick(nick) == protocol.FoldNick(s.Account()) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), accountTimeout)
	defer cancel()
	return s.srv.accounts.Exists(ctx, nick)
}

// reservedNick reports whether name may be neither an account nor a nick:
// a service's name (protocol.IsServiceName) or this server's own name.
// Accounts registered with such a name before the rule existed stay, and
// can log in, but never get the name as their nick.
func (srv *Server) reservedNick(name string) bool {
	return protocol.IsServiceName(name) || protocol.FoldNick(name) == protocol.FoldNick(srv.Config().ServerName)
}

func reservedReason(name string) string {
	return name + " is reserved for network services"
}
