package rooms

import (
	"errors"

	"github.com/livechat/livechat/protocol"
)

// How a Registry works in a cluster (Options.Cluster set): see remote.go.

// joinCluster is Join when rooms may be homed on other nodes. A room
// found gone on the way (dropped by its home meanwhile) is looked for
// again, a few times.
func (g *Registry) joinCluster(m Member, name, key string) (*Room, error) {
	cl := g.opts.Cluster
	folded := protocol.FoldRoom(name)
	for range 3 {
		g.mu.Lock()
		r := g.rooms[folded]
		live := r != nil && !r.dormant()
		if live {
			r.pending.Add(1)
		}
		g.mu.Unlock()
		if live {
			err := r.join(m, key)
			if err == nil {
				return r, nil
			}
			if !errors.Is(err, ErrNoSuchRoom) {
				return nil, err
			}
			continue
		}
		home, err := cl.Home(folded, true)
		if err != nil {
			return nil, ErrUnavailable
		}
		if home == cl.Self() {
			return g.joinLocal(m, name, key)
		}
		r = g.stubFor(name, folded, home)
		err = r.join(m, key)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, ErrNoSuchRoom) {
			return nil, err
		}
		g.dropStub(r)
	}
	return nil, ErrUnavailable
}

// getCluster is Get when rooms may be homed on other nodes.
func (g *Registry) getCluster(name string) *Room {
	cl := g.opts.Cluster
	folded := protocol.FoldRoom(name)
	g.mu.Lock()
	r := g.rooms[folded]
	if r != nil && !r.dormant() {
		g.mu.Unlock()
		return r
	}
	if s := g.stubs[folded]; s != nil {
		g.mu.Unlock()
		return s
	}
	dormant := r != nil
	g.mu.Unlock()
	home, err := cl.Home(folded, dormant)
	switch {
	case err != nil || home == "":
		return nil
	case home == cl.Self():
		return g.getLocal(name)
	}
	if r != nil {
		name = r.name
	}
	return g.stubFor(name, folded, home)
}

// stubFor returns this node's stub of a room homed on home.
func (g *Registry) stubFor(name, folded, home string) *Room {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r := g.stubs[folded]; r != nil {
		r.remote.mu.Lock()
		if len(r.remote.locals) == 0 {
			r.remote.home = home
		}
		r.remote.mu.Unlock()
		return r
	}
	r := &Room{name: name, folded: folded, reg: g, opts: &g.opts, done: make(chan struct{}), created: g.opts.now(),
		remote: &stub{home: home, locals: make(map[Client]Member)}}
	if g.stubs == nil {
		g.stubs = make(map[string]*Room)
	}
	g.stubs[folded] = r
	return r
}

// dropStub forgets a stub none of this node's clients is in.
func (g *Registry) dropStub(r *Room) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r.remote.mu.Lock()
	empty := len(r.remote.locals) == 0
	r.remote.mu.Unlock()
	if empty && g.stubs[r.folded] == r {
		delete(g.stubs, r.folded)
	}
}

// NodeLost handles the loss of another node: in each room this node is
// the home of, the lost node's members leave with a QUIT carrying reason,
// kept in history and seen by everyone; each room homed on the lost node
// gets a new home, and this node's members of it join it again there,
// silently. It returns once the rooms homed here have handled it.
func (g *Registry) NodeLost(node, reason string) {
	g.mu.Lock()
	var live, moved []*Room
	for _, r := range g.rooms {
		if !r.dormant() {
			live = append(live, r)
		}
	}
	for _, r := range g.stubs {
		if r.remote.homeNode() == node {
			moved = append(moved, r)
		}
	}
	g.mu.Unlock()
	done := make([]chan struct{}, 0, len(live))
	for _, r := range live {
		ch := make(chan struct{})
		if r.send(dropNodeReq{node: node, reason: reason, done: ch}) {
			done = append(done, ch)
		}
	}
	for _, r := range moved {
		g.rehome(r)
	}
	for i, ch := range done {
		select {
		case <-ch:
		case <-live[i].done:
		}
	}
}

// rehome finds the stub's room a new home (claiming it if nobody has yet)
// and joins this node's members there again. A room whose members were
// all elsewhere has no local member and is simply forgotten.
func (g *Registry) rehome(r *Room) {
	s := r.remote
	s.mu.Lock()
	locals := make([]Member, 0, len(s.locals))
	for _, m := range s.locals {
		locals = append(locals, m)
	}
	s.mu.Unlock()
	if len(locals) == 0 {
		g.dropStub(r)
		return
	}
	cl := g.opts.Cluster
	home, err := cl.Home(r.folded, true)
	if err != nil {
		g.opts.Hooks.storeFailed(r.name, err)
		return
	}
	if home == cl.Self() {
		// This node runs the room now: its actor takes over the stub's
		// members, and the stub keeps forwarding to it.
		g.mu.Lock()
		lr := g.rooms[r.folded]
		if lr == nil || lr.dormant() {
			lr = g.newRoomLocked(r.name, r.folded)
		}
		g.mu.Unlock()
		for _, m := range locals {
			done := make(chan error, 1)
			lr.pending.Add(1)
			if lr.send(joinReq{m: m, silent: true, done: done}) {
				await(lr, done, ErrNoSuchRoom)
			} else {
				lr.pending.Add(-1)
			}
		}
	}
	s.mu.Lock()
	s.home = home
	s.mu.Unlock()
	if home == cl.Self() {
		return
	}
	for _, m := range locals {
		done := make(chan error, 1)
		g.forward(r, joinReq{m: m, silent: true, done: done})
	}
}

// dropNodeReq removes a lost node's members from a room homed here.
type dropNodeReq struct {
	node, reason string
	done         chan struct{}
}

func (dropNodeReq) kind() string   { return "NODELOST" }
func (dropNodeReq) fail(*Room)     {}
func (q dropNodeReq) finish(*Room) { close(q.done) }
func (q dropNodeReq) run(r *Room) {
	cl := r.opts.Cluster
	var lost []Client
	for _, m := range r.members {
		if cl.NodeOf(m.Client) == q.node {
			lost = append(lost, m.Client)
		}
	}
	for _, c := range lost {
		m := r.remove(c)
		e := r.event(m, "QUIT", q.reason)
		r.record(e)
		r.broadcast(e, nil, false, false)
	}
}
