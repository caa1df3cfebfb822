package rooms

import (
	"errors"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/livechat/livechat/protocol"
)

// Errors a room answers with. The daemon turns them into numerics.
var (
	ErrNoSuchRoom    = errors.New("rooms: no such room")
	ErrNotMember     = errors.New("rooms: not a member of the room")
	ErrAlreadyMember = errors.New("rooms: already a member of the room")
	ErrRoomFull      = errors.New("rooms: room is full")
	ErrTooManyRooms  = errors.New("rooms: too many rooms")
	ErrInternal      = errors.New("rooms: internal error while handling the request")
)

// Client is a member's connection as a room sees it.
//
// Send must be safe for concurrent use and must never block: it queues line
// (which the caller will not modify afterwards) and reports false when the
// connection's queue overflowed or it is closing. An overflowing client is
// expected to disconnect itself; the room does nothing but go on.
type Client interface {
	Send(line []byte) bool
	// Away reports whether the user is marked away (WHO flags).
	Away() bool
}

// Member describes a client joining a room.
type Member struct {
	Client   Client
	Nick     string
	User     string
	Host     string
	Realname string
}

// Info is a snapshot of a room for LIST; it is read without asking the actor.
type Info struct {
	Name    string
	Members int
	Topic   string
}

type member struct {
	Member
	prefix string // nick!user@host, the source of this member's lines
	joined time.Time
}

type topic struct {
	text  string
	setBy string
	setAt time.Time
}

// Room is one chat room. Its exported methods are safe for concurrent use:
// they send a request to the room's actor goroutine, which alone owns the
// room's state.
type Room struct {
	name   string // display name with '#', as first typed
	folded string
	reg    *Registry
	opts   *Options

	mailbox chan request
	done    chan struct{} // closed when the room has left the registry

	pending atomic.Int32 // JOINs on their way; raised under the registry lock

	// Snapshots for LIST and lookups that must not wait on the actor.
	nMembers  atomic.Int32
	topicSnap atomic.Pointer[string]

	// Actor state, touched only by run.
	members []*member
	index   map[Client]int
	topic   topic
	history ring
	created time.Time
	idle    *time.Timer
}

// Name returns the room's display name, with its leading '#'.
func (r *Room) Name() string { return r.name }

// Created returns when the room was created.
func (r *Room) Created() time.Time { return r.created }

// Members returns the current number of members without waiting on the room.
func (r *Room) Members() int { return int(r.nMembers.Load()) }

// Info returns the LIST snapshot of the room.
func (r *Room) Info() Info {
	info := Info{Name: r.name, Members: r.Members()}
	if t := r.topicSnap.Load(); t != nil {
		info.Topic = *t
	}
	return info
}

type request interface{ kind() string }

type (
	joinReq struct {
		m    Member
		done chan error
	}
	partReq struct {
		c      Client
		reason string
		done   chan error
	}
	leaveReq struct {
		c    Client
		done chan []Client
	}
	renameReq struct {
		c    Client
		nick string
		done chan []Client
	}
	sayReq struct {
		c       Client
		command string
		text    string
	}
	// query is the part of every request answered with lines to c; done
	// is closed once they are queued, so c's later replies come after them.
	query struct {
		c    Client
		nick string
		done chan struct{}
	}
	topicReq struct {
		query
		text *string
	}
	namesReq struct{ query }
	whoReq   struct{ query }
)

func (joinReq) kind() string   { return "JOIN" }
func (partReq) kind() string   { return "PART" }
func (leaveReq) kind() string  { return "QUIT" }
func (renameReq) kind() string { return "NICK" }
func (sayReq) kind() string    { return "PRIVMSG" }
func (topicReq) kind() string  { return "TOPIC" }
func (namesReq) kind() string  { return "NAMES" }
func (whoReq) kind() string    { return "WHO" }

// send delivers req to the actor, or reports that the room is gone.
func (r *Room) send(req request) bool {
	select {
	case r.mailbox <- req:
		return true
	case <-r.done:
		return false
	}
}

func (r *Room) join(m Member) error {
	done := make(chan error, 1)
	if !r.send(joinReq{m: m, done: done}) {
		return ErrNoSuchRoom
	}
	return await(r, done, ErrNoSuchRoom)
}

// Part removes c from the room; every member, c included, sees the PART.
func (r *Room) Part(c Client, reason string) error {
	done := make(chan error, 1)
	if !r.send(partReq{c: c, reason: reason, done: done}) {
		return ErrNoSuchRoom
	}
	return await(r, done, ErrNoSuchRoom)
}

// Leave removes c without telling anyone and returns the remaining members,
// so that the caller can send one QUIT to each peer across all its rooms.
func (r *Room) Leave(c Client) []Client {
	done := make(chan []Client, 1)
	if !r.send(leaveReq{c: c, done: done}) {
		return nil
	}
	return await(r, done, nil)
}

// Rename changes c's nick in the room and returns the other members, so
// that the caller can send one NICK line to each peer across all its rooms.
func (r *Room) Rename(c Client, nick string) []Client {
	done := make(chan []Client, 1)
	if !r.send(renameReq{c: c, nick: nick, done: done}) {
		return nil
	}
	return await(r, done, nil)
}

// await waits for the actor's answer. A room may leave the registry with a
// request still in its mailbox; then the answer is gone. The actor answers
// before it can be dropped, so an answer that exists is always seen.
func await[T any](r *Room, answer chan T, gone T) T {
	select {
	case v := <-answer:
		return v
	case <-r.done:
		select {
		case v := <-answer:
			return v
		default:
			return gone
		}
	}
}

// Say broadcasts a PRIVMSG or NOTICE from member c to the other members
// and keeps it in history. It does not wait: errors (c not a member) are
// sent to c as numerics by the room. It returns ErrNoSuchRoom if the room
// is gone.
func (r *Room) Say(c Client, command, text string) error {
	if !r.send(sayReq{c: c, command: command, text: text}) {
		return ErrNoSuchRoom
	}
	return nil
}

// Topic sends c the topic (text == nil) or sets it (c must be a member);
// replies go to c, the change to every member. It returns once c's
// replies are queued.
func (r *Room) Topic(c Client, nick string, text *string) error {
	q := newQuery(c, nick)
	return r.ask(topicReq{query: q, text: text}, q)
}

// Names queues the member list (353/366) to c.
func (r *Room) Names(c Client, nick string) error {
	q := newQuery(c, nick)
	return r.ask(namesReq{q}, q)
}

// Who queues a 352 line per member and 315 to c.
func (r *Room) Who(c Client, nick string) error {
	q := newQuery(c, nick)
	return r.ask(whoReq{q}, q)
}

func newQuery(c Client, nick string) query {
	return query{c: c, nick: nick, done: make(chan struct{})}
}

// ask sends a query and waits until the room has queued its replies.
func (r *Room) ask(req request, q query) error {
	if !r.send(req) {
		return ErrNoSuchRoom
	}
	select {
	case <-q.done:
		return nil
	case <-r.done:
		select {
		case <-q.done:
			return nil
		default:
			return ErrNoSuchRoom
		}
	}
}

// run is the actor loop. It returns once the registry has dropped the room.
func (r *Room) run() {
	var idle <-chan time.Time
	for {
		select {
		case req := <-r.mailbox:
			r.handle(req)
			idle = r.afterRequest()
		case <-idle:
			idle = nil
			r.idle = nil
			r.reg.tryDrop(r)
		case <-r.done:
			return
		}
	}
}

// afterRequest drops an empty room without history at once and arms the
// idle timer for an empty room with history.
func (r *Room) afterRequest() <-chan time.Time {
	if len(r.members) > 0 {
		if r.idle != nil {
			r.idle.Stop()
			r.idle = nil
		}
		return nil
	}
	if r.history.len() == 0 {
		r.reg.tryDrop(r)
		return nil
	}
	if r.idle == nil {
		r.idle = time.NewTimer(r.opts.IdleTTL)
	}
	return r.idle.C
}

// handle runs one request under supervision: a panic is recovered, logged
// and counted, the request is answered with ErrInternal and the room keeps
// its state and goes on.
func (r *Room) handle(req request) {
	defer func() {
		if v := recover(); v != nil {
			r.opts.Hooks.panicked(r.name, req.kind(), v, debug.Stack())
			r.fail(req)
		}
		switch req := req.(type) {
		case topicReq:
			close(req.done)
		case namesReq:
			close(req.done)
		case whoReq:
			close(req.done)
		}
	}()
	if h := r.opts.Hooks.BeforeRequest; h != nil {
		h(r.name, req.kind())
	}
	switch req := req.(type) {
	case joinReq:
		r.pending.Add(-1)
		req.done <- r.doJoin(req.m)
	case partReq:
		req.done <- r.doPart(req.c, req.reason)
	case leaveReq:
		req.done <- r.doLeave(req.c)
	case renameReq:
		req.done <- r.doRename(req.c, req.nick)
	case sayReq:
		r.doSay(req)
	case topicReq:
		r.doTopic(req)
	case namesReq:
		r.doNames(req.c, req.nick)
	case whoReq:
		r.doWho(req.c, req.nick)
	}
}

// fail answers a request whose handler panicked.
func (r *Room) fail(req request) {
	switch req := req.(type) {
	case joinReq:
		req.done <- ErrInternal
	case partReq:
		req.done <- ErrInternal
	case leaveReq:
		req.done <- nil
	case renameReq:
		req.done <- nil
	case sayReq:
		r.numeric(req.c, r.nickOf(req.c), protocol.ERR_UNKNOWNERROR, req.command, "Internal error; the message was not delivered")
	case topicReq:
		r.numeric(req.c, req.nick, protocol.ERR_UNKNOWNERROR, "TOPIC", "Internal error")
	case namesReq:
		r.numeric(req.c, req.nick, protocol.ERR_UNKNOWNERROR, "NAMES", "Internal error")
	case whoReq:
		r.numeric(req.c, req.nick, protocol.ERR_UNKNOWNERROR, "WHO", "Internal error")
	}
}

func (r *Room) doJoin(m Member) error {
	if _, ok := r.index[m.Client]; ok {
		return ErrAlreadyMember
	}
	if len(r.members) >= r.opts.MaxMembers {
		return ErrRoomFull
	}
	mem := &member{Member: m, prefix: m.Nick + "!" + m.User + "@" + m.Host, joined: r.opts.now()}
	r.index[m.Client] = len(r.members)
	r.members = append(r.members, mem)
	r.nMembers.Store(int32(len(r.members)))

	r.broadcast(encode(protocol.Message{Source: mem.prefix, Command: "JOIN", Params: []string{r.name}}), nil)
	if r.topic.text != "" {
		r.sendTopic(m.Client, m.Nick)
	}
	r.doNames(m.Client, m.Nick)
	r.history.last(r.opts.HistoryReplay, func(e entry) { m.Client.Send(e.line) })
	return nil
}

// remove takes c out of the member list, keeping it dense for fan-out.
func (r *Room) remove(c Client) *member {
	i, ok := r.index[c]
	if !ok {
		return nil
	}
	m := r.members[i]
	last := len(r.members) - 1
	if i != last {
		r.members[i] = r.members[last]
		r.index[r.members[i].Client] = i
	}
	r.members[last] = nil
	r.members = r.members[:last]
	delete(r.index, c)
	r.nMembers.Store(int32(len(r.members)))
	return m
}

func (r *Room) doPart(c Client, reason string) error {
	i, ok := r.index[c]
	if !ok {
		return ErrNotMember
	}
	params := []string{r.name}
	if reason != "" {
		params = append(params, reason)
	}
	r.broadcast(encode(protocol.Message{Source: r.members[i].prefix, Command: "PART", Params: params}), nil)
	r.remove(c)
	return nil
}

func (r *Room) doLeave(c Client) []Client {
	if r.remove(c) == nil {
		return nil
	}
	return r.clients(nil)
}

func (r *Room) doRename(c Client, nick string) []Client {
	i, ok := r.index[c]
	if !ok {
		return nil
	}
	m := r.members[i]
	m.Nick = nick
	m.prefix = nick + "!" + m.User + "@" + m.Host
	return r.clients(c)
}

// clients lists the members other than except.
func (r *Room) clients(except Client) []Client {
	out := make([]Client, 0, len(r.members))
	for _, m := range r.members {
		if m.Client != except {
			out = append(out, m.Client)
		}
	}
	return out
}

func (r *Room) nickOf(c Client) string {
	if i, ok := r.index[c]; ok {
		return r.members[i].Nick
	}
	return "*"
}

func (r *Room) doSay(req sayReq) {
	i, ok := r.index[req.c]
	if !ok {
		// Rooms are +n: only members speak. The sender's nick is unknown
		// here, so the daemon checks membership first for a precise reply;
		// this covers a PART racing the message.
		r.numeric(req.c, "*", protocol.ERR_CANNOTSENDTOCHAN, r.name, "Cannot send to room: you are not in it (JOIN "+r.name+" first)")
		return
	}
	sender := r.members[i]
	start := time.Now()
	line := encode(protocol.Message{Source: sender.prefix, Command: req.command, Params: []string{r.name, req.text}})
	r.history.add(entry{at: r.opts.now(), line: line})
	n := r.broadcast(line, req.c)
	r.opts.Hooks.delivered(n, time.Since(start))
}

// broadcast queues line to every member but except and returns how many
// members it was queued to. It never blocks and allocates nothing.
func (r *Room) broadcast(line []byte, except Client) int {
	n := 0
	for _, m := range r.members {
		if m.Client != except {
			m.Client.Send(line)
			n++
		}
	}
	return n
}

func (r *Room) doTopic(req topicReq) {
	if req.text == nil {
		if r.topic.text == "" {
			r.numeric(req.c, req.nick, protocol.RPL_NOTOPIC, r.name, "No topic is set")
			return
		}
		r.sendTopic(req.c, req.nick)
		return
	}
	i, ok := r.index[req.c]
	if !ok {
		r.numeric(req.c, req.nick, protocol.ERR_NOTONCHANNEL, r.name, "You're not on that room")
		return
	}
	m := r.members[i]
	r.topic = topic{text: *req.text, setBy: m.Nick, setAt: r.opts.now()}
	snap := r.topic.text
	r.topicSnap.Store(&snap)
	r.broadcast(encode(protocol.Message{Source: m.prefix, Command: "TOPIC", Params: []string{r.name, r.topic.text}}), nil)
}

func (r *Room) sendTopic(c Client, nick string) {
	r.numeric(c, nick, protocol.RPL_TOPIC, r.name, r.topic.text)
	r.numeric(c, nick, protocol.RPL_TOPICWHOTIME, r.name, r.topic.setBy, strconv.FormatInt(r.topic.setAt.Unix(), 10))
}

// doNames sends the member list in as few 353 lines as fit the line limit.
func (r *Room) doNames(c Client, nick string) {
	head := protocol.Message{Source: r.opts.ServerName, Command: protocol.RPL_NAMREPLY, Params: []string{nick, "=", r.name, ""}}
	budget := protocol.MaxBodyLen - len(head.Bytes()) - 2 // what is left for the names
	names := make([]byte, 0, budget+protocol.NickLen+1)
	flush := func() {
		head.Params[3] = string(names)
		c.Send(head.Bytes())
		names = names[:0]
	}
	for _, m := range r.members {
		if len(names) > 0 && len(names)+1+len(m.Nick) > budget {
			flush()
		}
		if len(names) > 0 {
			names = append(names, ' ')
		}
		names = append(names, m.Nick...)
	}
	if len(names) > 0 {
		flush()
	}
	r.numeric(c, nick, protocol.RPL_ENDOFNAMES, r.name, "End of /NAMES list")
}

func (r *Room) doWho(c Client, nick string) {
	for _, m := range r.members {
		flags := "H"
		if m.Client.Away() {
			flags = "G"
		}
		r.numeric(c, nick, protocol.RPL_WHOREPLY, r.name, m.User, m.Host, r.opts.ServerName, m.Nick, flags, "0 "+m.Realname)
	}
	r.numeric(c, nick, protocol.RPL_ENDOFWHO, r.name, "End of /WHO list")
}

// numeric sends c a server numeric addressed to nick.
func (r *Room) numeric(c Client, nick, code string, params ...string) {
	c.Send(encode(protocol.Message{Source: r.opts.ServerName, Command: code, Params: append([]string{nick}, params...)}))
}

func encode(m protocol.Message) []byte { return m.AppendTo(nil) }
