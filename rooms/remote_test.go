package rooms

import (
	"strings"
	"sync"
	"testing"
)

// fakeCluster joins registries in one process: what the NATS transport
// does between nodes, minus the network.
type fakeCluster struct {
	mu    sync.Mutex
	homes map[string]string
	nodes map[string]*fakeNode
	down  map[string]bool
}

type fakeNode struct {
	name    string
	c       *fakeCluster
	reg     *Registry
	clients map[uint64]Client
	ids     map[Client]uint64
	proxies map[ClientRef]*fakeProxy
}

// fakeProxy stands for a client of another node; its lines go straight to it.
type fakeProxy struct {
	ref    ClientRef
	target Client
	node   *fakeNode
}

func (p *fakeProxy) Send(l []byte) bool  { return p.target.Send(l) }
func (p *fakeProxy) Queue(l []byte) bool { return p.target.Queue(l) }
func (p *fakeProxy) Reply(l []byte) bool { return p.target.Reply(l) }
func (p *fakeProxy) Flush()              {}
func (p *fakeProxy) Features() Features  { return p.ref.Features }
func (p *fakeProxy) Away() bool          { return p.ref.Away }
func (p *fakeProxy) Removed(r *Room) {
	p.node.c.nodes[p.ref.Node].reg.Removed(r.folded, p.target)
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{homes: map[string]string{}, nodes: map[string]*fakeNode{}, down: map[string]bool{}}
}

func (fc *fakeCluster) node(t *testing.T, name string) *fakeNode {
	n := &fakeNode{name: name, c: fc, clients: map[uint64]Client{}, ids: map[Client]uint64{}, proxies: map[ClientRef]*fakeProxy{}}
	n.reg = testRegistry(t, func(o *Options) { o.Cluster = n })
	fc.nodes[name] = n
	return n
}

func (n *fakeNode) add(c Client) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	id := uint64(len(n.clients) + 1)
	n.clients[id], n.ids[c] = c, id
}

func (n *fakeNode) Self() string { return n.name }
func (n *fakeNode) Home(folded string, claim bool) (string, error) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	h, ok := n.c.homes[folded]
	if ok && !n.c.down[h] {
		return h, nil
	}
	if !claim {
		return "", nil
	}
	n.c.homes[folded] = n.name
	return n.name, nil
}
func (n *fakeNode) Release(folded string) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.c.homes[folded] == n.name {
		delete(n.c.homes, folded)
	}
}
func (n *fakeNode) Call(node string, p []byte) ([]byte, error) {
	ch := make(chan []byte, 1)
	n.c.nodes[node].reg.Serve(p, func(b []byte) { ch <- b })
	return <-ch, nil
}
func (n *fakeNode) Send(node string, p []byte, done func([]byte, error)) {
	a, err := n.Call(node, p)
	done(a, err)
}
func (n *fakeNode) Ref(c Client) ClientRef {
	if p, ok := c.(*fakeProxy); ok {
		return p.ref
	}
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return ClientRef{Node: n.name, ID: n.ids[c], Features: c.Features()}
}
func (n *fakeNode) Client(ref ClientRef) Client {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if ref.Node == n.name {
		return n.clients[ref.ID]
	}
	key := ClientRef{Node: ref.Node, ID: ref.ID}
	p := n.proxies[key]
	if p == nil {
		p = &fakeProxy{ref: ref, target: n.c.nodes[ref.Node].clients[ref.ID], node: n}
		n.proxies[key] = p
	}
	p.ref = ref
	return p
}
func (n *fakeNode) Mirror(node string, p []byte) { n.c.nodes[node].reg.Mirror(p) }
func (n *fakeNode) NodeOf(c Client) string {
	if p, ok := c.(*fakeProxy); ok {
		return p.ref.Node
	}
	return n.name
}

func lastLine(t *testing.T, c *fakeClient, n int) string {
	t.Helper()
	lines := c.waitLines(t, n)
	return lines[n-1]
}

func TestRoomAcrossNodes(t *testing.T) {
	fc := newFakeCluster()
	a, b := fc.node(t, "a"), fc.node(t, "b")
	alice, bob := newFake(), newFake()
	a.add(alice)
	b.add(bob)

	if _, err := a.reg.Join(Member{Client: alice, Nick: "alice", User: "u", Host: "h"}, "#Chat", ""); err != nil {
		t.Fatal(err)
	}
	alice.reset()
	rb, err := b.reg.Join(Member{Client: bob, Nick: "bob", User: "u", Host: "h"}, "#chat", "")
	if err != nil {
		t.Fatal(err)
	}
	if rb.remote == nil || rb.remote.homeNode() != "a" {
		t.Fatalf("bob's room should be a stub homed on a")
	}
	// alice sees bob join; bob gets his JOIN and the member list, which
	// names both.
	if l := lastLine(t, alice, 1); !strings.Contains(l, "bob!u@h JOIN #Chat") {
		t.Fatalf("alice saw %q", l)
	}
	lines := strings.Join(bob.waitLines(t, 3), "\n")
	if !strings.Contains(lines, "@alice") || !strings.Contains(lines, "bob") {
		t.Fatalf("bob's names: %s", lines)
	}
	alice.reset()
	bob.reset()
	if err := rb.Say(bob, Speech{Command: "PRIVMSG", Text: "hi from b"}, true); err != nil {
		t.Fatal(err)
	}
	if l := lastLine(t, alice, 1); !strings.Contains(l, "PRIVMSG #Chat :hi from b") {
		t.Fatalf("alice saw %q", l)
	}
	who, err := rb.Who(bob)
	if err != nil || len(who) != 2 {
		t.Fatalf("who: %v %v", who, err)
	}
	if rb.BlocksNickChange(bob) {
		t.Fatal("bob is not banned")
	}
	if p := rb.PrefixOf(bob, true); p != "" {
		t.Fatalf("bob's prefix %q", p)
	}
	// A node that is lost takes its members with it, with a QUIT in the room.
	alice.reset()
	a.reg.NodeLost("b", "node lost")
	if l := lastLine(t, alice, 1); !strings.Contains(l, "bob!u@h QUIT :node lost") {
		t.Fatalf("alice saw %q", l)
	}
}

func TestRoomMovesWhenHomeLost(t *testing.T) {
	fc := newFakeCluster()
	a, b := fc.node(t, "a"), fc.node(t, "b")
	alice, bob, carol := newFake(), newFake(), newFake()
	a.add(alice)
	b.add(bob)
	b.add(carol)
	ra, _ := a.reg.Join(Member{Client: alice, Nick: "alice", User: "u", Host: "h"}, "#chat", "")
	rb, _ := b.reg.Join(Member{Client: bob, Nick: "bob", User: "u", Host: "h"}, "#chat", "")
	b.reg.Join(Member{Client: carol, Nick: "carol", User: "u", Host: "h"}, "#chat", "")
	// alice makes bob an operator: his role outlives the move.
	ra.Mode(alice, "alice", false, []ModeChange{{Add: true, Mode: 'o', Arg: "bob"}})
	if p := rb.PrefixOf(bob, true); p != "@" {
		t.Fatalf("bob's prefix before the move: %q", p)
	}

	fc.mu.Lock()
	fc.down["a"] = true
	fc.mu.Unlock()
	bob.reset()
	carol.reset()
	b.reg.NodeLost("a", "node lost")
	if h := rb.remote.homeNode(); h != "b" {
		t.Fatalf("home is %q after a was lost", h)
	}
	// alice was on the lost node, which ran the room: node b knew her from
	// its mirror of the room, and tells its members once each.
	for _, c := range []*fakeClient{bob, carol} {
		if l := lastLine(t, c, 1); !strings.Contains(l, "alice!u@h QUIT :node lost") {
			t.Fatalf("saw %q", l)
		}
	}
	bob.reset()
	carol.reset()
	if err := rb.Say(bob, Speech{Command: "PRIVMSG", Text: "still here"}, true); err != nil {
		t.Fatal(err)
	}
	if l := lastLine(t, carol, 1); !strings.Contains(l, "PRIVMSG #chat :still here") {
		t.Fatalf("carol saw %q", l)
	}
	who, _ := rb.Who(bob)
	if len(who) != 2 {
		t.Fatalf("members after the move: %v", who)
	}
	if p := rb.PrefixOf(bob, true); p != "@" {
		t.Fatalf("bob's prefix after the move: %q", p)
	}
}

// A room refused for the room limit leaves no claim on its home behind.
func TestTooManyRoomsGivesTheHomeBack(t *testing.T) {
	fc := newFakeCluster()
	a := fc.node(t, "a")
	a.reg.SetLimits(1, 100)
	alice := newFake()
	a.add(alice)
	if _, err := a.reg.Join(Member{Client: alice, Nick: "alice"}, "#one", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.reg.Join(Member{Client: alice, Nick: "alice"}, "#two", ""); err != ErrTooManyRooms {
		t.Fatalf("second room: %v", err)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if h, ok := fc.homes["#two"]; ok {
		t.Fatalf("#two is still claimed by %q", h)
	}
}
