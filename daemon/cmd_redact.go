package daemon

import (
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

func init() {
	register(&command{name: "REDACT", run: handleREDACT, minParams: 2})
}

// maxMsgidLen bounds a msgid REDACT may name. Ours are about 30 bytes; a
// longer one names nothing, and never reaches a store.
const maxMsgidLen = 100

// handleREDACT serves IRCv3 draft/message-redaction: `REDACT <target>
// <msgid> [:reason]`. In a room, a member may redact their own message
// and an operator anyone's; in a private conversation, only one's own.
// The message leaves memory and the history store, and the REDACT reaches
// whoever negotiated the capability among those who could see it.
func handleREDACT(s *Session, m *protocol.Message, _ []byte) error {
	target, id, reason := m.Params[0], m.Params[1], m.Param(2)
	if !validMsgid(id) {
		return failErr("REDACT", "UNKNOWN_MSGID", target, "*", "This message does not exist or is too old")
	}
	if reason != "" {
		if err := textError("REDACT", target, reason); err != nil {
			return err
		}
	}
	if name, ok := s.roomTarget(target); ok {
		return s.redactInRoom(name, id, reason)
	}
	return s.redactPrivate(target, id, reason)
}

// validMsgid accepts what could be a msgid and is safe as a middle
// parameter: no spaces or control characters, no leading ':'.
func validMsgid(id string) bool {
	if id == "" || len(id) > maxMsgidLen || id[0] == ':' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func (s *Session) redactInRoom(target, id, reason string) error {
	r := s.joinedRoom(target)
	if r == nil {
		// Outsiders learn nothing about the room's messages, not even
		// whether the id exists.
		return redactInvalidTarget(target)
	}
	name := r.Name()
	_, err := r.Redact(s, id, s.fit(reason, "REDACT", name, id), s.owner())
	return s.redactError(name, id, err)
}

// redactError maps a redaction's outcome to its FAIL.
func (s *Session) redactError(target, id string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rooms.ErrNotMember), errors.Is(err, rooms.ErrNoSuchRoom):
		return redactInvalidTarget(target)
	case errors.Is(err, rooms.ErrUnknownMessage):
		return failErr("REDACT", "UNKNOWN_MSGID", target, id, "This message does not exist or is too old")
	case errors.Is(err, rooms.ErrRedactForbidden):
		return failErr("REDACT", "REDACT_FORBIDDEN", target, id, "You are not authorised to delete this message")
	default:
		s.log().Error().Err(err).Str("target", target).Msg("redaction failed")
		return failErr("REDACT", "TEMPORARILY_UNAVAILABLE", target, id, "The history store is not available; the message was not deleted, try again later")
	}
}

func redactInvalidTarget(target string) error {
	return failErr("REDACT", "INVALID_TARGET", target, "You cannot delete messages from "+target)
}

// owner returns a test of whether an event was sent by the session's
// person, as it stands now: its identity (see identity), or, for an event
// recorded without an origin, the account it was sent from. Both are read
// once, so the test takes no locks and may run under others.
func (s *Session) owner() func(*rooms.Event) bool {
	me, account := s.identity(), protocol.FoldNick(s.Account())
	return func(e *rooms.Event) bool {
		if e.Origin != "" {
			return e.Origin == me
		}
		return account != "" && e.Account != "" && protocol.FoldNick(e.Account) == account
	}
}

// redactPrivate redacts the session's own message id in its private
// conversation with the person last seen as nick, and tells both parties'
// connections that negotiated the capability.
func (s *Session) redactPrivate(nick, id, reason string) error {
	if protocol.CheckNick(nick) != nil {
		return redactInvalidTarget(nick)
	}
	reason = s.fit(reason, "REDACT", nick, id)
	_, other, err := s.srv.privates.redact(s, nick, id, s.owner())
	if err != nil {
		return s.redactError(nick, id, err)
	}
	params := []string{nick, id}
	if reason != "" {
		params = append(params, reason)
	}
	e := s.event("REDACT", params...)
	e.ID = s.srv.ids.Next()
	rs := rooms.NewRenderings(e)
	for _, t := range s.srv.sessionsOf(s.identity(), other) {
		switch {
		case !t.hasCap(capMessageRedaction):
		case t == s:
			s.Reply(rs.For(s.Features()))
		default:
			t.Send(rs.For(t.Features()))
		}
	}
	return nil
}

// redact removes id from me's conversation with the person called nick
// (found as CHATHISTORY finds it) if owns says me sent it, and returns the
// event and the other party's identity.
func (p *privateHistory) redact(me *Session, nick, id string, owns func(*rooms.Event) bool) (*rooms.Event, string, error) {
	target := p.target(me, nick)
	if target == "" {
		return nil, "", rooms.ErrUnknownMessage
	}
	e, err := redactConversation(p.log, target, id, owns)
	if err != nil {
		return nil, "", err
	}
	return e, otherParty(target, me.identity()), nil
}

// otherParty returns the identity in a conversation's target that is not
// me (me again when someone talks to themself).
func otherParty(target, me string) string {
	x, y, _ := strings.Cut(strings.TrimPrefix(target, rooms.ConversationPrefix), " ")
	if x == me {
		return y
	}
	return x
}

// redactConversation removes id from a private conversation kept in log
// under target (rooms.ConversationTarget), if owns says the asker sent it.
// In a conversation nobody moderates: only one's own messages go.
func redactConversation(log rooms.Log, target, id string, owns func(*rooms.Event) bool) (*rooms.Event, error) {
	events, err := log.Query(target, aroundID(id))
	if err != nil {
		return nil, err
	}
	var e *rooms.Event
	for _, x := range events {
		if x.ID == id {
			e = x
		}
	}
	switch {
	case e == nil:
		return nil, rooms.ErrUnknownMessage
	case !e.Redactable() || !owns(e):
		return nil, rooms.ErrRedactForbidden
	}
	if _, err := log.Redact(target, id); err != nil {
		return nil, err
	}
	return e, nil
}

// aroundID selects the event id itself, whatever its kind.
func aroundID(id string) rooms.Query {
	return rooms.Query{Sel: rooms.SelAround, A: rooms.Bound{ID: id}, Limit: 1, Events: true}
}

// sessionsOf lists the registered sessions of the given identities (see
// identity), each once: every connection of an account, or the one
// connection of a guest.
func (srv *Server) sessionsOf(identities ...string) []*Session {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var out []*Session
	add := func(t *Session) {
		if t.registered.Load() && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	for _, id := range identities {
		if folded, ok := strings.CutPrefix(id, "a:"); ok {
			for t := range srv.byAccount[folded] {
				add(t)
			}
			continue
		}
		// A guest: "c:<ids prefix>.<connection id>".
		n, err := strconv.ParseUint(id[strings.LastIndexByte(id, '.')+1:], 10, 64)
		if t := srv.byID[n]; err == nil && t != nil && t.identity() == id {
			add(t)
		}
	}
	return out
}

// accountSessions lists the sessions logged in to account.
func (srv *Server) accountSessions(account string) []*Session {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	set := srv.byAccount[protocol.FoldNick(account)]
	out := make([]*Session, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	return out
}

// indexAccountLocked moves s from old's sessions to account's ("": none).
// Call it with srv.mu held.
func (srv *Server) indexAccountLocked(s *Session, old, account string) {
	if old != "" {
		folded := protocol.FoldNick(old)
		delete(srv.byAccount[folded], s)
		if len(srv.byAccount[folded]) == 0 {
			delete(srv.byAccount, folded)
		}
	}
	if account != "" {
		folded := protocol.FoldNick(account)
		if srv.byAccount[folded] == nil {
			srv.byAccount[folded] = make(map[*Session]struct{})
		}
		srv.byAccount[folded][s] = struct{}{}
	}
}

// setAccount records the session's account ("": logged out) and returns
// the one it had.
func (s *Session) setAccount(account string) (old string) {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	s.mu.Lock()
	old, s.account = s.account, account
	s.mu.Unlock()
	s.srv.indexAccountLocked(s, old, account)
	return old
}
