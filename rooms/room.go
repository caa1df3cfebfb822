package rooms

import (
	"errors"
	"runtime/debug"
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
	ErrBanned        = errors.New("rooms: banned from the room")
	ErrInviteOnly    = errors.New("rooms: the room is invite-only")
	ErrBadKey        = errors.New("rooms: wrong room key")
	ErrRegOnly       = errors.New("rooms: only logged-in users may join the room")
)

// ForwardError is a refused join's error when the room sends such joiners
// to another room (+f); Err is why it refused.
type ForwardError struct {
	Err    error
	Target string
}

func (e *ForwardError) Error() string { return e.Err.Error() + "; forwarded to " + e.Target }
func (e *ForwardError) Unwrap() error { return e.Err }

// forwardTarget returns where a refused join was forwarded, or "".
func forwardTarget(err error) string {
	if f, ok := err.(*ForwardError); ok {
		return f.Target
	}
	return ""
}

// Client is a member's connection as a room sees it. All methods must be
// safe for concurrent use and must never block.
type Client interface {
	// Send queues a line the client did not ask for (another member's
	// message, a join) and has it written soon. line is shared and must
	// not be modified. It reports false when the client's queue
	// overflowed or it is closing; such a client disconnects itself and
	// the room just goes on.
	Send(line []byte) bool
	// Queue is Send without the write: the line waits for Flush. A room
	// queues a burst of messages to every member and flushes once, so
	// that one write carries many lines when the room is busy.
	Queue(line []byte) bool
	// Flush has everything queued written.
	Flush()
	// Reply queues a line answering the client's own request (its JOIN
	// echo, NAMES, an echoed message), so that the client can tie it to
	// the request (IRCv3 labeled-response).
	Reply(line []byte) bool
	// Features reports what the client negotiated that changes the bytes
	// it receives.
	Features() Features
	// Away reports whether the user is marked away (WHO flags).
	Away() bool
	// Removed tells the client that the room removed it (a KICK), so it
	// can forget the room.
	Removed(r *Room)
}

// Member describes a client joining a room.
type Member struct {
	Client   Client
	Nick     string
	User     string
	Host     string // shown to everyone: a cloak, usually
	IP       string // the real address: server operators' bans match it too, nobody is shown it
	Realname string
	Account  string // "" when anonymous
	Origin   string // who the member is for history (see Event.Origin)
	// AfterJoin is a line the joiner gets right after its JOIN, before the
	// member list (draft/read-marker's MARKREAD); nil for none.
	AfterJoin []byte
	// Twin is another connection of the same user (one account on several
	// devices), or nil. If Twin is in the room, the joiner becomes one
	// more device of that membership: it is shown the room as a joiner
	// is, and nobody else hears of it; if not, the join fails with
	// ErrNotMember. Only for rooms run on this node.
	Twin Client
	// Devices are the joiner's other connections, for its own JOIN: if
	// one of them is in the room (its JOIN got there first), the joiner
	// becomes another device of that membership, as with Twin; if none
	// is, it joins as anyone does.
	Devices []Client
}

// Info is a snapshot of a room for LIST; it is read without asking the actor.
type Info struct {
	Name    string
	Members int
	Topic   string
	TopicAt time.Time // zero when no topic is set
	Created time.Time
	Secret  bool // +s: list it only to its members
}

// member is a Member in the room: who it is, without what only its JOIN
// needs (AfterJoin, Twin), since a room of 10,000 keeps 10,000 of them.
type member struct {
	Client   Client
	Nick     string
	User     string
	Host     string
	IP       string
	Realname string
	Account  string
	Origin   string
	prefix   string // nick!user@host, the source of this member's lines
	role     role
	// devices are the member's other connections besides Member.Client
	// (multiclient): each gets what the member is sent, rendered for it.
	devices []Client
}

func newMember(m Member) *member {
	return &member{Client: m.Client, Nick: m.Nick, User: m.User, Host: m.Host, IP: m.IP,
		Realname: m.Realname, Account: m.Account, Origin: m.Origin,
		prefix: m.Nick + "!" + m.User + "@" + m.Host}
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
	remote  *stub         // set when another node is the room's home (see remote.go)

	pending atomic.Int32 // JOINs on their way; raised under the registry lock

	// Snapshots for LIST and lookups that must not wait on the actor.
	nMembers   atomic.Int32
	topicSnap  atomic.Pointer[topic]
	secretSnap atomic.Bool // +s

	// Actor state, touched only by run.
	members []*member
	index   map[Client]int
	topic   topic
	history History
	created time.Time
	idle    *time.Timer
	modes   modes
	owner   string              // account that claimed the room, or ""
	invites map[string]struct{} // folded nicks invited and not yet joined
	nodes   map[string]int      // in a cluster: members per node, for the mirrors
	dirty   bool                // lines were queued to members and not flushed
	// remembered says the room's state was saved since it started, so
	// that it comes back after a restart along with its history.
	remembered bool

	lastActive time.Time // a dormant room's: when its actor stopped, or its newest event
	burst      int       // requests handled since the last flush
}

// Name returns the room's display name, with its leading '#'.
func (r *Room) Name() string { return r.name }

// Created returns when the room was created.
func (r *Room) Created() time.Time { return r.created }

// Secret reports whether the room is +s, without waiting on the room.
func (r *Room) Secret() bool { return r.secretSnap.Load() }

// Members returns the current number of members without waiting on the room.
func (r *Room) Members() int { return int(r.nMembers.Load()) }

// dormant reports a room remembered without an actor (see Registry.Restore).
func (r *Room) dormant() bool { return r.mailbox == nil && r.remote == nil }

// asDormant returns what is left of r once its actor stops: its name,
// owner and LIST snapshot.
func (r *Room) asDormant() *Room {
	d := &Room{name: r.name, folded: r.folded, reg: r.reg, opts: r.opts, done: make(chan struct{}), created: r.created, owner: r.owner, lastActive: r.opts.now()}
	d.topicSnap.Store(r.topicSnap.Load())
	d.secretSnap.Store(r.secretSnap.Load())
	return d
}

// Gone reports whether the registry has dropped the room.
func (r *Room) Gone() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Info returns the LIST snapshot of the room.
func (r *Room) Info() Info {
	info := Info{Name: r.name, Members: r.Members(), Created: r.created, Secret: r.secretSnap.Load()}
	if t := r.topicSnap.Load(); t != nil {
		info.Topic, info.TopicAt = t.text, t.setAt
	}
	return info
}

// run is the actor loop. It returns once the registry has dropped the room.
func (r *Room) run() {
	r.warm()
	idle := r.afterRequest() // a room woken by a lookup alone goes back to sleep
	for {
		select {
		case req := <-r.mailbox:
			r.handle(req)
			r.burst++
			// Flush when the mailbox is drained (or a burst is long): a
			// busy room sends each member many lines per write, a quiet
			// one flushes after every message.
			if r.dirty && (len(r.mailbox) == 0 || r.burst >= maxBurst) {
				r.flush()
			}
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

// warm fills the ring from the log before the room serves anyone, so that
// a room coming back after a restart replays and answers from memory.
func (r *Room) warm() {
	if r.opts.Log == nil || r.opts.HistorySize <= 0 {
		return
	}
	n := r.opts.HistorySize
	events, err := r.opts.Log.Query(r.folded, Query{Sel: SelLatest, Limit: n, Events: true})
	var msgs []*Event
	if err == nil {
		msgs, err = r.opts.Log.Query(r.folded, Query{Sel: SelLatest, Limit: n})
	}
	if err != nil {
		r.opts.Hooks.storeFailed(r.name, err)
		r.history.Warm(nil, nil, false, false) // what is not in memory must come from the log
		return
	}
	r.history.Warm(events, msgs, len(events) < n, len(msgs) < n)
}

// maxBurst bounds how many requests a room handles before flushing, so
// that a room that is never idle still flushes.
const maxBurst = 64

// flush has every member write what was queued to it.
func (r *Room) flush() {
	for _, m := range r.members {
		m.Client.Flush()
		for _, d := range m.devices {
			d.Flush()
		}
	}
	r.dirty, r.burst = false, 0
}

// afterRequest drops an empty room without messages at once and arms the
// idle timer for an empty room with history.
func (r *Room) afterRequest() <-chan time.Time {
	if len(r.members) > 0 {
		if r.idle != nil {
			r.idle.Stop()
			r.idle = nil
		}
		return nil
	}
	if !r.history.worthKeeping() {
		// Joins and parts alone are no history: forget the room and them.
		if r.opts.Log != nil && r.history.Len() > 0 {
			if err := r.opts.Log.Delete(r.folded); err != nil {
				r.opts.Hooks.storeFailed(r.name, err)
			}
			r.history = NewHistory(r.opts.HistorySize)
		}
		r.reg.tryDrop(r)
		return nil
	}
	if r.idle == nil {
		r.idle = time.NewTimer(r.opts.IdleTTL)
	}
	return r.idle.C
}

// handle runs one request under supervision: a panic is recovered, logged
// and counted, the request is answered with an error, and the room keeps
// its state and goes on.
func (r *Room) handle(req request) {
	defer func() {
		if v := recover(); v != nil {
			r.opts.Hooks.panicked(r.name, req.kind(), v, debug.Stack())
			req.fail(r)
		}
		req.finish(r)
	}()
	if h := r.opts.Hooks.BeforeRequest; h != nil {
		h(r.name, req.kind())
	}
	req.run(r)
}

// memberOf returns c's membership, or nil.
func (r *Room) memberOf(c Client) *member {
	if i, ok := r.index[c]; ok {
		return r.members[i]
	}
	return nil
}

func (r *Room) nickOf(c Client) string {
	if m := r.memberOf(c); m != nil {
		return m.Nick
	}
	return "*"
}

// broadcast relays e to every member but actor, encoding it once per
// distinct rendering, and echoes it to actor as a reply when echo is set.
// tagsOnly events (TAGMSG) go only to clients that take message tags. It
// never blocks, allocates nothing per recipient, and returns how many
// members it was queued to.
func (r *Room) broadcast(e *Event, actor Client, echo, tagsOnly bool) int {
	rs := NewRenderings(e)
	n := 0
	for _, m := range r.members {
		n += queueTo(m.Client, actor, &rs, tagsOnly)
		for _, d := range m.devices {
			n += queueTo(d, actor, &rs, tagsOnly)
		}
	}
	r.dirty = r.dirty || n > 0
	if echo && actor != nil {
		if f := actor.Features(); !tagsOnly || f&FeatTags != 0 {
			actor.Reply(rs.For(f))
		}
	}
	return n
}

// queueTo queues the rendering of an event for c and returns 1, or 0 when
// c is the actor (echoed apart) or takes no tags and the event is tags only.
func queueTo(c, actor Client, rs *Renderings, tagsOnly bool) int {
	if c == actor {
		return 0
	}
	f := c.Features()
	if tagsOnly && f&FeatTags == 0 {
		return 0
	}
	c.Queue(rs.For(f))
	return 1
}

// event builds an event from member m.
func (r *Room) event(m *member, command string, params ...string) *Event {
	return &Event{At: r.opts.now(), Source: m.prefix, Account: m.Account, Origin: m.Origin, Command: command, Params: params}
}

// record keeps e in the room's history: the ring at once, the log in its
// next group. It gives e a msgid if it has none, so every event in history
// can be referred to. With SyncAlways it returns once e is durable, before
// anyone receives it; that is the one place a room waits on disk.
func (r *Room) record(e *Event) {
	if e.ID == "" {
		e.ID = r.opts.IDs.Next()
	}
	r.history.Add(e)
	if r.opts.Log == nil {
		return
	}
	r.opts.Log.Append(r.folded, e)
	if r.opts.SyncAlways {
		if err := r.opts.Log.Sync(); err != nil {
			r.opts.Hooks.storeFailed(r.name, err)
		}
	}
	if !r.remembered {
		r.remembered = true
		r.persist()
	}
}

// numeric replies to c with a server numeric addressed to nick.
func (r *Room) numeric(c Client, nick, code string, params ...string) {
	c.Reply(encode(protocol.Message{Source: r.opts.ServerName, Command: code, Params: append([]string{nick}, params...)}))
}

func encode(m protocol.Message) []byte { return m.AppendTo(nil) }
