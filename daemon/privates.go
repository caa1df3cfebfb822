package daemon

import (
	"container/list"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// maxConversations bounds how many private conversations this process
// remembers the nicks of; their history is in the log either way.
const maxConversations = 10000

// privateHistory keeps private messages per pair of people in the history
// log, for CHATHISTORY. A person is their account when logged in and their
// connection otherwise, never a nick: whoever takes a nick later must not
// read the previous holder's messages. It also remembers, for recent
// conversations, the nick each party was last seen with, so that a
// conversation with a guest who left can still be found by that nick.
// Safe for concurrent use; it is touched once per private message, never
// on room traffic.
type privateHistory struct {
	log        rooms.Log
	syncAlways bool

	mu    sync.Mutex
	convs map[string]*conversation // by target
	lru   list.List                // of *conversation, most recently active first
}

type conversation struct {
	target string
	a, b   string            // the two identities
	nicks  map[string]string // identity -> nick as last seen
	last   time.Time
	elem   *list.Element
}

// identity names who the session is for private history: its account, or
// its connection, named so that no later process's connection has the
// same name.
func (s *Session) identity() string { return s.identityOf(s.Account()) }

// identityOf is identity for the session logged in as account ("": none).
func (s *Session) identityOf(account string) string {
	if account != "" {
		return accountIdentity(account)
	}
	return "c:" + s.srv.ids.Prefix() + "." + strconv.FormatUint(s.id, 10)
}

func accountIdentity(account string) string { return "a:" + protocol.FoldNick(account) }

func newPrivateHistory(log rooms.Log, syncAlways bool) *privateHistory {
	return &privateHistory{log: log, syncAlways: syncAlways, convs: make(map[string]*conversation)}
}

// add records e, sent by from to to.
func (p *privateHistory) add(from, to *Session, e *rooms.Event) error {
	return p.addBetween(from.identity(), from.Nick(), to.identity(), to.Nick(), e)
}

// addBetween is add for two people named by identity and nick, one of
// whom may be on another node of a cluster.
func (p *privateHistory) addBetween(fromID, fromNick, toID, toNick string, e *rooms.Event) error {
	e.Origin = fromID
	p.log.Append(rooms.ConversationTarget(fromID, toID), e)
	p.note(fromID, fromNick, toID, toNick, e.At)
	if p.syncAlways {
		return p.log.Sync()
	}
	return nil
}

// note remembers who talked under which nicks in a conversation, so that
// CHATHISTORY by nick finds it.
func (p *privateHistory) note(fromID, fromNick, toID, toNick string, at time.Time) {
	target := rooms.ConversationTarget(fromID, toID)
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.convs[target]
	if c == nil {
		if len(p.convs) >= maxConversations {
			oldest := p.lru.Back().Value.(*conversation)
			p.lru.Remove(oldest.elem)
			delete(p.convs, oldest.target)
		}
		c = &conversation{target: target, a: fromID, b: toID, nicks: map[string]string{}}
		c.elem = p.lru.PushFront(c)
		p.convs[target] = c
	} else {
		p.lru.MoveToFront(c.elem)
	}
	c.nicks[fromID] = fromNick
	c.nicks[toID] = toNick
	c.last = at
}

// other returns the identity of the party in c who is not me.
func (c *conversation) other(me string) (string, bool) {
	switch me {
	case c.a:
		return c.b, true
	case c.b:
		return c.a, true
	}
	return "", false
}

// target finds me's conversation with the person called nick: one this
// process saw them in under that nick, else the one with whoever holds the
// nick now, else the one with the account of that name (which outlives
// restarts). "" when there is none to look in.
func (p *privateHistory) target(me *Session, nick string) string {
	id, folded := me.identity(), protocol.FoldNick(nick)
	p.mu.Lock()
	for _, c := range p.convs {
		if other, ok := c.other(id); ok && protocol.FoldNick(c.nicks[other]) == folded {
			p.mu.Unlock()
			return c.target
		}
	}
	p.mu.Unlock()
	if t := me.srv.nicks.get(nick); t != nil && t.registered.Load() {
		return rooms.ConversationTarget(id, t.identity())
	}
	if protocol.CheckNick(nick) != nil {
		return ""
	}
	return rooms.ConversationTarget(id, accountIdentity(nick))
}

// query answers q over me's conversation with nick.
func (p *privateHistory) query(me *Session, nick string, q rooms.Query) ([]*rooms.Event, error) {
	target := p.target(me, nick)
	if target == "" {
		return nil, nil
	}
	return p.log.Query(target, q)
}

// historyTarget is a CHATHISTORY TARGETS entry.
type historyTarget struct {
	name string
	last time.Time
}

// targets lists the people me talked with privately, with the time of the
// latest message, for conversations active between from and to: those
// this process saw, and for an account those the log kept from before.
func (p *privateHistory) targets(me *Session, from, to time.Time) ([]historyTarget, error) {
	id := me.identity()
	seen := make(map[string]bool)
	var out []historyTarget
	p.mu.Lock()
	for _, c := range p.convs {
		other, ok := c.other(id)
		if !ok {
			continue
		}
		seen[c.target] = true
		if inSpan(c.last, from, to) {
			out = append(out, historyTarget{name: c.nicks[other], last: c.last})
		}
	}
	p.mu.Unlock()
	if !strings.HasPrefix(id, "a:") {
		return out, nil // a connection's conversations are all from this process
	}
	logged, err := p.log.Targets(rooms.ConversationPrefix)
	if err != nil {
		return out, err
	}
	for _, t := range logged {
		if seen[t.Name] || !inSpan(t.Last, from, to) {
			continue
		}
		a, b, ok := strings.Cut(strings.TrimPrefix(t.Name, rooms.ConversationPrefix), " ")
		if !ok || a != id && b != id {
			continue
		}
		other := a
		if a == id {
			other = b
		}
		if nick := p.nickIn(t.Name, other); nick != "" {
			out = append(out, historyTarget{name: nick, last: t.Last})
		}
	}
	return out, nil
}

// nickIn reads the nick the person called other last had in a logged
// conversation: the source of their newest message, or what the other
// party addressed.
func (p *privateHistory) nickIn(target, other string) string {
	events, err := p.log.Query(target, rooms.Query{Sel: rooms.SelLatest, Limit: 1, Events: true})
	if err != nil || len(events) == 0 {
		return ""
	}
	e := events[0]
	if e.Origin == other {
		nick, _, _ := strings.Cut(e.Source, "!")
		return nick
	}
	if len(e.Params) > 0 {
		return e.Params[0]
	}
	return ""
}
