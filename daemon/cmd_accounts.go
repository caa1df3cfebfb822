package daemon

import "github.com/livechat/livechat/protocol"

func init() {
	register(&command{name: "REGISTER", run: handleAccountsUnavailable, preReg: true, help: "REGISTER <name> <password> - create an account (coming soon)"})
	register(&command{name: "LOGIN", run: handleAccountsUnavailable, help: "LOGIN <name> <password> - log in to your account (coming soon)"})
}

// handleAccountsUnavailable answers account commands until accounts exist:
// a clear error, never silence.
func handleAccountsUnavailable(s *Session, m *protocol.Message, _ []byte) error {
	return failErr(m.Command, "TEMPORARILY_UNAVAILABLE", "*", "Accounts are not available on this server yet; you can chat as "+s.Nick())
}
