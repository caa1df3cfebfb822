package daemon

import (
	"container/list"
	"strconv"
	"sync"
	"time"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// maxConversations bounds how many private conversations keep history;
// the least recently active one is forgotten first.
const maxConversations = 10000

// privateHistory keeps recent private messages per pair of people, for
// CHATHISTORY. A person is their account when logged in and their
// connection otherwise, never a nick: whoever takes a nick later must not
// read the previous holder's messages. Safe for concurrent use; it is
// touched once per private message, never on room traffic.
type privateHistory struct {
	mu    sync.Mutex
	size  int // messages per conversation
	convs map[convKey]*conversation
	lru   list.List // of *conversation, most recently active first
}

// convKey names a conversation by its two parties' identities, in order.
type convKey struct{ a, b string }

func newConvKey(x, y string) convKey {
	if x > y {
		x, y = y, x
	}
	return convKey{x, y}
}

type conversation struct {
	key     convKey
	nicks   map[string]string // identity -> nick as last seen
	history rooms.History
	last    time.Time
	elem    *list.Element
}

// identity names who the session is for private history.
func (s *Session) identity() string {
	if account := s.Account(); account != "" {
		return "a:" + protocol.FoldNick(account)
	}
	return "c:" + strconv.FormatUint(s.id, 10)
}

func newPrivateHistory(size int) *privateHistory {
	return &privateHistory{size: size, convs: make(map[convKey]*conversation)}
}

// add records e, sent by from to to.
func (p *privateHistory) add(from, to *Session, e *rooms.Event) {
	if p.size <= 0 {
		return
	}
	fromID, toID := from.identity(), to.identity()
	key := newConvKey(fromID, toID)
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.convs[key]
	if c == nil {
		if len(p.convs) >= maxConversations {
			oldest := p.lru.Back().Value.(*conversation)
			p.lru.Remove(oldest.elem)
			delete(p.convs, oldest.key)
		}
		c = &conversation{key: key, nicks: map[string]string{}, history: rooms.NewHistory(p.size)}
		c.elem = p.lru.PushFront(c)
		p.convs[key] = c
	} else {
		p.lru.MoveToFront(c.elem)
	}
	c.nicks[fromID] = from.Nick()
	c.nicks[toID] = to.Nick()
	c.history.Add(e)
	c.last = e.At
}

// other returns the identity of the party in c who is not me.
func (c *conversation) other(me string) (string, bool) {
	switch me {
	case c.key.a:
		return c.key.b, true
	case c.key.b:
		return c.key.a, true
	}
	return "", false
}

// query runs fn over me's conversation with the person last seen as nick.
func (p *privateHistory) query(me *Session, nick string, fn func(*rooms.History) []*rooms.Event) []*rooms.Event {
	id, folded := me.identity(), protocol.FoldNick(nick)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.convs {
		if other, ok := c.other(id); ok && protocol.FoldNick(c.nicks[other]) == folded {
			return fn(&c.history)
		}
	}
	return nil
}

// historyTarget is a CHATHISTORY TARGETS entry.
type historyTarget struct {
	name string
	last time.Time
}

// targets lists the people me talked with privately, with the time of the
// latest message, for conversations active between from and to.
func (p *privateHistory) targets(me *Session, from, to time.Time) []historyTarget {
	id := me.identity()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []historyTarget
	for _, c := range p.convs {
		other, ok := c.other(id)
		if !ok || !inSpan(c.last, from, to) {
			continue
		}
		out = append(out, historyTarget{name: c.nicks[other], last: c.last})
	}
	return out
}
