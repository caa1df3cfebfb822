package cluster

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// HomesBucket holds which node runs each room's actor.
const HomesBucket = "LIVECHAT_HOMES"

// CallTimeout bounds a request to a room's home node.
const CallTimeout = 5 * time.Second

// Locals is what a Link needs from the daemon: its clients by id.
type Locals interface {
	// Client returns the local client with connection id, or nil.
	Client(id uint64) rooms.Client
	// Ref names a local client (its id and what it negotiated); false if
	// c is not one of this node's clients.
	Ref(c rooms.Client) (rooms.ClientRef, bool)
}

// Registry is what a Link serves: the rooms of this node.
type Registry interface {
	LiveInfos() []rooms.Info
	Serve(payload []byte, reply func([]byte))
	Mirror(payload []byte)
	Removed(folded string, c rooms.Client)
	NodeLost(node, reason string)
}

// Frames on a node's subjects. lc.n.<node>.req carries requests to rooms
// homed on the node, in the order each sender sent them; lc.n.<node>.out
// carries what comes back: lines for the node's clients, answers, member
// lists. What a node sends another travels on one subject, in order, and
// an answer rides in the same frame as the request's lines, so a client
// gets its lines and its request's answer together or not at all.
const (
	frameCall    = 'R' // call id, sender, payload
	frameLines   = 'L' // (client or call id, kind, line or answer)...
	frameRemoved = 'K' // client id, folded room
	frameGone    = 'G' // client id: a client of the sender disconnected
	frameMirror  = 'M' // a change of a room's members (JSON, see rooms/mirror.go)
)

// Record kinds in a lines frame.
const (
	lineQueue  = iota
	lineReply  //
	lineAnswer // the answer to a call (the id is the call's): it rides with the lines before it, so the caller gets both or neither
)

// Link carries room requests and client lines between the nodes of a
// cluster over core NATS, and decides room homes in JetStream KV. It is
// the rooms.Cluster of a clustered daemon.
type Link struct {
	nc    *nats.Conn
	node  *Node
	homes jetstream.KeyValue
	local atomic.Pointer[local]

	subs []*nats.Subscription
	stop chan struct{} // ends the sweeper

	mu      sync.Mutex
	calls   map[uint64]*call
	nextID  uint64
	proxies map[proxyKey]*proxy
	out     map[string]*outbox
	revs    map[string]uint64 // homes this node holds: folded room -> revision

	// Published counts frames sent; Dropped counts frames NATS refused.
	Published, Dropped atomic.Uint64
	// Answered, if set, is told how long each answered request took: the
	// round trip to a room's home and through its mailbox.
	Answered func(time.Duration)

	// onOut's: clients with queued lines not yet flushed.
	touched       map[rooms.Client]struct{}
	pendingFrames int
}

// call is a request waiting for its answer: on ch (Call), or passed to
// done (Send) by the answer or, after CallTimeout, by the sweeper.
type call struct {
	node string
	ch   chan []byte // nil on it: the node was lost
	done func([]byte, error)
	sent time.Time
}

type proxyKey struct {
	node string
	id   uint64
}

// outbox gathers the lines for one node's clients until a flush.
type outbox struct {
	mu  sync.Mutex
	buf []byte
}

// NewLink opens the homes bucket and subscribes to this node's subjects.
// Until SetLocal is called, what arrives is dropped.
func NewLink(ctx context.Context, nc *nats.Conn, node *Node) (*Link, error) {
	kv, err := openBucket(ctx, node.js, jetstream.KeyValueConfig{
		Bucket:      HomesBucket,
		Description: "livechat room homes",
		History:     1,
		Replicas:    node.reps,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	l := &Link{nc: nc, node: node, homes: kv,
		calls: make(map[uint64]*call), proxies: make(map[proxyKey]*proxy),
		stop: make(chan struct{}),
		out:  make(map[string]*outbox), revs: make(map[string]uint64), touched: make(map[rooms.Client]struct{})}
	for _, s := range []struct {
		subj string
		fn   nats.MsgHandler
	}{
		{"lc.n." + node.Name() + ".req", l.onRequest},
		{"lc.n." + node.Name() + ".out", l.onOut},
		{"lc.gone", l.onGone},
		{"lc.dir", l.onDirectory},
	} {
		sub, err := nc.Subscribe(s.subj, s.fn)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("cluster: subscribe %s: %w", s.subj, err)
		}
		// A slow handler must not make NATS drop lines: the bound is
		// memory, generous, and a drop is counted.
		sub.SetPendingLimits(1<<20, 1<<30)
		l.subs = append(l.subs, sub)
	}
	go l.sweep()
	node.Watch(func(name string, alive bool) {
		if alive {
			return
		}
		l.forgetNode(name)
		l.failCalls(name)
		if lo := l.local.Load(); lo != nil {
			go lo.rooms.NodeLost(name, "node lost")
		}
	})
	return l, nil
}

type local struct {
	clients Locals
	rooms   Registry
}

// SetLocal gives the link this node's clients and the rooms it serves.
func (l *Link) SetLocal(clients Locals, rooms Registry) {
	l.local.Store(&local{clients: clients, rooms: rooms})
}

// Close unsubscribes. Calls waiting for an answer fail.
func (l *Link) Close() {
	for _, s := range l.subs {
		s.Unsubscribe()
	}
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
}

// failCalls fails at once the requests waiting for a lost node's answer.
func (l *Link) failCalls(node string) {
	var lost []*call
	l.mu.Lock()
	for id, c := range l.calls {
		if c.node == node {
			lost = append(lost, c)
			delete(l.calls, id)
		}
	}
	l.mu.Unlock()
	for _, c := range lost {
		if c.done != nil {
			c.done(nil, rooms.ErrUnavailable)
		} else {
			c.ch <- nil
		}
	}
}

// sweep fails the sent requests whose answer is overdue.
func (l *Link) sweep() {
	t := time.NewTicker(CallTimeout / 5)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case now := <-t.C:
			var late []*call
			l.mu.Lock()
			for id, c := range l.calls {
				if c.done != nil && now.Sub(c.sent) > CallTimeout {
					late = append(late, c)
					delete(l.calls, id)
				}
			}
			l.mu.Unlock()
			for _, c := range late {
				c.done(nil, rooms.ErrUnavailable)
			}
		}
	}
}

// Self implements rooms.Cluster.
func (l *Link) Self() string { return l.node.Name() }

type homeValue struct {
	Node string `json:"node"`
	Inc  string `json:"inc"`
}

// Home implements rooms.Cluster: the KV key of the room names its home
// node and incarnation; a home whose incarnation no longer holds its
// lease is taken over with a compare-and-set, so of several nodes taking
// over one room exactly one wins.
func (l *Link) Home(folded string, claim bool) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	defer cancel()
	key := hex.EncodeToString([]byte(folded))
	for range 5 {
		e, err := l.homes.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if !claim {
				return "", nil
			}
			rev, err := l.homes.Create(ctx, key, l.homeValue())
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			if err != nil {
				return "", err
			}
			l.setRev(folded, rev)
			return l.Self(), nil
		case err != nil:
			return "", err
		}
		var h homeValue
		json.Unmarshal(e.Value(), &h)
		mine := h.Node == l.Self() && h.Inc == l.node.Incarnation()
		if mine {
			l.mu.Lock()
			held := l.revs[folded] == e.Revision()
			l.mu.Unlock()
			if held || !claim {
				return l.Self(), nil
			}
		} else {
			alive, err := l.node.aliveInc(ctx, h.Node, h.Inc)
			if err != nil {
				return "", err
			}
			if alive {
				return h.Node, nil
			}
			if !claim {
				return "", nil
			}
		}
		// A dead node's, or ours with a release on its way: write it
		// again at its revision, so that the release cannot delete it.
		rev, err := l.homes.Update(ctx, key, l.homeValue(), e.Revision())
		if err != nil {
			continue
		}
		l.setRev(folded, rev)
		return l.Self(), nil
	}
	return "", fmt.Errorf("cluster: home of %s: too many races", folded)
}

func (l *Link) homeValue() []byte {
	b, _ := json.Marshal(homeValue{Node: l.Self(), Inc: l.node.Incarnation()})
	return b
}

func (l *Link) setRev(folded string, rev uint64) {
	l.mu.Lock()
	l.revs[folded] = rev
	l.mu.Unlock()
}

// Release implements rooms.Cluster: the room's key goes, unless this node
// claimed it again since.
func (l *Link) Release(folded string) {
	l.mu.Lock()
	rev, ok := l.revs[folded]
	delete(l.revs, folded)
	l.mu.Unlock()
	if !ok {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
		defer cancel()
		l.homes.Delete(ctx, hex.EncodeToString([]byte(folded)), jetstream.LastRevision(rev))
	}()
}

// frame helpers: uvarints and length-prefixed strings.
func putUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
func putBytes(b, s []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

type reader struct {
	b   []byte
	err bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err || uint64(len(r.b)) < n {
		r.err, r.b = true, nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (l *Link) publish(subj string, data []byte) error {
	if err := l.nc.Publish(subj, data); err != nil {
		l.Dropped.Add(1)
		return err
	}
	l.Published.Add(1)
	return nil
}

// Call implements rooms.Cluster.
func (l *Link) Call(node string, payload []byte) ([]byte, error) {
	c := &call{ch: make(chan []byte, 1), sent: time.Now()}
	id, err := l.request(node, payload, c)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(CallTimeout)
	defer t.Stop()
	select {
	case a := <-c.ch:
		if a == nil {
			return nil, rooms.ErrUnavailable
		}
		return a, nil
	case <-t.C:
		l.mu.Lock()
		delete(l.calls, id)
		l.mu.Unlock()
		return nil, rooms.ErrUnavailable
	}
}

// Send implements rooms.Cluster: Call without waiting; done gets the
// answer, or ErrUnavailable once it is overdue.
func (l *Link) Send(node string, payload []byte, done func([]byte, error)) {
	if _, err := l.request(node, payload, &call{done: done, sent: time.Now()}); err != nil {
		done(nil, err)
	}
}

// request publishes a request to node and registers c for its answer.
func (l *Link) request(node string, payload []byte, c *call) (uint64, error) {
	if !l.nc.IsConnected() || !l.node.Alive(node) {
		return 0, rooms.ErrUnavailable // cut off, or its rooms are moving: fail now, not in 5 s
	}
	c.node = node
	l.mu.Lock()
	l.nextID++
	id := l.nextID
	l.calls[id] = c
	l.mu.Unlock()
	b := putUvarint([]byte{frameCall}, id)
	b = putBytes(b, []byte(l.Self()))
	if err := l.publish("lc.n."+node+".req", append(b, payload...)); err != nil {
		l.mu.Lock()
		delete(l.calls, id)
		l.mu.Unlock()
		return 0, rooms.ErrUnavailable
	}
	return id, nil
}

func (l *Link) onRequest(m *nats.Msg) {
	lo := l.local.Load()
	if lo == nil || len(m.Data) == 0 {
		return
	}
	r := &reader{b: m.Data[1:]}
	switch m.Data[0] {
	case frameCall:
		id := r.uvarint()
		from := string(r.bytes())
		if r.err {
			return
		}
		lo.rooms.Serve(r.b, func(a []byte) {
			o := l.outboxOf(from)
			o.mu.Lock()
			o.add(id, lineAnswer, a)
			o.mu.Unlock()
			l.flush(from)
		})
	}
}

func (l *Link) onOut(m *nats.Msg) {
	lo := l.local.Load()
	if lo == nil || len(m.Data) == 0 {
		return
	}
	r := &reader{b: m.Data[1:]}
	if m.Data[0] == frameLines {
		// Lines wait for their flush while more frames are queued behind
		// this one (a bounded number of them): a busy room then writes
		// many lines per write to each member, as on its home node.
		l.pendingFrames++
		for len(r.b) > 0 && !r.err {
			id := r.uvarint()
			kind := r.uvarint()
			line := r.bytes()
			if kind == lineAnswer && !r.err {
				l.flushTouched() // the caller's lines are written first
				l.answer(id, line)
				continue
			}
			c := lo.clients.Client(id)
			if c == nil || r.err {
				continue
			}
			if kind == lineReply {
				c.Reply(line)
			} else {
				c.Queue(line)
			}
			l.touched[c] = struct{}{}
		}
		// Pending counts the message being handled until it returns.
		if n, _, _ := m.Sub.Pending(); n <= 1 || l.pendingFrames >= maxUnflushedFrames {
			l.flushTouched()
		}
		return
	}
	if len(l.touched) > 0 {
		l.flushTouched() // whatever else arrives goes after the lines
	}
	switch m.Data[0] {
	case frameMirror:
		lo.rooms.Mirror(r.b)
	case frameRemoved:
		id := r.uvarint()
		folded := string(r.bytes())
		if c := lo.clients.Client(id); c != nil && !r.err {
			lo.rooms.Removed(folded, c)
		}
	}
}

// answer hands a call its answer.
func (l *Link) answer(id uint64, a []byte) {
	l.mu.Lock()
	c := l.calls[id]
	delete(l.calls, id)
	l.mu.Unlock()
	if c != nil && l.Answered != nil {
		l.Answered(time.Since(c.sent))
	}
	switch {
	case c == nil:
	case c.done != nil:
		c.done(a, nil)
	default:
		c.ch <- a
	}
}

// maxUnflushedFrames bounds the line frames whose lines wait for a flush.
const maxUnflushedFrames = 64

// flushTouched flushes the clients lines were queued to; onOut's
// goroutine only.
func (l *Link) flushTouched() {
	for c := range l.touched {
		c.Flush()
		delete(l.touched, c)
	}
	l.pendingFrames = 0
}

// Mirror implements rooms.Cluster: the frame follows the lines already
// queued for node, so a member list and the lines agree.
func (l *Link) Mirror(node string, payload []byte) {
	l.flush(node)
	l.publish("lc.n."+node+".out", append([]byte{frameMirror}, payload...))
}

// DirectoryWait bounds how long LIST waits for the other nodes' rooms.
const DirectoryWait = 500 * time.Millisecond

// Directory returns the rooms the other nodes run (LIST snapshots), asked
// of every node at once; a node that does not answer within
// DirectoryWait is left out.
func (l *Link) Directory() []rooms.Info {
	want := len(l.node.Nodes()) - 1
	if want <= 0 {
		return nil
	}
	inbox := l.nc.NewRespInbox()
	ch := make(chan *nats.Msg, want)
	sub, err := l.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil
	}
	defer sub.Unsubscribe()
	if err := l.nc.PublishRequest("lc.dir", inbox, []byte(l.Self())); err != nil {
		return nil
	}
	var out []rooms.Info
	t := time.NewTimer(DirectoryWait)
	defer t.Stop()
	for got := 0; got < want; got++ {
		select {
		case m := <-ch:
			var infos []rooms.Info
			if json.Unmarshal(m.Data, &infos) == nil {
				out = append(out, infos...)
			}
		case <-t.C:
			return out
		}
	}
	return out
}

func (l *Link) onDirectory(m *nats.Msg) {
	lo := l.local.Load()
	if lo == nil || string(m.Data) == l.Self() || m.Reply == "" {
		return
	}
	b, err := json.Marshal(lo.rooms.LiveInfos())
	if err == nil {
		l.nc.Publish(m.Reply, b)
	}
}

// Backlog returns the frames received from other nodes and not handled
// yet: how far this node lags behind what the others sent it.
func (l *Link) Backlog() int {
	n := 0
	for _, s := range l.subs {
		if p, _, err := s.Pending(); err == nil {
			n += p
		}
	}
	return n
}

// Handle answers queries called name that other nodes send this node
// (see Query) with fn.
func (l *Link) Handle(name string, fn func(req []byte) []byte) error {
	sub, err := l.nc.Subscribe("lc.n."+l.Self()+".q."+name, func(m *nats.Msg) {
		if m.Reply != "" {
			l.nc.Publish(m.Reply, fn(m.Data))
		}
	})
	if err == nil {
		l.subs = append(l.subs, sub)
	}
	return err
}

// Query asks node the query name and returns its answer.
func (l *Link) Query(node, name string, req []byte) ([]byte, error) {
	m, err := l.nc.Request("lc.n."+node+".q."+name, req, CallTimeout)
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}

// Gone tells the other nodes that a client of this node disconnected, so
// they forget its proxy.
func (l *Link) Gone(id uint64) {
	b := putBytes([]byte{frameGone}, []byte(l.Self()))
	l.publish("lc.gone", putUvarint(b, id))
}

func (l *Link) onGone(m *nats.Msg) {
	if len(m.Data) == 0 || m.Data[0] != frameGone {
		return
	}
	r := &reader{b: m.Data[1:]}
	node := string(r.bytes())
	id := r.uvarint()
	if r.err || node == l.Self() {
		return
	}
	l.mu.Lock()
	delete(l.proxies, proxyKey{node, id})
	l.mu.Unlock()
}

func (l *Link) forgetNode(node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.proxies {
		if k.node == node {
			delete(l.proxies, k)
		}
	}
	delete(l.out, node)
}

// Ref implements rooms.Cluster.
func (l *Link) Ref(c rooms.Client) rooms.ClientRef {
	if p, ok := c.(*proxy); ok {
		return p.ref()
	}
	var ref rooms.ClientRef
	if lo := l.local.Load(); lo != nil {
		ref, _ = lo.clients.Ref(c)
	}
	ref.Node = l.Self()
	return ref
}

// Client implements rooms.Cluster.
func (l *Link) Client(ref rooms.ClientRef) rooms.Client {
	if ref.Node == l.Self() {
		if lo := l.local.Load(); lo != nil {
			if c := lo.clients.Client(ref.ID); c != nil {
				return c
			}
		}
		return &gone{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := proxyKey{ref.Node, ref.ID}
	p := l.proxies[k]
	if p == nil {
		p = &proxy{link: l, node: ref.Node, id: ref.ID}
		l.proxies[k] = p
	}
	p.set(ref)
	return p
}

// NodeOf implements rooms.Cluster.
func (l *Link) NodeOf(c rooms.Client) string {
	if p, ok := c.(*proxy); ok {
		return p.node
	}
	return l.Self()
}

func (l *Link) outboxOf(node string) *outbox {
	l.mu.Lock()
	defer l.mu.Unlock()
	o := l.out[node]
	if o == nil {
		o = &outbox{}
		l.out[node] = o
	}
	return o
}

// flush sends what is queued for node's clients, as one frame.
func (l *Link) flush(node string) {
	o := l.outboxOf(node)
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.buf) <= 1 {
		return
	}
	// Published under the outbox lock, so frames to a node leave in the
	// order their lines were queued.
	l.publish("lc.n."+node+".out", o.buf)
	o.buf = nil
}

// proxy is a client of another node as this node's rooms see it.
type proxy struct {
	link *Link
	node string
	id   uint64

	mu       sync.Mutex
	features rooms.Features
	caps     uint32
	away     bool
}

func (p *proxy) set(ref rooms.ClientRef) {
	p.mu.Lock()
	p.features, p.caps, p.away = ref.Features, ref.Caps, ref.Away
	p.mu.Unlock()
}

func (p *proxy) ref() rooms.ClientRef {
	p.mu.Lock()
	defer p.mu.Unlock()
	return rooms.ClientRef{Node: p.node, ID: p.id, Features: p.features, Caps: p.caps, Away: p.away}
}

func (p *proxy) queue(kind uint64, line []byte) {
	o := p.link.outboxOf(p.node)
	o.mu.Lock()
	o.add(p.id, kind, line)
	o.mu.Unlock()
}

// add appends a record to the frame being gathered; o.mu held.
func (o *outbox) add(id, kind uint64, data []byte) {
	if len(o.buf) == 0 {
		o.buf = append(o.buf, frameLines)
	}
	o.buf = putUvarint(o.buf, id)
	o.buf = putUvarint(o.buf, kind)
	o.buf = putBytes(o.buf, data)
}

func (p *proxy) Send(line []byte) bool {
	p.queue(lineQueue, line)
	p.link.flush(p.node)
	return true
}

func (p *proxy) Queue(line []byte) bool {
	p.queue(lineQueue, line)
	return true
}

func (p *proxy) Flush() { p.link.flush(p.node) }

func (p *proxy) Reply(line []byte) bool {
	p.queue(lineReply, line)
	p.link.flush(p.node)
	return true
}

func (p *proxy) Features() rooms.Features {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.features
}

func (p *proxy) Away() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.away
}

// Caps returns the daemon's capability bits the client negotiated.
func (p *proxy) Caps() uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.caps
}

// Removed tells the client's node that a room removed it (a KICK).
func (p *proxy) Removed(r *rooms.Room) {
	p.link.flush(p.node) // the KICK line first
	b := putUvarint([]byte{frameRemoved}, p.id)
	p.link.publish("lc.n."+p.node+".out", putBytes(b, []byte(protocol.FoldRoom(r.Name()))))
}

// gone stands for a client of this node that disconnected meanwhile.
// Each is its own value, so that two never count as one member.
type gone struct{ _ byte }

func (*gone) Send([]byte) bool         { return false }
func (*gone) Queue([]byte) bool        { return false }
func (*gone) Flush()                   {}
func (*gone) Reply([]byte) bool        { return false }
func (*gone) Features() rooms.Features { return 0 }
func (*gone) Away() bool               { return false }
func (*gone) Removed(*rooms.Room)      {}
