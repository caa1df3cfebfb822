package rooms

import (
	"encoding/json"
)

// A stub mirrors who is in its room, so that when a node is lost, each
// surviving node can tell its own clients which of their peers left with
// it, once per peer however many rooms they shared, even for rooms the
// lost node was the home of (whose actor and member list are gone with
// it). The home keeps the mirrors current: a full list to a node when one
// of its clients joins, then each change to every node with members, in
// the room's order.

// peerKey names a member across the cluster.
type peerKey struct {
	Node string `json:"n"`
	ID   uint64 `json:"i"`
}

type mirrorEntry struct {
	peerKey
	Prefix  string `json:"p"` // nick!user@host
	Account string `json:"a,omitempty"`
	Role    role   `json:"o,omitempty"`
}

// mirrorFrame is one change to a room's mirrors, or a full list (Snap).
type mirrorFrame struct {
	Room string        `json:"r"`
	Snap bool          `json:"s,omitempty"`
	Add  []mirrorEntry `json:"add,omitempty"` // added or renamed
	Del  []peerKey     `json:"del,omitempty"`
}

func (r *Room) mirrorEntry(m *member) mirrorEntry {
	ref := r.opts.Cluster.Ref(m.Client)
	return mirrorEntry{peerKey: peerKey{ref.Node, ref.ID}, Prefix: m.prefix, Account: m.Account, Role: m.role}
}

// memberAdded tells the other nodes with members that m joined, and gives
// m's node the whole list if m is another node's.
func (r *Room) memberAdded(m *member) {
	cl := r.opts.Cluster
	if cl == nil {
		return
	}
	node := cl.NodeOf(m.Client)
	if r.nodes == nil {
		r.nodes = make(map[string]int)
	}
	r.nodes[node]++
	e := r.mirrorEntry(m)
	if node != cl.Self() {
		snap := mirrorFrame{Room: r.folded, Snap: true, Add: make([]mirrorEntry, 0, len(r.members))}
		for _, o := range r.members {
			snap.Add = append(snap.Add, r.mirrorEntry(o))
		}
		r.sendMirror(node, snap)
	}
	r.toMirrors(mirrorFrame{Room: r.folded, Add: []mirrorEntry{e}}, node)
}

// memberRemoved counts m out of its node's members.
func (r *Room) memberRemoved(m *member) {
	cl := r.opts.Cluster
	if cl == nil {
		return
	}
	node := cl.NodeOf(m.Client)
	if r.nodes[node]--; r.nodes[node] <= 0 {
		delete(r.nodes, node)
	}
}

// memberChanged tells the other nodes with members m's new prefix or role.
func (r *Room) memberChanged(m *member) {
	if r.opts.Cluster != nil {
		r.toMirrors(mirrorFrame{Room: r.folded, Add: []mirrorEntry{r.mirrorEntry(m)}}, "")
	}
}

// toMirrors sends f to every other node with members, but skip.
func (r *Room) toMirrors(f mirrorFrame, skip string) {
	self := r.opts.Cluster.Self()
	for node := range r.nodes {
		if node != self && node != skip {
			r.sendMirror(node, f)
		}
	}
}

func (r *Room) sendMirror(node string, f mirrorFrame) {
	b, err := json.Marshal(f)
	if err == nil {
		r.opts.Cluster.Mirror(node, b)
	}
}

// Mirror applies a change the home of a room sent to this node's stub.
func (g *Registry) Mirror(payload []byte) {
	var f mirrorFrame
	if json.Unmarshal(payload, &f) != nil {
		return
	}
	g.mu.Lock()
	r := g.stubs[f.Room]
	g.mu.Unlock()
	if r == nil {
		return
	}
	s := r.remote
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Snap || s.peers == nil {
		s.peers = make(map[peerKey]mirrorEntry, len(f.Add))
	}
	for _, e := range f.Add {
		s.peers[e.peerKey] = e
	}
	for _, k := range f.Del {
		delete(s.peers, k)
	}
}
