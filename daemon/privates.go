package daemon

import (
	"container/list"
	"sync"
	"time"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// maxConversations bounds how many private conversations keep history;
// the least recently active one is forgotten first.
const maxConversations = 10000

// privateHistory keeps recent private messages per pair of nicks, for
// CHATHISTORY. Safe for concurrent use; it is touched once per private
// message, never on room traffic.
type privateHistory struct {
	mu    sync.Mutex
	size  int // messages per conversation
	convs map[convKey]*conversation
	lru   list.List // of *conversation, most recently active first
}

// convKey names a conversation by its two folded nicks, in order.
type convKey struct{ a, b string }

func newConvKey(x, y string) convKey {
	x, y = protocol.FoldNick(x), protocol.FoldNick(y)
	if x > y {
		x, y = y, x
	}
	return convKey{x, y}
}

type conversation struct {
	key     convKey
	nicks   map[string]string // folded nick -> nick as last seen
	history rooms.History
	last    time.Time
	elem    *list.Element
}

func newPrivateHistory(size int) *privateHistory {
	return &privateHistory{size: size, convs: make(map[convKey]*conversation)}
}

// add records e, sent by from to to.
func (p *privateHistory) add(from, to *Session, e *rooms.Event) {
	if p.size <= 0 {
		return
	}
	fromNick, toNick := from.Nick(), to.Nick()
	key := newConvKey(fromNick, toNick)
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
	c.nicks[protocol.FoldNick(fromNick)] = fromNick
	c.nicks[protocol.FoldNick(toNick)] = toNick
	c.history.Add(e)
	c.last = e.At
}

// query runs fn over the conversation between me and other.
func (p *privateHistory) query(me, other string, fn func(*rooms.History) []*rooms.Event) []*rooms.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.convs[newConvKey(me, other)]
	if c == nil {
		return nil
	}
	return fn(&c.history)
}

// historyTarget is a CHATHISTORY TARGETS entry.
type historyTarget struct {
	name string
	last time.Time
}

// targets lists the people me talked with privately, with the time of the
// latest message, for conversations active between from and to.
func (p *privateHistory) targets(me string, from, to time.Time) []historyTarget {
	folded := protocol.FoldNick(me)
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []historyTarget
	for key, c := range p.convs {
		if key.a != folded && key.b != folded {
			continue
		}
		if c.last.Before(from) || c.last.After(to) {
			continue
		}
		other := key.a
		if other == folded {
			other = key.b
		}
		out = append(out, historyTarget{name: c.nicks[other], last: c.last})
	}
	return out
}
