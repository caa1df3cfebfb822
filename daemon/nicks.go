package daemon

import (
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/livechat/livechat/protocol"
)

// nickRegistry maps folded nicks to sessions so that nicks are unique and
// private messages find their target. It is touched on NICK, on private
// messages and on disconnect, never on room traffic. Safe for concurrent use.
type nickRegistry struct {
	mu    sync.RWMutex
	nicks map[string]*Session
}

func newNickRegistry() *nickRegistry {
	return &nickRegistry{nicks: make(map[string]*Session)}
}

// claim gives nick to s, releasing old (s's previous nick, "" or "*" for
// none). It fails when another session holds nick.
func (n *nickRegistry) claim(s *Session, old, nick string) bool {
	folded := protocol.FoldNick(nick)
	n.mu.Lock()
	defer n.mu.Unlock()
	if holder, ok := n.nicks[folded]; ok && holder != s {
		return false
	}
	if old != "" && old != "*" {
		if f := protocol.FoldNick(old); n.nicks[f] == s {
			delete(n.nicks, f)
		}
	}
	n.nicks[folded] = s
	return true
}

// claimGuest gives s a fresh guest-xxxx nick and returns it.
func (n *nickRegistry) claimGuest(s *Session, old string) string {
	for digits := 4; ; digits++ {
		for range 16 {
			nick := "guest-" + strconv.Itoa(rand.IntN(pow10(digits)-pow10(digits-1))+pow10(digits-1))
			if n.claim(s, old, nick) {
				return nick
			}
		}
	}
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

// release frees s's nick when it disconnects.
func (n *nickRegistry) release(s *Session) {
	folded := protocol.FoldNick(s.Nick())
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nicks[folded] == s {
		delete(n.nicks, folded)
	}
}

// get returns the session holding nick, or nil.
func (n *nickRegistry) get(nick string) *Session {
	folded := protocol.FoldNick(nick)
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.nicks[folded]
}

func (n *nickRegistry) len() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.nicks)
}
