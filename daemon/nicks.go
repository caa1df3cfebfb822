package daemon

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/livechat/livechat/daemon/cluster"
	"github.com/livechat/livechat/protocol"
)

// nickRegistry maps folded nicks to sessions so that nicks are unique and
// private messages find their target. It is touched on NICK, on private
// messages and on disconnect, never on room traffic. Safe for concurrent use.
type nickRegistry struct {
	mu        sync.RWMutex
	nicks     map[string]*Session
	bySession map[*Session]string // the folded nick each session holds

	// claims makes nicks unique across a cluster (nil on a single node):
	// a nick is claimed cluster-wide before it is taken here, and held
	// names the claim of each session.
	claims *cluster.Claims
	held   map[*Session]cluster.Claim
}

// claimTimeout bounds a cluster-wide nick claim.
const claimTimeout = 5 * time.Second

// claim takes nick for s across the cluster and returns a function that
// gives up the claim s held before (to call once the rename is announced)
// and one that undoes the new claim (if the local part fails). A change of
// case only keeps the claim.
func (n *nickRegistry) claim(s *Session, nick string) (releaseOld, undo func(), ok bool) {
	noop := func() {}
	if n.claims == nil {
		return noop, noop, true
	}
	n.mu.RLock()
	old, had := n.held[s]
	n.mu.RUnlock()
	if had && protocol.FoldNick(old.Nick) == protocol.FoldNick(nick) {
		return noop, noop, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	defer cancel()
	cl, err := n.claims.Claim(ctx, nick, sessionID(s), s.Account())
	if err != nil {
		return nil, nil, false
	}
	n.mu.Lock()
	if n.held == nil {
		n.held = make(map[*Session]cluster.Claim)
	}
	n.held[s] = cl
	n.mu.Unlock()
	releaseOld = noop
	if had {
		releaseOld = func() { n.dropClaim(old) }
	}
	undo = func() {
		n.mu.Lock()
		if n.held[s] == cl {
			if had {
				n.held[s] = old
			} else {
				delete(n.held, s)
			}
		}
		n.mu.Unlock()
		n.dropClaim(cl)
	}
	return releaseOld, undo, true
}

func (n *nickRegistry) dropClaim(cl cluster.Claim) {
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	defer cancel()
	n.claims.Release(ctx, cl) // ErrNotHeld: taken over already, nothing to free
}

func newNickRegistry() *nickRegistry {
	return &nickRegistry{nicks: make(map[string]*Session), bySession: make(map[*Session]string)}
}

func (n *nickRegistry) addLocked(s *Session, folded string) bool {
	if holder, ok := n.nicks[folded]; ok && holder != s {
		return false
	}
	n.nicks[folded] = s
	n.bySession[s] = folded
	return true
}

// rename gives nick to s but keeps the nick it held reserved until the
// returned function is called: a rename is announced first, so that no
// one else can take the old nick and be announced with it while the
// renamer's peers still know it by that name. It fails when another
// session holds nick.
func (n *nickRegistry) rename(s *Session, nick string) (release func(), ok bool) {
	releaseClaim, undo, ok := n.claim(s, nick)
	if !ok {
		return nil, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	old, had := n.bySession[s]
	if !n.addLocked(s, protocol.FoldNick(nick)) {
		n.mu.Unlock()
		undo()
		n.mu.Lock()
		return nil, false
	}
	local := n.releaser(s, old, had)
	return func() { local(); releaseClaim() }, true
}

// releaser returns the function that frees s's old nick, unless s has
// gone back to it or someone else holds it by then.
func (n *nickRegistry) releaser(s *Session, old string, had bool) func() {
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if had && n.nicks[old] == s && n.bySession[s] != old {
			delete(n.nicks, old)
		}
	}
}

// take gives nick to s even when another session holds it, and returns
// that session (nil if none) so the caller can rename it: logging in to an
// account takes its nick back from whoever is using it. As with rename,
// s's old nick stays reserved until release is called, after the rename
// is announced.
func (n *nickRegistry) take(s *Session, nick string) (evicted *Session, release func()) {
	releaseClaim := func() {}
	if n.claims != nil {
		ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
		cl, _, err := n.claims.Take(ctx, nick, sessionID(s), s.Account())
		cancel()
		if err == nil {
			n.mu.Lock()
			if old, had := n.held[s]; had {
				releaseClaim = func() { n.dropClaim(old) }
			}
			if n.held == nil {
				n.held = make(map[*Session]cluster.Claim)
			}
			n.held[s] = cl
			n.mu.Unlock()
		}
	}
	defer func() {
		local := release
		release = func() { local(); releaseClaim() }
	}()
	folded := protocol.FoldNick(nick)
	n.mu.Lock()
	defer n.mu.Unlock()
	if holder, ok := n.nicks[folded]; ok && holder != s {
		evicted = holder
		delete(n.bySession, holder)
		delete(n.nicks, folded)
	}
	old, had := n.bySession[s]
	n.addLocked(s, folded)
	return evicted, n.releaser(s, old, had)
}

// claimGuest gives s a fresh guest-NNNN nick and returns it; like rename,
// it keeps s's old nick reserved until release is called.
func (n *nickRegistry) claimGuest(s *Session) (nick string, release func()) {
	for digits := 4; ; digits++ {
		lo := pow10(digits - 1)
		for range 16 {
			nick := "guest-" + strconv.Itoa(lo+rand.IntN(9*lo))
			if release, ok := n.rename(s, nick); ok {
				return nick, release
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
	n.mu.Lock()
	if folded, ok := n.bySession[s]; ok {
		delete(n.bySession, s)
		if n.nicks[folded] == s {
			delete(n.nicks, folded)
		}
	}
	cl, held := n.held[s]
	delete(n.held, s)
	n.mu.Unlock()
	if held {
		n.dropClaim(cl)
	}
}

// handOver passes the nick s holds, if any, to t, another device of the
// same user (multiclient), as s disconnects. Not used in a cluster.
func (n *nickRegistry) handOver(s, t *Session) {
	n.mu.Lock()
	defer n.mu.Unlock()
	folded, ok := n.bySession[s]
	if !ok {
		return
	}
	delete(n.bySession, s)
	if n.nicks[folded] == s {
		n.nicks[folded] = t
		n.bySession[t] = folded
	}
}

// holds reports whether s holds a nick in the registry.
func (n *nickRegistry) holds(s *Session) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	_, ok := n.bySession[s]
	return ok
}

// elsewhere reports whether another node of the cluster holds nick.
func (n *nickRegistry) elsewhere(nick string) bool {
	if n.claims == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	defer cancel()
	h, ok, err := n.claims.Holder(ctx, nick)
	return err != nil || ok && h.Node != n.claims.Node()
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
