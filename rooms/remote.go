package rooms

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/livechat/livechat/protocol"
)

// A cluster runs each room's actor on one node, its home: the room's one
// order is that actor's order, and every check (bans, +m, +i) is decided
// there, so no two nodes can disagree about a message. Other nodes keep a
// stub of the room for their members: its methods are the same, and the
// stub carries each request to the home and brings back the answer. A
// member on another node is, for the home's actor, a Client like any
// other whose lines travel to its node.

// ErrUnavailable: the room's home node could not be reached in time; the
// request may be retried. The daemon answers FAIL ... TEMPORARILY_UNAVAILABLE.
var ErrUnavailable = errors.New("rooms: the room's node is unreachable")

// ClientRef names a client across the cluster: its node and its
// connection id there, with what the home needs to render its lines.
type ClientRef struct {
	Node     string   `json:"n"`
	ID       uint64   `json:"i"`
	Features Features `json:"f,omitempty"`
	Caps     uint32   `json:"c,omitempty"` // the daemon's capability bits, opaque here
	Away     bool     `json:"a,omitempty"`
}

// Cluster is what a Registry needs from the cluster layer. nil in
// Options.Cluster: a single node, every room local.
type Cluster interface {
	// Self is this node's name.
	Self() string
	// Home returns the node whose actor runs the room (folded name). With
	// claim, a room nobody runs is claimed for this node; without, ""
	// means nobody runs it.
	Home(folded string, claim bool) (string, error)
	// Release gives up this node's claim on a room it no longer runs.
	Release(folded string)
	// Call sends a request to node and returns its answer; Send sends
	// one and calls done with the answer (or an error once it is overdue)
	// without waiting. Requests from this node reach node in the order
	// they were sent.
	Call(node string, payload []byte) ([]byte, error)
	Send(node string, payload []byte, done func([]byte, error))
	// Ref names a client of this node for the others; Client returns the
	// Client a ref stands for: one of this node's, or a proxy that sends
	// its lines to its node. Client returns the same proxy for the same
	// node and id, updated with the ref's features.
	Ref(c Client) ClientRef
	Client(ref ClientRef) Client
	// NodeOf returns the node a client is on.
	NodeOf(c Client) string
	// Mirror sends a change of a room's members to node (see mirror.go),
	// in order with the lines sent to it.
	Mirror(node string, payload []byte)
}

// stub is the part of a Room that a node keeps for a room homed on
// another node.
type stub struct {
	mu     sync.Mutex
	home   string
	locals map[Client]Member // this node's members, to join them again if the home moves
	peers  map[peerKey]mirrorEntry
}

func (s *stub) homeNode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.home
}

// wire is a request as it travels to the home.
type wire struct {
	Room    string       `json:"r"`
	Name    string       `json:"name,omitempty"` // display name, to create the room
	Kind    string       `json:"k"`
	From    ClientRef    `json:"c"`
	Nick    string       `json:"nick,omitempty"`
	Key     string       `json:"key,omitempty"`
	Reason  string       `json:"reason,omitempty"`
	Text    *string      `json:"text,omitempty"`
	Member  *wireMember  `json:"m,omitempty"`
	Event   *Event       `json:"e,omitempty"`
	Update  *wireUpdate  `json:"u,omitempty"`
	Speech  *wireSpeech  `json:"s,omitempty"`
	Query   *Query       `json:"q,omitempty"`
	Oper    bool         `json:"oper,omitempty"`
	Changes []ModeChange `json:"mc,omitempty"`
	Target  *ClientRef   `json:"t,omitempty"`
	Account string       `json:"acct,omitempty"`
	Flag    bool         `json:"flag,omitempty"` // drop (ROOM), all (PREFIX), silent (JOIN), wait (PRIVMSG)
	Role    role         `json:"role,omitempty"` // a silent joiner's
	ID      string       `json:"id,omitempty"`
}

type wireMember struct {
	Nick, User, Host, IP, Realname, Account, Origin string
	AfterJoin                                       []byte `json:",omitempty"`
}

type wireUpdate struct {
	Nick, Account, Realname *string
	Host                    *string `json:",omitempty"`
	Event                   *Event
	Origin                  string
}

type wireSpeech struct {
	Status        byte `json:",omitempty"`
	Command, Text string
	Tags          []protocol.Tag
	Lines         []Line `json:",omitempty"`
	From          wireMember
}

// answer is the home's reply.
type answer struct {
	Err     string      `json:"err,omitempty"` // errCodes key
	Gone    bool        `json:"gone,omitempty"`
	Peers   []ClientRef `json:"p,omitempty"`
	Bool    bool        `json:"b,omitempty"`
	Str     string      `json:"s,omitempty"`
	Who     []wireWho   `json:"w,omitempty"`
	Events  []*Event    `json:"ev,omitempty"`
	Event   *Event      `json:"e,omitempty"`
	Source  string      `json:"src,omitempty"`
	Account string      `json:"acct,omitempty"`
}

type wireWho struct {
	Ref                                         ClientRef
	Nick, User, Host, Realname, Account, Prefix string
}

// errCodes are the errors an answer can carry, by name.
var errCodes = map[string]error{
	"nosuchroom": ErrNoSuchRoom, "notmember": ErrNotMember, "already": ErrAlreadyMember,
	"full": ErrRoomFull, "toomany": ErrTooManyRooms, "internal": ErrInternal,
	"banned": ErrBanned, "invite": ErrInviteOnly, "key": ErrBadKey, "regonly": ErrRegOnly,
	"unknownmsg": ErrUnknownMessage, "forbidden": ErrRedactForbidden, "unavailable": ErrUnavailable,
}

func errCode(err error) string {
	if err == nil {
		return ""
	}
	for k, v := range errCodes {
		if errors.Is(err, v) {
			return k
		}
	}
	return "internal"
}

func codeErr(code string) error {
	if code == "" {
		return nil
	}
	if err, ok := errCodes[code]; ok {
		return err
	}
	return ErrInternal
}

func (m Member) wire() *wireMember {
	return &wireMember{Nick: m.Nick, User: m.User, Host: m.Host, IP: m.IP, Realname: m.Realname, Account: m.Account, Origin: m.Origin, AfterJoin: m.AfterJoin}
}

func (w *wireMember) member(c Client) Member {
	return Member{Client: c, Nick: w.Nick, User: w.User, Host: w.Host, IP: w.IP, Realname: w.Realname, Account: w.Account, Origin: w.Origin, AfterJoin: w.AfterJoin}
}

// forward carries req to the stub's home and answers it as the actor
// would have. It reports false when the home no longer runs the room.
func (g *Registry) forward(r *Room, req request) bool {
	if g.forwardOnce(r, req) {
		return true
	}
	// The home no longer runs the room although this node's clients are
	// in it: it stopped or restarted before this node saw it go. Find
	// the room's home now and join them there again, then try once more.
	if q, silent := req.(joinReq); silent && q.silent || !r.remote.hasLocals() {
		return false
	}
	g.rehome(r)
	return g.forwardOnce(r, req)
}

func (s *stub) hasLocals() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.locals) > 0
}

func (g *Registry) forwardOnce(r *Room, req request) bool {
	cl := g.opts.Cluster
	home := r.remote.homeNode()
	if home == cl.Self() {
		// The room moved here (see rehome): its actor is this node's.
		g.mu.Lock()
		lr := g.rooms[r.folded]
		g.mu.Unlock()
		if lr == nil || lr.dormant() {
			return false
		}
		return lr.send(req)
	}
	w := g.toWire(r, req)
	payload, err := json.Marshal(w)
	if err != nil {
		g.answerLocally(r, req, ErrInternal)
		return true
	}
	if say, ok := req.(sayReq); ok && say.done == nil {
		// The sender goes on at once, so that its messages travel
		// back to back; the home still answers each (once it is in the
		// room's mailbox), and a message it did not take is refused
		// visibly instead of lost.
		cl.Send(home, payload, func(raw []byte, err error) {
			var a answer
			if err == nil {
				err = json.Unmarshal(raw, &a)
			}
			if err != nil || a.Gone || a.Err != "" {
				g.answerLocally(r, req, ErrUnavailable)
			}
		})
		return true
	}
	raw, err := cl.Call(home, payload)
	var a answer
	if err == nil {
		err = json.Unmarshal(raw, &a)
	}
	if err != nil {
		g.answerLocally(r, req, ErrUnavailable)
		return true
	}
	if a.Gone {
		return false
	}
	g.fromWire(r, req, &a)
	req.finish(r)
	return true
}

// answerLocally answers req when its home could not.
func (g *Registry) answerLocally(r *Room, req request, err error) {
	switch q := req.(type) {
	case joinReq:
		q.done <- err
	case partReq:
		q.done <- err
	case historyReq:
		q.done <- historyAnswer{err: err}
	case redactFindReq:
		q.done <- redactFound{err: err}
	case sayReq:
		c := q.c
		c.Reply(encode(protocol.Message{Source: r.opts.ServerName, Command: "FAIL",
			Params: []string{q.s.Command, "TEMPORARILY_UNAVAILABLE", r.name, "The server running this room cannot be reached; the message was not delivered"}}))
	default:
		req.fail(r)
	}
	req.finish(r)
}

func (g *Registry) toWire(r *Room, req request) (w wire) {
	cl := g.opts.Cluster
	w.Room, w.Kind = r.folded, req.kind()
	ref := func(c Client) ClientRef { return cl.Ref(c) }
	switch q := req.(type) {
	case joinReq:
		w.Name, w.From, w.Member, w.Key, w.Flag, w.Role = r.name, ref(q.m.Client), q.m.wire(), q.key, q.silent, q.role
	case partReq:
		w.From, w.Reason = ref(q.c), q.reason
	case leaveReq:
		w.From, w.Event = ref(q.c), q.quit
	case updateReq:
		w.From = ref(q.c)
		w.Update = &wireUpdate{Nick: q.u.Nick, Account: q.u.Account, Realname: q.u.Realname, Host: q.u.Host, Event: q.u.Event, Origin: q.u.Origin}
	case sayReq:
		w.From = ref(q.c)
		w.Speech = &wireSpeech{Status: q.s.Status, Command: q.s.Command, Text: q.s.Text, Tags: q.s.Tags, Lines: q.s.Lines, From: *q.s.From.wire()}
		w.Flag = q.done != nil // the caller waits for its echo to be queued
	case topicReq:
		w.From, w.Nick, w.Text = ref(q.c), q.nick, q.text
	case namesReq:
		w.From, w.Nick = ref(q.c), q.nick
	case whoReq:
		w.From = ref(q.c)
	case historyReq:
		w.From, w.Query = ref(q.c), &q.q
	case modeReq:
		w.From, w.Nick, w.Oper, w.Changes = ref(q.c), q.nick, q.oper, q.changes
	case kickReq:
		w.From, w.Nick, w.Key, w.Reason = ref(q.c), q.nick, q.target, q.reason
	case inviteReq:
		t := ref(q.target)
		w.From, w.Nick, w.Target, w.Key = ref(q.c), q.nick, &t, q.targetNick
	case claimReq:
		w.From, w.Nick, w.Account, w.Flag = ref(q.c), q.nick, q.account, q.drop
	case nickCheckReq:
		w.From = ref(q.c)
	case prefixReq:
		w.From, w.Flag = ref(q.c), q.all
	case redactFindReq:
		w.Kind, w.From, w.ID = "REDACTFIND", ref(q.c), q.id
	case redactDropReq:
		w.Kind, w.From, w.ID, w.Nick, w.Account, w.Reason = "REDACTDROP", ref(q.c), q.id, q.source, q.account, q.reason
	}
	return w
}

// fromWire hands the home's answer to req's caller, and keeps the stub's
// list of local members current.
func (g *Registry) fromWire(r *Room, req request, a *answer) {
	cl := g.opts.Cluster
	clients := func(refs []ClientRef) []Client {
		out := make([]Client, len(refs))
		for i, ref := range refs {
			out[i] = cl.Client(ref)
		}
		return out
	}
	s := r.remote
	switch q := req.(type) {
	case joinReq:
		err := codeErr(a.Err)
		if err != nil && a.Str != "" {
			err = &ForwardError{Err: err, Target: a.Str}
		}
		if err == nil {
			s.mu.Lock()
			s.locals[q.m.Client] = q.m
			s.mu.Unlock()
			g.keepStub(r) // a part racing this join may have dropped it
		}
		q.done <- err
	case partReq:
		err := codeErr(a.Err)
		if err == nil {
			g.forget(r, q.c)
		}
		q.done <- err
	case leaveReq:
		g.forget(r, q.c)
		q.done <- leaveAnswer{peers: clients(a.Peers), muted: a.Bool}
	case updateReq:
		if q.u.Nick != nil || q.u.Host != nil {
			s.mu.Lock()
			if m, ok := s.locals[q.c]; ok {
				if q.u.Nick != nil {
					m.Nick = *q.u.Nick
				}
				if q.u.Host != nil {
					m.Host = *q.u.Host
				}
				s.locals[q.c] = m
			}
			s.mu.Unlock()
		}
		q.done <- clients(a.Peers)
	case whoReq:
		out := make([]WhoEntry, len(a.Who))
		for i, w := range a.Who {
			out[i] = WhoEntry{Client: cl.Client(w.Ref), Nick: w.Nick, User: w.User, Host: w.Host, Realname: w.Realname, Account: w.Account, Prefix: w.Prefix}
		}
		q.done <- out
	case historyReq:
		q.done <- historyAnswer{events: a.Events, certain: a.Bool, err: codeErr(a.Err)}
	case nickCheckReq:
		q.done <- a.Bool
	case prefixReq:
		q.done <- a.Str
	case redactFindReq:
		q.done <- redactFound{event: a.Event, op: a.Bool, source: a.Source, account: a.Account, err: codeErr(a.Err)}
	}
}

// keepStub puts a stub that has members back in the registry, unless
// another stub of the room took its place.
func (g *Registry) keepStub(r *Room) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stubs == nil {
		g.stubs = make(map[string]*Room)
	}
	if _, ok := g.stubs[r.folded]; !ok {
		g.stubs[r.folded] = r
	}
}

// forget takes c off the stub's members, and the stub off the registry
// once none of this node's clients is in the room.
func (g *Registry) forget(r *Room, c Client) {
	s := r.remote
	s.mu.Lock()
	delete(s.locals, c)
	empty := len(s.locals) == 0
	s.mu.Unlock()
	if empty {
		g.dropStub(r)
	}
}

// Removed tells the stub of the room folded that the home removed c (a
// KICK), and tells c.
func (g *Registry) Removed(folded string, c Client) {
	g.mu.Lock()
	r := g.stubs[folded]
	g.mu.Unlock()
	if r == nil {
		return
	}
	g.forget(r, c)
	c.Removed(r)
}

// Serve handles a request another node sent to this node as the home of
// its room: it runs it on the room's actor, in the order requests
// arrived, and calls reply with the answer. Serve waits only for the
// room's mailbox, never for the answer.
func (g *Registry) Serve(payload []byte, reply func([]byte)) {
	var w wire
	if err := json.Unmarshal(payload, &w); err != nil {
		reply(mustJSON(answer{Err: "internal"}))
		return
	}
	r := g.homeRoom(w)
	if r == nil {
		reply(mustJSON(answer{Gone: true}))
		return
	}
	req, wait := g.fromRemote(r, &w)
	if req == nil {
		if w.Kind == "JOIN" {
			r.pending.Add(-1)
		}
		reply(mustJSON(answer{Err: "internal"}))
		return
	}
	if !r.send(req) {
		if w.Kind == "JOIN" {
			r.pending.Add(-1)
		}
		reply(mustJSON(answer{Gone: true}))
		return
	}
	go func() { reply(mustJSON(wait())) }()
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("rooms: encoding an answer: %v", err))
	}
	return b
}

// homeRoom finds the live room a remote request is for. A JOIN wakes or
// creates it if this node is its home in the cluster's record (a caller
// may act on a record that changed since); anything else to a room that is
// not live finds nothing, and the caller looks for the home again.
func (g *Registry) homeRoom(w wire) *Room {
	g.mu.Lock()
	r := g.rooms[w.Room]
	live := r != nil && !r.dormant()
	if live && w.Kind == "JOIN" {
		r.pending.Add(1)
	}
	g.mu.Unlock()
	if live {
		return r
	}
	if w.Kind != "JOIN" {
		return nil
	}
	if home, err := g.opts.Cluster.Home(w.Room, false); err != nil || home != g.opts.Cluster.Self() {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	r = g.rooms[w.Room]
	if r == nil || r.dormant() {
		if g.live >= g.opts.MaxRooms {
			return nil
		}
		name := w.Name
		if r != nil {
			name = r.name
		}
		r = g.newRoomLocked(name, w.Room)
	}
	r.pending.Add(1)
	return r
}

// fromRemote rebuilds a request from its wire form, with a function that
// waits for the actor's answer.
func (g *Registry) fromRemote(r *Room, w *wire) (request, func() answer) {
	cl := g.opts.Cluster
	c := cl.Client(w.From)
	refs := func(cs []Client) []ClientRef {
		out := make([]ClientRef, len(cs))
		for i, c := range cs {
			out[i] = cl.Ref(c)
		}
		return out
	}
	queried := func(done chan struct{}) func() answer {
		return func() answer {
			select {
			case <-done:
				return answer{}
			case <-r.done:
				return answer{Gone: true}
			}
		}
	}
	switch w.Kind {
	case "JOIN":
		if w.Member == nil {
			return nil, nil
		}
		done := make(chan error, 1)
		return joinReq{m: w.Member.member(c), key: w.Key, silent: w.Flag, role: w.Role, done: done}, func() answer {
			err := await(r, done, ErrNoSuchRoom)
			return answer{Err: errCode(err), Str: forwardTarget(err)}
		}
	case "PART":
		done := make(chan error, 1)
		return partReq{c: c, reason: w.Reason, done: done}, func() answer {
			return answer{Err: errCode(await(r, done, ErrNoSuchRoom))}
		}
	case "QUIT":
		done := make(chan leaveAnswer, 1)
		return leaveReq{c: c, quit: w.Event, done: done}, func() answer {
			a := await(r, done, leaveAnswer{})
			return answer{Peers: refs(a.peers), Bool: a.muted}
		}
	case "UPDATE":
		if w.Update == nil {
			return nil, nil
		}
		u := MemberUpdate{Nick: w.Update.Nick, Account: w.Update.Account, Realname: w.Update.Realname, Host: w.Update.Host, Event: w.Update.Event, Origin: w.Update.Origin}
		done := make(chan []Client, 1)
		return updateReq{c: c, u: u, done: done}, func() answer {
			return answer{Peers: refs(await(r, done, nil))}
		}
	case "PRIVMSG":
		if w.Speech == nil {
			return nil, nil
		}
		s := Speech{Status: w.Speech.Status, Command: w.Speech.Command, Text: w.Speech.Text, Tags: w.Speech.Tags, Lines: w.Speech.Lines, From: w.Speech.From.member(c)}
		if !w.Flag {
			return sayReq{c: c, s: s}, func() answer { return answer{} } // in the mailbox: that is all the sender waits for
		}
		done := make(chan struct{})
		return sayReq{c: c, s: s, done: done}, queried(done)
	case "TOPIC":
		q := newQuery(c, w.Nick)
		return topicReq{query: q, text: w.Text}, queried(q.done)
	case "NAMES":
		q := newQuery(c, w.Nick)
		return namesReq{q}, queried(q.done)
	case "WHO":
		done := make(chan []WhoEntry, 1)
		return whoReq{c: c, done: done}, func() answer {
			es := await(r, done, nil)
			out := make([]wireWho, len(es))
			for i, e := range es {
				out[i] = wireWho{Ref: cl.Ref(e.Client), Nick: e.Nick, User: e.User, Host: e.Host, Realname: e.Realname, Account: e.Account, Prefix: e.Prefix}
			}
			return answer{Who: out}
		}
	case "CHATHISTORY":
		if w.Query == nil {
			return nil, nil
		}
		done := make(chan historyAnswer, 1)
		return historyReq{c: c, q: *w.Query, done: done}, func() answer {
			a := await(r, done, historyAnswer{err: ErrNoSuchRoom})
			return answer{Events: a.events, Bool: a.certain, Err: errCode(a.err)}
		}
	case "MODE":
		q := newQuery(c, w.Nick)
		return modeReq{query: q, oper: w.Oper, changes: w.Changes}, queried(q.done)
	case "KICK":
		q := newQuery(c, w.Nick)
		return kickReq{query: q, target: w.Key, reason: w.Reason}, queried(q.done)
	case "INVITE":
		if w.Target == nil {
			return nil, nil
		}
		q := newQuery(c, w.Nick)
		return inviteReq{query: q, target: cl.Client(*w.Target), targetNick: w.Key}, queried(q.done)
	case "ROOM":
		q := newQuery(c, w.Nick)
		return claimReq{query: q, account: w.Account, drop: w.Flag}, queried(q.done)
	case "NICKCHECK":
		done := make(chan bool, 1)
		return nickCheckReq{c: c, done: done}, func() answer { return answer{Bool: await(r, done, false)} }
	case "PREFIX":
		done := make(chan string, 1)
		return prefixReq{c: c, all: w.Flag, done: done}, func() answer { return answer{Str: await(r, done, "")} }
	case "REDACTFIND":
		done := make(chan redactFound, 1)
		return redactFindReq{c: c, id: w.ID, done: done}, func() answer {
			a := await(r, done, redactFound{err: ErrNoSuchRoom})
			return answer{Event: a.event, Bool: a.op, Source: a.source, Account: a.account, Err: errCode(a.err)}
		}
	case "REDACTDROP":
		done := make(chan struct{})
		return redactDropReq{c: c, id: w.ID, source: w.Nick, account: w.Account, reason: w.Reason, done: done}, queried(done)
	}
	return nil, nil
}

// awaitAnswer is await for a room served for another node.
func awaitAnswer[T any](r *Room, done chan T, gone T) T { return await(r, done, gone) }
