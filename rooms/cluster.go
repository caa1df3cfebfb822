package rooms

import (
	"errors"
	"fmt"
	"time"

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
			r, err := g.joinLocal(m, name, key)
			if errors.Is(err, ErrTooManyRooms) {
				// Not run here after all: give the claim back, or every
				// refused room name would leave a key behind.
				cl.Release(folded)
			}
			return r, err
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

// NodeLost handles the loss of another node. Each of this node's clients
// that shared a room with the lost node's users gets one QUIT (reason) for
// each of them, whichever node was the home of the rooms they shared; the
// rooms homed here drop them and keep the QUIT in history; each room the
// lost node was the home of gets a new home, and this node's members of
// it join it again there, silently. Every surviving node does the same
// for its own clients, so nobody is told twice.
func (g *Registry) NodeLost(node, reason string) {
	g.mu.Lock()
	var live, stubs []*Room
	for _, r := range g.rooms {
		if !r.dormant() {
			live = append(live, r)
		}
	}
	for _, r := range g.stubs {
		stubs = append(stubs, r)
	}
	g.mu.Unlock()
	lost := make(map[Client]map[string]mirrorEntry)
	tell := func(c Client, gone []mirrorEntry) {
		if len(gone) == 0 {
			return
		}
		if lost[c] == nil {
			lost[c] = make(map[string]mirrorEntry)
		}
		for _, e := range gone {
			lost[c][e.Prefix] = e
		}
	}
	for _, r := range live {
		done := make(chan droppedNode, 1)
		if !r.send(dropNodeReq{node: node, reason: reason, done: done}) {
			continue
		}
		a := await(r, done, droppedNode{})
		for _, c := range a.locals {
			tell(c, a.lost)
		}
	}
	var moved []*Room
	for _, r := range stubs {
		s := r.remote
		s.mu.Lock()
		var gone []mirrorEntry
		for k, e := range s.peers {
			if k.Node == node {
				gone = append(gone, e)
				delete(s.peers, k)
			}
		}
		for c := range s.locals {
			tell(c, gone)
		}
		if s.home == node {
			moved = append(moved, r)
		}
		s.mu.Unlock()
	}
	// The rooms move first, so that a member who answers the QUITs
	// speaks to the room's new home.
	for _, r := range moved {
		g.rehome(r)
	}
	at := g.opts.now()
	for c, gone := range lost {
		for _, e := range gone {
			q := &Event{At: at, Source: e.Prefix, Account: e.Account, Command: "QUIT", Params: []string{reason}}
			c.Send(q.Render(c.Features()))
		}
	}
}

// rehome finds the stub's room a new home (claiming it if nobody has yet)
// and joins this node's members there again. A room whose members were
// all elsewhere has no local member and is simply forgotten.
func (g *Registry) rehome(r *Room) {
	cl := g.opts.Cluster
	s := r.remote
	s.mu.Lock()
	type back struct {
		m    Member
		role role
	}
	locals := make([]back, 0, len(s.locals))
	for c, m := range s.locals {
		ref := cl.Ref(c)
		locals = append(locals, back{m, s.peers[peerKey{ref.Node, ref.ID}].Role})
	}
	s.mu.Unlock()
	if len(locals) == 0 {
		g.dropStub(r)
		return
	}
	home, err := cl.Home(r.folded, true)
	if err != nil {
		g.opts.Hooks.storeFailed(r.name, err)
		return
	}
	if home == cl.Self() {
		ms, roles := make([]Member, len(locals)), make([]role, len(locals))
		for i, b := range locals {
			ms[i], roles[i] = b.m, b.role
		}
		g.takeOver(r, ms, roles)
		return
	}
	s.mu.Lock()
	s.home = home
	s.mu.Unlock()
	for _, b := range locals {
		g.rejoin(r, b.m, b.role)
	}
}

// rejoin joins a member again, silently, at the stub's home. The home may
// not be ready for it yet (it has not seen the old home go, or the call
// failed): then the home is looked for again, a few times.
func (g *Registry) rejoin(r *Room, m Member, had role) {
	cl := g.opts.Cluster
	for attempt := range 5 {
		done := make(chan error, 1)
		if g.forwardOnce(r, joinReq{m: m, silent: true, role: had, done: done}) {
			select {
			case err := <-done:
				if err == nil {
					return
				}
			default:
			}
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
		home, err := cl.Home(r.folded, true)
		if err != nil {
			continue
		}
		if home == cl.Self() {
			g.takeOver(r, []Member{m}, []role{had})
			return
		}
		r.remote.mu.Lock()
		r.remote.home = home
		r.remote.mu.Unlock()
	}
	g.opts.Hooks.storeFailed(r.name, fmt.Errorf("rooms: %s could not join %s again after its home moved", m.Nick, r.name))
}

// takeOver makes this node the home of a stub's room: its actor takes
// over the members, joined silently, and the stub forwards to it.
func (g *Registry) takeOver(r *Room, ms []Member, roles []role) {
	g.mu.Lock()
	lr := g.rooms[r.folded]
	if lr == nil || lr.dormant() {
		lr = g.newRoomLocked(r.name, r.folded)
	}
	// Counted as on their way before the lock goes, or the new actor,
	// finding itself empty, would drop the room before they arrive.
	lr.pending.Add(int32(len(ms)))
	g.mu.Unlock()
	for i, m := range ms {
		done := make(chan error, 1)
		if lr.send(joinReq{m: m, silent: true, role: roles[i], done: done}) {
			await(lr, done, ErrNoSuchRoom)
		} else {
			lr.pending.Add(-1)
		}
	}
	r.remote.mu.Lock()
	r.remote.home = g.opts.Cluster.Self()
	r.remote.mu.Unlock()
}

// dropNodeReq removes a lost node's members from a room homed here,
// keeping their QUIT in history, and answers who they were and which of
// this node's clients are in the room. Nobody is sent anything: NodeLost
// tells this node's clients, and every other node its own.
type dropNodeReq struct {
	node, reason string
	done         chan droppedNode
}

type droppedNode struct {
	lost   []mirrorEntry
	locals []Client
}

func (dropNodeReq) kind() string { return "NODELOST" }
func (q dropNodeReq) fail(*Room) { trySend(q.done, droppedNode{}) }
func (dropNodeReq) finish(*Room) {}
func (q dropNodeReq) run(r *Room) {
	cl := r.opts.Cluster
	var a droppedNode
	var gone []Client
	for _, m := range r.members {
		switch cl.NodeOf(m.Client) {
		case q.node:
			gone = append(gone, m.Client)
			a.lost = append(a.lost, r.mirrorEntry(m))
		case cl.Self():
			a.locals = append(a.locals, m.Client)
		}
	}
	for _, c := range gone {
		m := r.removeQuietly(c)
		r.record(r.event(m, "QUIT", q.reason))
	}
	q.done <- a
}

// LiveInfos returns the LIST snapshot of every room this node runs.
func (g *Registry) LiveInfos() []Info {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Info, 0, g.live)
	for _, r := range g.rooms {
		if !r.dormant() {
			out = append(out, r.Info())
		}
	}
	return out
}
